from __future__ import annotations

import click

from ._options import connection_options, run_guarded


@click.command("train")
@connection_options
def command(conn) -> None:
    """(not implemented yet)"""
    raise click.ClickException("'echo-splade train' is not implemented yet")
