from __future__ import annotations

import click

from ._options import connection_options, cpu_speed_options, query_mode_option, query_model_option, run_guarded


@click.command("ui")
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    required=True,
    help="Alias (or index) to search; repeatable (the page offers a choice).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8701, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@query_mode_option()
@query_model_option
@click.option("--k", "k", type=click.IntRange(1, 50), default=10, show_default=True, help="Hits per column.")
@cpu_speed_options
@connection_options
def command(conn, aliases, port, host, mode, model, k, encoder_options) -> None:
    """Serve a search page: BM25, sparse and hybrid hits side by side, with the terms each hit matched.

    Open http://HOST:PORT in a browser; everything is on one self-contained page (nothing loaded from
    the internet). Keyboard: / focuses the query, Enter searches, j/k or Tab move between hits.
    """

    def action():
        import uvicorn

        from echo_splade.client import connect
        from echo_splade.connector.proxy import SearchPage

        backend = connect(conn)
        page = SearchPage(
            backend,
            list(aliases),
            mode=mode,
            encoder=model if mode == "llm" else None,
            tokenizer=model if mode == "inference-free" else None,
            k=k,
            encoder_options=encoder_options,
        )
        if mode == "llm":
            _ = page.retriever(aliases[0]).encoder  # load the model before the first search, not during it
        click.echo(f"echo-splade ui on http://{host}:{port} (aliases: {', '.join(aliases)}; {mode})", err=True)
        uvicorn.run(page.app, host=host, port=port, log_level="warning", access_log=False)

    run_guarded(action)
