"""The ``echo-splade`` command line: a thin click layer over the library.

Each subcommand lives in its own ``_<name>.py`` module and imports the
library lazily inside its function body, so ``echo-splade --help`` stays fast
and never imports torch or ray.
"""

from __future__ import annotations

import logging
import warnings

import click

from ._flag_hints import install_flag_hints
from ._options import connection_options, run_guarded

__all__ = ["main", "cli", "connection_options", "run_guarded"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="echo-splade")
def cli(verbose: int) -> None:
    """Echo-Mistral-SPLADE learned sparse retrieval for OpenSearch and Elasticsearch."""
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_flag_hints()  # library log lines name parameters; the flags are added here
    # The clients log every failed request (expected 404s included) with a traceback at WARNING;
    # our errors already say what failed in one line, so keep theirs for -vv.
    for name in ("opensearch", "elasticsearch", "elastic_transport"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)
    if verbose == 0:
        # Deprecation notices from inside the model libraries (e.g. peft calling a renamed transformers
        # property) are for their developers; a command's user can do nothing about them.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)(\.|$)")


def _register() -> None:
    from . import (
        _cluster,
        _demo,
        _encode,
        _eval,
        _ingest,
        _mine_negatives,
        _provision,
        _proxy,
        _search,
        _serve,
        _split_pairs,
        _train,
        _ui,
    )

    for module in (
        _cluster,
        _provision,
        _ingest,
        _search,
        _eval,
        _mine_negatives,
        _split_pairs,
        _train,
        _encode,
        _demo,
        _proxy,
        _ui,
        _serve,
    ):
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="echo-splade")
