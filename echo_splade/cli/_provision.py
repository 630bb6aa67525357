from __future__ import annotations

import click

from ._options import adapter_option, connection_options, run_guarded


@click.command("provision")
@click.option("--index", "name", required=True, help="Alias name; the physical index is NAME-v<N>.")
@click.option(
    "--model",
    help="Record this encoder (short name, HF dir or saved dir) in the index _meta; "
    "its revision and echo templates are read from its files (no weights loaded).",
)
@adapter_option
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True, help="Primary shards.")
@click.option("--replicas", type=click.IntRange(min=0), default=0, show_default=True, help="Replica shards.")
@click.option(
    "--analyzer",
    type=click.Choice(["auto", "english", "standard"]),
    default="auto",
    show_default=True,
    help="Analyzer of the BM25 fields title/text (auto: english when the node has it).",
)
@click.option(
    "--sparse-type",
    type=click.Choice(["auto", "rank_features", "sparse_vector"]),
    default="auto",
    show_default=True,
    help="Sparse field type (auto: sparse_vector on Elasticsearch >= 8.11, else rank_features; "
    "sparse_vector: Elasticsearch >= 8.11 only).",
)
@click.option("--new-version", is_flag=True, help="Create NAME-v<N+1> (the alias stays unless --swap).")
@click.option(
    "--swap", is_flag=True, help="Move the alias to the newest version in one atomic _aliases call (old index kept)."
)
@click.option("--drop-old", is_flag=True, help="Delete versions older than the one the alias points at.")
@click.option("--dry-run", is_flag=True, help="Print the exact REST calls and JSON bodies; change nothing.")
@click.option(
    "--restore-settings", is_flag=True, help="Only put back refresh/replica settings saved by an interrupted bulk load."
)
@click.option(
    "--ml-commons",
    "ml_commons",
    metavar="SERVICE_URL",
    help="Instead: wire the running `echo-splade serve` at SERVICE_URL into OpenSearch ML Commons for --index "
    "(settings, connectors, deployed remote models, sparse_encoding ingest pipeline, neural_sparse search "
    "pipeline); idempotent; prints the model ids.",
)
@click.option(
    "--query-top-k",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="With --ml-commons: query terms kept by the query model (SparseRetriever's default).",
)
@connection_options
def command(
    conn,
    name,
    model,
    adapter,
    shards,
    replicas,
    analyzer,
    sparse_type,
    new_version,
    swap,
    drop_old,
    dry_run,
    restore_settings,
    ml_commons,
    query_top_k,
) -> None:
    """Create or check the index NAME-v<N> behind the alias NAME (blue/green versions).

    Fields: title, text (BM25), sparse (rank_features or sparse_vector), doc_id, model, model_rev (keyword);
    _meta records the model, its revision, the feature-name scheme version and the echo
    templates. Re-running with the same spec is a no-op; an incompatible existing index is
    refused with the differences named.

    
    Blue/green: provision --index docs --new-version --model M   (creates docs-v2, alias stays)
                ingest into docs-v2, then
                provision --index docs --swap --model M          (alias -> docs-v2, one call)
                provision --index docs --drop-old                (deletes docs-v1)
    """

    def action() -> None:
        from echo_splade.client import connect
        from echo_splade.mappings import IndexSpec, provision
        from echo_splade.mappings import restore_settings as restore

        backend = connect(conn)
        try:
            if ml_commons:
                from ._ml_commons import provision_ml_commons

                provision_ml_commons(backend, ml_commons, name, query_top_k, dry_run)
                return
            if restore_settings:
                restored = restore(backend, name)
                if not restored:
                    click.echo(f"nothing to restore: no saved bulk-load settings on {name}")
                for index, values in restored.items():
                    click.echo(f"restored {index}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
                return
            options = dict(shards=shards, replicas=replicas, analyzer=analyzer, sparse_type=sparse_type)
            spec = _spec_from_model(name, model, adapter, options) if model else IndexSpec(name=name, **options)
            plan = provision(backend, spec, new_version=new_version, swap=swap, drop_old=drop_old, dry_run=dry_run)
            if dry_run:
                for request in plan.requests:
                    click.echo(request.render())
                click.echo(f"# dry run, nothing sent: {plan.summary()}")
            else:
                click.echo(plan.summary())
        finally:
            backend.close()

    run_guarded(action)


def _spec_from_model(name: str, model: str, adapter, options: dict):
    from echo_splade.encoder import EncoderSpec
    from echo_splade.mappings import IndexSpec

    # the encoder's name, model_rev and templates, read from its files: no weights are loaded
    return IndexSpec.from_encoder(name, EncoderSpec.resolve(model, adapter=adapter), **options)
