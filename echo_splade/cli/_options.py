from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, Union

import click

logger = logging.getLogger(__name__)

ENV_PREFIX = "ECHO_SPLADE_"


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared cluster connection options; pass one ``conn`` (ConnectionConfig).

    Secrets come from options or the environment and are never echoed:
    ``show_default`` and ``show_envvar`` stay off for them.
    """

    @click.option(
        "--url",
        "urls",
        multiple=True,
        envvar=ENV_PREFIX + "URL",
        show_envvar=True,
        help="Cluster URL; repeat for several nodes. [default: http://127.0.0.1:9200]",
    )
    @click.option("--user", envvar=ENV_PREFIX + "USER", show_envvar=True, help="Basic-auth user name.")
    @click.option(
        "--password",
        envvar=ENV_PREFIX + "PASSWORD",
        help=f"Basic-auth password (prefer the {ENV_PREFIX}PASSWORD environment variable).",
    )
    @click.option(
        "--api-key",
        envvar=ENV_PREFIX + "API_KEY",
        help=f"API key (prefer the {ENV_PREFIX}API_KEY environment variable).",
    )
    @click.option("--ca-certs", type=click.Path(exists=True, dir_okay=False), help="CA bundle for https.")
    @click.option("--no-verify-certs", is_flag=True, help="Do not verify TLS certificates.")
    @click.option("--timeout", type=float, default=30.0, show_default=True, help="Request timeout, seconds.")
    @click.option(
        "--engine",
        type=click.Choice(["opensearch", "elasticsearch"]),
        help="Cluster engine. [default: detected from the root endpoint]",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, urls, user, password, api_key, ca_certs, no_verify_certs, timeout, engine, **kwargs):
        from echo_splade.client import ConnectionConfig

        try:
            conn = ConnectionConfig(
                urls=tuple(urls) or ("http://127.0.0.1:9200",),
                user=user,
                password=password,
                api_key=api_key,
                ca_certs=ca_certs,
                verify_certs=not no_verify_certs,
                timeout=timeout,
                engine=engine,
            )
        except ValueError as exc:
            raise click.UsageError(library_error_message(exc)) from None
        _redact_argv(sys.argv)
        return func(*args, conn=conn, **kwargs)

    return wrapper


def parse_top_k(value: Optional[str]) -> Optional[int]:
    """A positive integer, or ``None`` for ``all``/``none`` (as many terms as the clause limit allows)."""
    if value is None or str(value).lower() in ("all", "none"):
        return None
    try:
        k = int(value)
    except ValueError:
        raise click.BadParameter(f"expected a positive integer or 'all', got {value!r}") from None
    if k < 1:
        raise click.BadParameter(f"expected a positive integer or 'all', got {value!r}")
    return k


def query_top_k_option(help: str = "Query terms kept ('all': as many as the clause limit allows).") -> Any:
    """``--query-top-k K|all`` (default 64, ``SparseRetriever``'s): an int, or ``None`` for all."""
    return click.option(
        "--query-top-k",
        type=str,
        default="64",
        show_default=True,
        callback=lambda _ctx, _param, value: parse_top_k(value),
        help=help,
    )


def sparse_weight_option(*aliases: str, help: str) -> Any:
    """``--sparse-weight W`` (and ``aliases``, e.g. ``--fusion``): the sparse list's weight in a hybrid, in [0, 1]."""
    from echo_splade.connector import DEFAULT_SPARSE_WEIGHT

    return click.option(
        *aliases,
        "--sparse-weight",
        "sparse_weight",
        type=click.FloatRange(0, 1),
        default=DEFAULT_SPARSE_WEIGHT,
        show_default=True,
        help=help,
    )


QUERY_MODE_HELP = "Query encoding: the encoder, or IDF-weighted query tokens (no model)."


def query_mode_option(*extra: str, help: str = QUERY_MODE_HELP) -> Any:
    """``--mode llm|inference-free[|extra]`` (default llm): how queries are encoded."""
    return click.option(
        "--mode",
        type=click.Choice(["llm", "inference-free", *extra]),
        default="llm",
        show_default=True,
        help=help,
    )


def query_model_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--model``: the query side's encoder (llm) or tokenizer (inference-free); default: what the index records."""
    return click.option(
        "--model",
        help="Encoder name or folder (llm mode) / tokenizer (inference-free). "
        "[default: the model recorded in the index _meta]",
    )(func)


def adapter_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--adapter DIR``: a PEFT LoRA adapter folder merged into ``--model``."""
    return click.option(
        "--adapter", type=click.Path(exists=True, file_okay=False), help="PEFT LoRA adapter folder merged into --model."
    )(func)


def _speed_options(options_name: str, int8_help: str, compile_help: str) -> Callable[..., Any]:
    """``--int8`` and ``--compile``; the command gets one ``encoder_options`` dict (``from_pretrained`` options:
    ``echo_splade.encoder.<options_name>`` with ``--int8``, ``compile=True`` with ``--compile``)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--int8", is_flag=True, help=int8_help)
        @click.option("--compile", "compile_", is_flag=True, help=compile_help)
        @functools.wraps(func)
        def wrapper(*args: Any, int8: bool, compile_: bool, **kwargs: Any) -> Any:
            options: dict[str, Any] = {}
            if int8:
                import echo_splade.encoder  # imports torch: only when asked

                options.update(getattr(echo_splade.encoder, options_name))
            if compile_:
                options["compile"] = True
            return func(*args, encoder_options=options, **kwargs)

        return wrapper

    return decorate


cpu_speed_options = _speed_options(
    "INT8_QUERY_OPTIONS",
    "Encode with int8 on the CPU (per-token int8 backbone and LM head after a SmoothQuant migration; "
    "echo models): faster, vectors near fp32's; speed and nDCG@10 against fp32 in README 'Measured'.",
    "torch.compile the encoder: about a minute more at start, then 1.4x faster with --int8 (needs a C compiler).",
)
"""``--int8`` / ``--compile`` of the long-running query-side commands (``serve``, ``proxy``, ``ui``)."""

ingest_speed_options = _speed_options(
    "INT8_DOCUMENT_OPTIONS",
    "Encode documents with int8 on the CPU (per-token int8 backbone after a SmoothQuant migration, fp32 LM head; "
    "echo models): faster, vectors near fp32's, recorded in the index _meta; figures in README 'Measured'.",
    "torch.compile each encoder actor: about a minute more at its start (a C compiler needed); with --int8 "
    "for long ingests.",
)
"""``--int8`` / ``--compile`` of ``ingest``."""


def dataset_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--dataset DIR`` (required): a BEIR-layout folder, passed as a ``Path``."""
    return click.option(
        "--dataset",
        required=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="A BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.",
    )(func)


_HINTS = {
    "AuthenticationError": "check --user with --password (or $ECHO_SPLADE_PASSWORD), or --api-key "
    "(or $ECHO_SPLADE_API_KEY)",
    "AuthorizationError": "the user or API key lacks the privilege for that action; grant it in its role "
    "(README: 'Connecting to a secured cluster')",
    "TLSError": "pass the cluster's CA certificate with --ca-certs (or --no-verify-certs, for tests only); "
    "use http:// only for a cluster without TLS",
}


#: The flag of each library option a typed error (``EchoSpladeValueError.option``, ``ClusterError.option``) or a
#: log record (``extra={"hint_options": (...)}``) names; a callable writes the whole hint after the message from
#: the error's (record's) ``context``.
_OPTION_FLAGS: dict[str, Union[str, Callable[[Any], str]]] = {
    "user": "--user",
    "password": "--password",
    "api_key": "--api-key",
    "ca_certs": "--ca-certs",
    "verify_certs": "--no-verify-certs",
    "analyzer": "--analyzer",
    "engine": "--engine",
    "home": "--home",
    "port": "--port",
    "version": "--version",
    "restore_settings": lambda exc: (
        f": `echo-splade provision --index {exc.context.get('index', 'NAME')} --restore-settings`"
    ),
    "actors": "--actors",
    "resume": "--resume",
    "corpus": "--corpus",
    "id_field/text_field": "--id-field/--text-field",
    "index": "--index",
    "new_version": "--new-version",
    "swap": "--swap",
    "sparse_type": "--sparse-type",
    "device": "--device",
    "provision": lambda exc: (
        f" (--no-provision): create it first (`echo-splade provision --index {exc.context.get('index', 'NAME')}`)"
    ),
}


def flag_with_value(flag: str, context: dict) -> str:
    """``--flag``, ``--flag VALUE`` (``context["value"]``) or ``--flag A or --flag B`` (``context["choices"]``)."""
    if "value" in context:
        return f"{flag} {context['value']}"
    if context.get("choices"):
        return " or ".join(f"{flag} {choice}" for choice in context["choices"])
    return flag


def library_log_hint(options: tuple, context: dict) -> str:
    """What the CLI appends to a library log line that names ``options``: their flags, or a callable's hint."""
    holder = type("Hint", (), {"context": context})()
    flags = []
    for option in options:
        flag = _OPTION_FLAGS.get(option)
        if callable(flag):
            return flag(holder)
        if flag is not None:
            flags.append(flag_with_value(flag, context) if len(options) == 1 else flag)
    return f" ({', '.join(flags)})" if flags else ""


def library_error_message(exc: BaseException) -> str:
    """The line the CLI prints for a library error: its message, plus the flag of the option it names."""
    option = getattr(exc, "option", None)
    flag = _OPTION_FLAGS.get(option) if isinstance(option, str) else None
    if flag is None:
        return str(exc)
    if callable(flag):
        return f"{exc}{flag(exc)}"
    flag = flag_with_value(flag, getattr(exc, "context", None) or {})
    message, hint = str(exc), getattr(exc, "hint", None)
    if isinstance(hint, str) and hint and message.endswith(f"({hint})"):  # "... (what would help: --flag)"
        return f"{message[: -len(hint) - 1]}{hint}: {flag})"
    return f"{message} ({flag})"


def cluster_error_message(exc: Exception) -> str:
    """The one line the CLI prints for a ``ClusterError``: its message plus a hint naming the flag to fix."""
    hint = _HINTS.get(type(exc).__name__)
    message = library_error_message(exc)  # e.g. an ingest that stopped: "... resume=True ... (--resume)"
    return f"{message}\nhint: {hint}" if hint else message


_SECRET_OPTIONS = ("--password", "--api-key")


def _redact_argv(argv: list[str]) -> None:
    """Replace secret option values and URL user-info in ``argv`` in place with ``***``.

    Libraries record the command line (Ray stores ``sys.argv`` as the job's entrypoint in its session
    files), so a secret passed as an option must not stay there. The environment variables
    (``$ECHO_SPLADE_PASSWORD``, ``$ECHO_SPLADE_API_KEY``) keep secrets out of argv altogether.
    """
    from echo_splade.client import redact_url

    redact_next = False
    for i, arg in enumerate(argv):
        if redact_next:
            argv[i], redact_next = "***", False
            continue
        if arg in _SECRET_OPTIONS:
            redact_next = True
        elif arg.startswith(tuple(f"{o}=" for o in _SECRET_OPTIONS)):
            argv[i] = arg.split("=", 1)[0] + "=***"
        elif "://" in arg and "@" in arg:
            argv[i] = redact_url(arg.split("=", 1)[1]) if arg.startswith("--url=") else redact_url(arg)
            if arg.startswith("--url="):
                argv[i] = "--url=" + argv[i]


def run_guarded(action: Callable[[], Any]) -> Any:
    """Run ``action``; turn expected failures into a one-line error and a non-zero exit."""
    from echo_splade.client import ClusterError, EchoSpladeValueError

    try:
        return action()
    except ClusterError as exc:
        raise click.ClickException(cluster_error_message(exc)) from None
    except EchoSpladeValueError as exc:  # the library's typed errors: one line, the flag hint added here
        raise click.ClickException(library_error_message(exc)) from None
    except (ValueError, FileNotFoundError) as exc:
        # Most are bad input said in one line; a genuine bug may raise them too, so -v shows where it came from.
        logger.info("traceback of the error below:", exc_info=exc)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
