from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

from ._options import library_error_message, run_guarded


def node_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options that pick one local node; pass ``node`` (a ``LocalNode``)."""

    @click.option(
        "--engine",
        type=click.Choice(["opensearch", "elasticsearch"]),
        default="opensearch",
        show_default=True,
        help="Which server to run.",
    )
    @click.option(
        "--version",
        "version",
        help="Server version from Maven Central: OpenSearch 1.x, 2.x, 3.x (3.x needs Java 21+), Elasticsearch "
        "7.x, 8.x, 9.x (9.x needs Java 21+); the versions measured are in the README (scripts/compat_matrix.sh). "
        "[default: 2.19.6 for OpenSearch, 8.19.21 for Elasticsearch]",
    )
    @click.option(
        "--port",
        type=click.IntRange(1024, 65535),
        help="HTTP port on 127.0.0.1. [default: 9200 for OpenSearch, 9201 for Elasticsearch]",
    )
    @click.option(
        "--home",
        type=click.Path(file_okay=False),
        help="Downloads, installs and node data. [default: $ECHO_SPLADE_HOME, else /var/lib/echo-splade "
        "as root, else ~/.cache/echo-splade]",
    )
    @click.option(
        "--downloads",
        type=click.Path(file_okay=False),
        envvar="ECHO_SPLADE_DOWNLOADS",
        show_envvar=True,
        help="Maven download cache, shareable between homes. [default: HOME/maven]",
    )
    @click.option("--heap", default="512m", show_default=True, help="JVM heap (min = max), e.g. 512m or 2g.")
    @click.option(
        "--setting",
        "settings",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra node setting, repeatable, e.g. --setting thread_pool.write.queue_size=1.",
    )
    @click.option(
        "--secure",
        is_flag=True,
        help="Elasticsearch only: security on (HTTPS with a local CA, user 'elastic' whose password is "
        "$ELASTIC_PASSWORD or generated into a mode-0600 file, least-privilege roles). "
        "[default port 9202]",
    )
    @click.option(
        "--ml",
        is_flag=True,
        help="OpenSearch only: add the ML Commons, neural-search, k-NN and job-scheduler plugins "
        "(the node `echo-splade provision --ml-commons` wires the encoder service into).",
    )
    @click.option(
        "--nodes",
        type=click.IntRange(1, 9),
        default=1,
        show_default=True,
        help="Members of one cluster on 127.0.0.1: HTTP ports --port, --port+1, ...; transport ports "
        "--transport-port, +1, ...; one node folder each. Give the same options to start, stop and status.",
    )
    @click.option(
        "--transport-port",
        type=click.IntRange(1024, 65535),
        help="With --nodes N > 1: the first member's transport port. [default: --port + 100]",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any, engine, version, port, home, downloads, heap, settings, secure, ml, nodes, transport_port, **kwargs
    ):
        from echo_splade.integration import LocalCluster, LocalNode

        try:
            if nodes > 1:
                if secure:
                    raise ValueError("--secure runs a single node; it cannot be combined with --nodes")
                if ml:
                    raise ValueError("--ml runs a single node; it cannot be combined with --nodes")
                cluster = LocalCluster(
                    nodes=nodes,
                    engine=engine,
                    version=version,
                    port=port,
                    transport_port=transport_port,
                    home=home,
                    heap=heap,
                    settings=_parse_settings(settings),
                    download_dir=downloads,
                )
                return func(*args, node=cluster, **kwargs)
            if transport_port is not None:
                raise ValueError("--transport-port needs --nodes N with N > 1 (a single node binds no other port)")
            node = LocalNode(
                engine=engine,
                version=version,
                port=port,
                home=home,
                heap=heap,
                settings=_parse_settings(settings),
                download_dir=downloads,
                secure=secure,
                ml=ml,
            )
        except ValueError as exc:
            raise click.UsageError(library_error_message(exc)) from None
        return func(*args, node=node, **kwargs)

    return wrapper


def _parse_settings(pairs: tuple[str, ...]) -> dict:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--setting expects KEY=VALUE, got {pair!r}")
        try:
            settings[key.strip()] = json.loads(value)  # numbers, booleans, lists
        except ValueError:
            settings[key.strip()] = value
    return settings


@click.group("cluster")
def command() -> None:
    """Run a real local OpenSearch/Elasticsearch node, assembled from Maven Central.

    The node binds 127.0.0.1, runs single-node with its data and logs under --home, and
    (as root) runs as the unprivileged system user 'echo-splade'.

    \b
    OpenSearch (default, port 9200): the integ-test-zip server plus the modules
      mapper-extras (rank_features), analysis-common (english analyzer) and
      lang-painless. Java 11..23.
    Elasticsearch (port 9201): the integ-test-zip server, security off, plus a
      small root-endpoint module compiled at install (needs javac). sparse_vector
      works; rank_features does not (its module is not on Maven Central).

    Elasticsearch with --secure (port 9202): security on, HTTPS with a CA and node
      certificate generated in the node folder, the superuser 'elastic' (for setup only)
      and the roles echo_splade_provisioner / _ingest / _search on 'secure-*' with one
      user each; `cluster status --secure` prints where the CA and the passwords are.

    Typical use: `echo-splade cluster start`, `... status`, `... stop`.
    """


@command.command("install")
@node_options
def install(node) -> None:
    """Download (once, SHA-1 verified) and assemble the server; later starts need no network."""
    path = run_guarded(node.install)
    click.echo(f"{node.engine} {node.version} installed in {path}")


@command.command("start")
@node_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=180.0,
    show_default=True,
    help="Seconds to wait for the node to answer with the wanted health.",
)
@click.option(
    "--wait-for",
    type=click.Choice(["green", "yellow"]),
    default="green",
    show_default=True,
    help="Cluster health to wait for.",
)
def start(node, timeout, wait_for) -> None:
    """Start the node (no-op when it already runs) and wait until it is healthy; print its URL."""
    from echo_splade.integration import LocalCluster, NodeStartError

    try:
        started = run_guarded(lambda: node.start(timeout=timeout, wait_for_status=wait_for))
    except NodeStartError as exc:
        click.echo(exc.log_tail, err=True)
        raise click.ClickException(str(exc)) from None
    if isinstance(node, LocalCluster):
        for member, now in zip(node.members, started):
            click.echo(f"{'started' if now else 'already running'}: {member.url} (pid {member.pid})")
        click.echo(f"cluster {node.name}: {len(node.members)} {node.engine} {node.version} nodes, {wait_for}")
        click.echo(",".join(node.urls))
        return
    if started:
        click.echo(f"started {node.engine} {node.version} (pid {node.pid}) at {node.url}")
    else:
        click.echo(f"already running: {node.engine} {node.version} (pid {node.pid}) at {node.url}")
    if node.security is not None:
        click.echo(
            f"security on: --ca-certs {node.security.ca_cert}; user elastic, password in "
            f"{node.security.password_file}; role users' passwords in {node.security.users_file}"
        )
    click.echo(node.url)


@command.command("stop")
@node_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def stop(node, timeout) -> None:
    """Stop the node that 'cluster start' started with the same --engine/--port/--home (pidfile)."""
    from echo_splade.integration import LocalCluster

    if isinstance(node, LocalCluster):
        pids = [member.pid for member in node.members]
        for member, pid, was in zip(node.members, pids, run_guarded(lambda: node.stop(timeout=timeout))):
            click.echo(f"stopped {member.url} (pid {pid})" if was else f"not running: {member.url}")
        return
    pid = node.pid
    if run_guarded(lambda: node.stop(timeout=timeout)):
        click.echo(f"stopped {node.engine} at {node.url} (pid {pid})")
    else:
        click.echo(f"not running: no live {node.engine} process recorded in {node.pid_file}")


@command.command("status")
@node_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(node, as_json) -> None:
    """Version, health and loaded modules of the node; exits 1 when it is not up.

    With --nodes N: each member's process and the cluster's own view of its nodes; exits 1 unless
    every member runs."""
    from echo_splade.integration import LocalCluster

    if isinstance(node, LocalCluster):
        _cluster_status(node.status(), as_json)
        return
    info = node.status()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
    elif info["running"]:
        started = f"pid {info['pid']}" if info["pid"] else "not started by echo-splade from this --home"
        click.echo(f"{info['engine']} {info['version']} at {info['url']} ({started})")
        click.echo(f"health:  {info.get('health')}")
        click.echo(f"modules: {', '.join(info.get('modules', [])) or '-'}")
        click.echo(f"plugins: {', '.join(info.get('plugins', [])) or '-'}")
        click.echo(f"data:    {info['node_dir']}")
        if info.get("secure"):
            click.echo(f"ca:      {info['ca_certs']}")
            click.echo(f"elastic password file: {info['password_file']} (mode 0600)")
            click.echo(f"users file: {info['users_file']} (mode 0600)")
    else:
        click.echo(f"not running: nothing answers at {info['url']} ({info.get('error')})")
    if not info["running"]:
        raise SystemExit(1)


def _cluster_status(info: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
    else:
        click.echo(f"cluster {info['name']}: {info['engine']} {info['version']}, health {info.get('health', '-')}")
        for member in info["members"]:
            state = f"pid {member['pid']}" if member["running"] else "DOWN"
            click.echo(f"  {member['name']}: {member['url']} transport {member['transport']} ({state})")
        for row in info.get("nodes", []):
            manager = row.get("cluster_manager", row.get("master"))
            click.echo(
                f"  in cluster: {row.get('name')} roles {row.get('node.role')}{' (manager)' if manager == '*' else ''}"
            )
        if info.get("error"):
            click.echo(f"  no member answers: {info['error']}")
    if not info["running"]:
        raise SystemExit(1)
