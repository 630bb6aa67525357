from __future__ import annotations

import click
from click.core import ParameterSource

from ._options import (
    cpu_speed_options,
    query_mode_option,
    query_model_option,
    query_top_k_option,
    run_guarded,
    sparse_weight_option,
)

ENV_PREFIX = "ECHO_SPLADE_"
# options that configure the aliases named with --alias (and, given on the command line, every alias of --config)
_RULE_OPTIONS = {
    "mode": "mode",
    "hybrid": "hybrid",
    "sparse_weight": "sparse_weight",
    "query_top_k": "query_top_k",
    "fields": "fields",
    "sparse_field": "sparse_field",
    "model": "model",
    "two_phase": "two_phase",
}
_SERVER_OPTIONS = ("port", "host", "on_encoder_error", "ca_certs", "certfile", "keyfile", "timeout")


@click.command("proxy")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="Cluster URL to forward to; repeat for several nodes (round robin, the next one when a node is down).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file: upstream, port, [defaults] and one [alias.NAME] table per alias (README: 'Drop-in for any app').",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    help="Alias (or index) whose _search/_msearch/_count bodies are rewritten; repeatable.",
)
@query_mode_option()
@click.option(
    "--hybrid/--no-hybrid",
    default=False,
    show_default=True,
    help="Keep the lexical clause beside the sparse one (weighted sum) instead of replacing it.",
)
@sparse_weight_option(
    "--fusion",
    help="Hybrid fusion in one request: the sparse clause's weight in the weighted sum (BM25 gets 1 - this).",
)
@query_top_k_option()
@click.option(
    "--field",
    "fields",
    multiple=True,
    default=("text",),
    show_default=True,
    help="Text field whose match/multi_match/query_string clauses are rewritten; repeatable, globs allowed.",
)
@click.option("--sparse-field", default="sparse", show_default=True, help="The index's sparse field.")
@query_model_option
@click.option(
    "--two-phase/--no-two-phase",
    default=None,
    help="Search in two phases (heaviest query terms, then a rescore of the window with all of them) where the "
    "body ranks by score alone; _count stays exhaustive. [default: on for llm aliases without --hybrid]",
)
@click.option("--device", help="Device of the in-process encoder (cpu, cuda). [default: cuda when present]")
@click.option(
    "--on-encoder-error",
    type=click.Choice(["fail", "passthrough"]),
    default="fail",
    show_default=True,
    help="When the encoder fails: answer 503, or send the unmodified query (response header X-Echo-Splade-Rewrite says so).",
)
@click.option(
    "--ca-certs",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle verifying the upstream's TLS certificate.",
)
@click.option("--no-verify-certs", is_flag=True, help="Do not verify the upstream's certificate (tests only).")
@click.option(
    "--certfile", type=click.Path(exists=True, dir_okay=False), help="Listen on TLS with this certificate (PEM) ..."
)
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="... and this private key.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the upstream's answer (504 after).",
)
@click.option(
    "--user",
    envvar=ENV_PREFIX + "USER",
    show_envvar=True,
    help="The proxy's own user for what it reads itself (mapping, _meta, document frequencies); clients keep their own credentials.",
)
@click.option("--password", envvar=ENV_PREFIX + "PASSWORD", help=f"Password of --user (prefer ${ENV_PREFIX}PASSWORD).")
@click.option(
    "--api-key", envvar=ENV_PREFIX + "API_KEY", help=f"The proxy's own API key (prefer ${ENV_PREFIX}API_KEY)."
)
@cpu_speed_options
@click.pass_context
def command(ctx: click.Context, encoder_options, **opts) -> None:
    """Run a reverse proxy in front of a cluster that rewrites searches on --alias into learned sparse ones.

    Every request passes through unchanged (method, path, query string, headers including Authorization,
    body; responses streamed back as they come), except _search, _msearch and _count bodies on the
    configured aliases: their match/multi_match/query_string-style clauses on --field become sparse
    (or, with --hybrid, sparse + the original) clauses; everything else in the body stays byte-identical.
    Point any app's client at http://HOST:PORT instead of the cluster.
    """

    def action():
        from echo_splade.client import ConnectionConfig, connect
        from echo_splade.connector.proxy import AliasRule, BodyRewriter, ProxyConfig, RewritingProxy

        def given(name: str) -> bool:
            return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

        file_values = ProxyConfig.read_file(opts["config_file"]) if opts["config_file"] else {}
        rule_flags = {key: opts[name] for name, key in _RULE_OPTIONS.items()}
        rule_flags["fields"] = tuple(rule_flags["fields"])
        explicit = {key: rule_flags[key] for name, key in _RULE_OPTIONS.items() if given(name)}
        rules = {
            r.name: AliasRule.from_dict(r.name, {**_rule_values(r), **explicit}) for r in file_values.get("aliases", ())
        }
        for alias in opts["aliases"]:
            rules[alias] = AliasRule.from_dict(
                alias, {**(_rule_values(rules[alias]) if alias in rules else rule_flags), **explicit}
            )
        server = {k: v for k, v in file_values.items() if k in _SERVER_OPTIONS}
        server.update({k: opts[k] for k in _SERVER_OPTIONS if given(k) or k not in server})
        upstreams = tuple(opts["upstreams"]) or tuple(file_values.get("upstreams", ()))
        if not upstreams:
            raise ValueError("give the cluster to forward to: --upstream URL (or upstream = [...] in --config)")
        conn = ConnectionConfig(
            urls=upstreams,
            user=opts["user"],
            password=opts["password"],
            api_key=opts["api_key"],
            ca_certs=server.get("ca_certs"),
            verify_certs=not opts["no_verify_certs"],
            timeout=min(float(server["timeout"]), 60.0),
        )
        config = ProxyConfig(
            upstreams=tuple(conn.urls),  # user-info moved out of the URLs: client credentials pass as sent
            aliases=tuple(rules.values()),
            verify_certs=not opts["no_verify_certs"],
            **server,
        )
        rewriter = BodyRewriter(
            lambda: connect(conn), config.aliases, device=opts["device"], encoder_options=encoder_options
        )
        scheme = "https" if config.certfile else "http"
        described = ", ".join(f"{r.name} ({r.mode}{', hybrid' if r.hybrid else ''})" for r in config.aliases) or "none"
        click.echo(
            f"echo-splade proxy on {scheme}://{config.host}:{config.port} -> {', '.join(config.upstreams)}; rewriting: {described}",
            err=True,
        )
        RewritingProxy(config, rewriter).serve()

    run_guarded(action)


def _rule_values(rule) -> dict:
    values = rule.to_dict()
    values.pop("name")
    values["fields"] = tuple(values["fields"])
    return values
