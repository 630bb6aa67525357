from __future__ import annotations

import functools
from typing import Any, Callable

import click

ENV_PREFIX = "ECHO_SPLADE_"


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared cluster connection options; pass one ``conn`` (ConnectionConfig).

    Secrets come from options or the environment and are never echoed:
    ``show_default`` and ``show_envvar`` stay off for them.
    """

    @click.option(
        "--url", "urls", multiple=True, envvar=ENV_PREFIX + "URL", show_envvar=True,
        help="Cluster URL; repeat for several nodes. [default: http://127.0.0.1:9200]",
    )
    @click.option("--user", envvar=ENV_PREFIX + "USER", show_envvar=True, help="Basic-auth user name.")
    @click.option("--password", envvar=ENV_PREFIX + "PASSWORD",
                  help=f"Basic-auth password (prefer the {ENV_PREFIX}PASSWORD environment variable).")
    @click.option("--api-key", envvar=ENV_PREFIX + "API_KEY",
                  help=f"API key (prefer the {ENV_PREFIX}API_KEY environment variable).")
    @click.option("--ca-certs", type=click.Path(exists=True, dir_okay=False), help="CA bundle for https.")
    @click.option("--no-verify-certs", is_flag=True, help="Do not verify TLS certificates.")
    @click.option("--timeout", type=float, default=30.0, show_default=True, help="Request timeout, seconds.")
    @click.option("--engine", type=click.Choice(["opensearch", "elasticsearch"]),
                  help="Cluster engine. [default: detected from the root endpoint]")
    @functools.wraps(func)
    def wrapper(*args: Any, urls, user, password, api_key, ca_certs, no_verify_certs, timeout, engine, **kwargs):
        from echo_splade.client import ConnectionConfig

        try:
            conn = ConnectionConfig(
                urls=tuple(urls) or ("http://127.0.0.1:9200",),
                user=user, password=password, api_key=api_key, ca_certs=ca_certs,
                verify_certs=not no_verify_certs, timeout=timeout, engine=engine,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return func(*args, conn=conn, **kwargs)

    return wrapper


_HINTS = {
    "AuthenticationError": "check --user with --password (or $ECHO_SPLADE_PASSWORD), or --api-key "
                           "(or $ECHO_SPLADE_API_KEY)",
    "AuthorizationError": "the user or API key lacks the privilege for that action; grant it in its role "
                          "(README: 'Connecting to a secured cluster')",
    "TLSError": "pass the cluster's CA certificate with --ca-certs (or --no-verify-certs, for tests only); "
                "use http:// only for a cluster without TLS",
}


def cluster_error_message(exc: Exception) -> str:
    """The one line the CLI prints for a ``ClusterError``: its message plus a hint naming the flag to fix."""
    hint = _HINTS.get(type(exc).__name__)
    return f"{exc}\nhint: {hint}" if hint else str(exc)


def run_guarded(action: Callable[[], Any]) -> Any:
    """Run ``action``; turn expected failures into a one-line error and a non-zero exit."""
    from echo_splade.client import ClusterError

    try:
        return action()
    except ClusterError as exc:
        raise click.ClickException(cluster_error_message(exc)) from None
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
