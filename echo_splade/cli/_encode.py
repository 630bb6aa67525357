from __future__ import annotations

import json

import click

from echo_splade.encoder import DEFAULT_MODEL  # torch-free (lazy package)

from ._options import adapter_option, run_guarded


@click.command("encode")
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True),
    help="Encode a corpus instead: a BEIR folder, JSONL (_id/title/text) or Parquet.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Encoder: short name (echo-splade-smollm2-135m and echo-splade-smollm2-135m-head the built-in "
    "trained encoders; smollm2-135m, tiny-mistral base models), HF dir/hub id, or a trained encoder dir.",
)
@adapter_option
@click.option("--gguf-file", help="Load the base model from this GGUF file inside --model.")
@click.option("--queries", is_flag=True, help="Encode as queries (query echo template) instead of documents.")
@click.option("--top-k", type=click.IntRange(min=1), help="Keep the K largest weights per text.")
@click.option("--min-weight", type=click.FloatRange(min=0), help="Drop weights below this.")
@click.option("--max-length", type=click.IntRange(min=2), help="Model input tokens per window (default 512).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Windows per forward pass (default 8).")
@click.option("--device", help="cpu, cuda, cuda:1, ... [default: CUDA when present]")
@click.option(
    "--terms",
    type=click.IntRange(min=1),
    help="Print the N strongest terms per text as readable lines instead of JSONL.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Encode at most this many records of --input.")
def command(
    texts,
    input_path,
    model,
    adapter,
    gguf_file,
    queries,
    top_k,
    min_weight,
    max_length,
    batch_size,
    device,
    terms,
    limit,
) -> None:
    """Encode TEXTS (or a corpus file) into sparse vectors; print JSONL {id, tokens: {token: weight}}.

    \b
    Examples:
      echo-splade encode "what causes heart disease" --queries --terms 10
      echo-splade encode --input ../shared/data/scifact --limit 5 --top-k 64
    """
    if bool(texts) == bool(input_path):
        raise click.UsageError("give either TEXTS or --input (not both, not neither)")

    def action() -> None:
        from echo_splade.encoder import EchoSpladeEncoder

        encoder = EchoSpladeEncoder.from_pretrained(
            model, adapter=adapter, device=device, max_length=max_length, batch_size=batch_size, gguf_file=gguf_file
        )
        kind = "query" if queries else "document"
        for batch in _batches(texts, input_path, limit, encoder.batch_size * 8):
            ids = [i for i, _ in batch]
            vectors = encoder.encode([t for _, t in batch], kind, top_k=top_k, min_weight=min_weight)
            for doc_id, vec in zip(ids, vectors):
                weights = encoder.tokens(vec)
                if terms:
                    strongest = sorted(weights.items(), key=lambda kv: -kv[1])[:terms]
                    click.echo(f"{doc_id}\t{len(vec)} non-zero\t" + " ".join(f"{tok}:{w:.2f}" for tok, w in strongest))
                else:
                    click.echo(
                        json.dumps(
                            {"id": doc_id, "model_rev": encoder.model_rev, "tokens": weights}, ensure_ascii=False
                        )
                    )

    run_guarded(action)


def _batches(texts, input_path, limit, size):
    """``(id, text)`` lists: the arguments (ids are their positions), or the good records of a corpus."""
    if texts:
        yield [(str(i), t) for i, t in enumerate(texts)]
        return
    from echo_splade.encoder import document_text
    from echo_splade.ingest import CorpusReader

    batch: list[tuple[str, str]] = []
    count = 0
    for record in CorpusReader(input_path):
        if record["reason"]:
            click.echo(f"skipping {record['doc_id'] or 'a record'} ({record['reason']}: {record['detail']})", err=True)
            continue
        batch.append((record["doc_id"], document_text(record["title"], record["text"])))
        count += 1
        if len(batch) >= size or (limit and count >= limit):
            yield batch
            batch = []
        if limit and count >= limit:
            return
    if batch:
        yield batch
