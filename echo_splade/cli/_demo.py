from __future__ import annotations

import click

from ._options import adapter_option, connection_options, run_guarded


@click.command("demo")
@click.option(
    "--model",
    help="Encoder: short name (echo-splade-smollm2-135m, echo-splade-smollm2-135m-head, smollm2-135m, "
    "tiny-mistral) or folder. [default: the built-in model]",
)
@adapter_option
@click.option("--index", help="Index (alias) for the sample corpus. [default: echo-splade-demo-<model_rev>]")
@click.option("--no-start", is_flag=True, help="Do not start the local node when nothing answers at --url.")
@click.option("--k", type=click.IntRange(min=1), default=3, show_default=True, help="Hits shown per example query.")
@click.option("--doc-top-k", type=click.IntRange(min=1), help="Terms kept per passage. [default: 128]")
@click.option("--query-top-k", type=click.IntRange(min=1), help="Terms kept per query. [default: 24]")
@connection_options
def command(conn, model, adapter, index, no_start, k, doc_top_k, query_top_k) -> None:
    """Run the whole product on built-in defaults: local node, index, ingest, example searches.

    Starts the local OpenSearch node when nothing answers at --url (default
    http://127.0.0.1:9200), provisions an index, ingests the built-in sample
    corpus (52 short passages) with the built-in model, and runs example
    searches, printing the expansion terms that matched each hit.
    """

    from echo_splade.integration import Demo, NodeStartError

    def action() -> None:
        options = {}
        if doc_top_k is not None:
            options["doc_top_k"] = doc_top_k
        if query_top_k is not None:
            options["query_top_k"] = query_top_k
        Demo(
            conn, model=model, adapter=adapter, index=index, start_node=not no_start, k=k, echo=click.echo, **options
        ).run()

    try:
        run_guarded(action)
    except NodeStartError as exc:
        click.echo(exc.log_tail, err=True)
        raise click.ClickException(str(exc)) from None
