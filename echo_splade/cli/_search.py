from __future__ import annotations

import json

import click

from ._options import (
    adapter_option,
    connection_options,
    query_mode_option,
    query_model_option,
    query_top_k_option,
    run_guarded,
    sparse_weight_option,
)


@click.command("search")
@click.argument("query")
@click.option("--index", required=True, help="Alias or index to search.")
@query_model_option
@adapter_option
@query_mode_option(
    "tokens", help="Query encoding: the encoder, IDF-weighted tokens (no model), or QUERY as a JSON {token: weight}."
)
@click.option("--k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Hits to return.")
@click.option(
    "--hybrid",
    type=click.Choice(["none", "rrf", "weighted"]),
    default="none",
    show_default=True,
    help="Fuse with BM25 on title/text: reciprocal-rank fusion or normalised weighted sum.",
)
@sparse_weight_option(help="Weight of the sparse list in hybrid fusion (BM25 gets 1 - this).")
@query_top_k_option()
@click.option(
    "--min-weight", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Drop query terms weighing less."
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help='A JSON query clause for bool.filter, e.g. \'{"term": {"model": "x"}}\'; repeatable.',
)
@click.option("--explain", is_flag=True, help="Show the expansion terms each hit matched.")
@click.option(
    "--explain-terms",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Terms shown per hit with --explain.",
)
@click.option(
    "--refresh-df", is_flag=True, help="inference-free: recompute the stored document frequencies before searching."
)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@connection_options
def command(
    conn,
    query,
    index,
    model,
    adapter,
    mode,
    k,
    hybrid,
    sparse_weight,
    query_top_k,
    min_weight,
    filters,
    explain,
    explain_terms,
    refresh_df,
    as_json,
) -> None:
    """Search INDEX for QUERY with learned sparse retrieval (optionally hybrid with BM25)."""

    def action():
        from echo_splade.client import connect
        from echo_splade.connector import Hybrid, SparseRetriever

        try:
            parsed_filters = [json.loads(f) for f in filters]
        except json.JSONDecodeError as exc:
            raise ValueError(f"--filter is not valid JSON: {exc}") from None
        text = query
        if mode != "tokens":
            SparseRetriever.clean_text(query)  # an empty query fails before anything is loaded
        else:
            try:
                text = json.loads(query)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--mode tokens takes QUERY as a JSON object {{token: weight}}: {exc}") from None
        fusion = None if hybrid == "none" else Hybrid(method=hybrid, sparse_weight=sparse_weight)
        backend = connect(conn)
        try:
            retriever = SparseRetriever(
                backend,
                index,
                encoder=model if mode == "llm" else None,
                mode=mode,
                tokenizer=model if mode == "inference-free" else None,
                adapter=adapter,
                query_top_k=query_top_k,
                min_weight=min_weight,
                explain_top_n=explain_terms,
            )
            if refresh_df:
                if mode != "inference-free":
                    raise ValueError("--refresh-df only applies to --mode inference-free")
                retriever.refresh_document_frequencies()
            hits = retriever.search(text, k=k, filters=parsed_filters or None, hybrid=fusion or False, explain=explain)
        finally:
            backend.close()
        if as_json:
            click.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
            return
        if not hits:
            click.echo("no hits")
        for rank, hit in enumerate(hits, start=1):
            click.echo(_format_hit(rank, hit))

    run_guarded(action)


def _format_hit(rank: int, hit) -> str:
    lines = [f"{rank:>3}. {hit.id}  score {hit.score:.4f}" + _components(hit)]
    title = str(hit.source.get("title") or "").strip()
    text = " ".join(str(hit.source.get("text") or "").split())
    if title:
        lines.append(f"     {title[:120]}")
    if text:
        lines.append(f"     {text[:160]}{'...' if len(text) > 160 else ''}")
    if hit.explanation is not None:
        e = hit.explanation
        lines.append(f"     matched {e.matched} terms, sum of products {e.total:.4f}:")
        for t in e.terms:
            lines.append(f"       {t.label:<24} {t.query_weight:.4f} x {t.doc_weight:.4f} = {t.product:.4f}")
    return "\n".join(lines)


def _components(hit) -> str:
    if not hit.components:
        return ""
    parts = [f"{name} #{c['rank']} {c['score']:.3f}" for name, c in sorted(hit.components.items())]
    return "  [" + " | ".join(parts) + "]"
