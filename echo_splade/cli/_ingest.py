from __future__ import annotations

import click

from echo_splade.encoder import DEFAULT_MODEL  # torch-free (lazy package)

from ._options import adapter_option, connection_options, ingest_speed_options, run_guarded
from ._progress import Progress


@click.command("ingest")
@click.option(
    "--corpus",
    required=True,
    type=click.Path(exists=True),
    help="BEIR folder (corpus.jsonl), JSONL file, or Parquet file/folder.",
)
@click.option("--index", required=True, help="Index (alias) to write to; provisioned when missing.")
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Encoder: short name, HF directory, or a directory written by `echo-splade train`.",
)
@adapter_option
@click.option(
    "--format",
    "corpus_format",
    type=click.Choice(["auto", "beir", "jsonl", "parquet"]),
    default="auto",
    show_default=True,
    help="Corpus format (auto: by path).",
)
@click.option("--id-field", default="_id", show_default=True, help="Id field (JSONL/Parquet).")
@click.option("--title-field", default="title", show_default=True, help="Title field (may be absent).")
@click.option("--text-field", default="text", show_default=True, help="Text field.")
@click.option(
    "--resume",
    is_flag=True,
    help="Skip documents already in the index with the same model_rev (finish an interrupted run).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Write the run summary as JSON here (also when the run fails).",
)
@click.option(
    "--dead-letter",
    "dead_letter_path",
    type=click.Path(dir_okay=False),
    help="Dead-letter JSONL file. [default: <report>.dead-letter.jsonl beside --report, "
    "else ./<index>.dead-letter.jsonl]",
)
@click.option(
    "--doc-top-k",
    type=click.IntRange(min=0),
    default=256,
    show_default=True,
    help="Keep the N largest weights per document (0: all). An untrained model gives almost every "
    "vocabulary entry a weight, so keep this bounded.",
)
@click.option("--min-weight", type=click.FloatRange(min=0), help="Drop weights below this.")
@click.option(
    "--doc-mass",
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Then keep the largest weights until they hold this share of the document's total weight, e.g. 0.8: "
    "a 0.63x index and 0.7x sparse latency at no nDCG@10 loss for llm-mode queries (README, Measured). "
    "[default: no mass pruning]",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Documents per encoder call."
)
@click.option("--max-length", type=click.IntRange(min=2), help="Model input limit per window [default: the model's].")
@click.option(
    "--actors", type=click.IntRange(min=1), help="Encoder actors [default: one per GPU; on CPU one per 8 CPUs]."
)
@click.option(
    "--threads",
    "torch_threads",
    type=click.IntRange(min=1),
    help="Torch threads per CPU encoder actor [default: CPUs / actors].",
)
@click.option("--writers", type=click.IntRange(min=1), default=2, show_default=True, help="Bulk-writer actors.")
@click.option(
    "--chunk-docs",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Documents per bulk request (at most).",
)
@click.option(
    "--chunk-mb",
    type=click.FloatRange(min=0.01),
    default=10.0,
    show_default=True,
    help="Megabytes per bulk request (at most).",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Retries of a bulk request on 429/502/503/504 or an unreachable cluster.",
)
@click.option(
    "--truncate",
    is_flag=True,
    help="Encode only the first --max-length window of long documents "
    "(faster; the rest of the text is not encoded). [default: max-pool all windows]",
)
@ingest_speed_options
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="[default: cuda when Ray has GPUs]")
@click.option(
    "--encoder-resources",
    help="Custom Ray resources per encoder actor, as JSON, e.g. '{\"encoder\": 1}': the actors run only on "
    "nodes started with `ray start --resources '{\"encoder\": N}'`.",
)
@click.option("--ray-address", help="Existing Ray cluster ('auto' or ray://host:10001). [default: a local one]")
@click.option("--no-provision", is_flag=True, help="Do not create or check the index; it must exist.")
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    help="Primary shards of the index when ingest creates it. [default: 1; an existing index keeps its own]",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=0),
    help="Replicas of the index when ingest creates it (held at 0 during the load, then put back). [default: 0]",
)
@click.option("--limit", type=click.IntRange(min=0), help="Read only the first N records (a trial run).")
@connection_options
def command(
    conn,
    corpus,
    index,
    model,
    adapter,
    corpus_format,
    id_field,
    title_field,
    text_field,
    resume,
    report_path,
    dead_letter_path,
    doc_top_k,
    min_weight,
    doc_mass,
    batch_size,
    max_length,
    actors,
    torch_threads,
    writers,
    chunk_docs,
    chunk_mb,
    max_retries,
    truncate,
    encoder_options,
    device,
    encoder_resources,
    ray_address,
    no_provision,
    shards,
    replicas,
    limit,
) -> None:
    """Encode a corpus and bulk-index it as rank_features (Ray; resumable; bad records to a dead-letter file).

    Each document is indexed under its corpus id, so running again overwrites instead of duplicating;
    --resume skips what is already there. Exits non-zero when the cluster stays unreachable:
    run the same command again with --resume to finish.
    """
    from echo_splade.ingest import IngestJob

    def build() -> IngestJob:
        return IngestJob(
            corpus,
            index,
            conn,
            model=model,
            adapter=adapter,
            max_length=max_length,
            device=device,
            torch_threads=torch_threads,
            corpus_format=corpus_format,
            id_field=id_field,
            title_field=title_field,
            text_field=text_field,
            resume=resume,
            provision=not no_provision,
            shards=shards,
            replicas=replicas,
            doc_top_k=doc_top_k or None,
            min_weight=min_weight,
            doc_mass=doc_mass,
            batch_size=batch_size,
            actors=actors,
            writers=writers,
            writer_options={
                "max_chunk_docs": chunk_docs,
                "max_chunk_bytes": int(chunk_mb * 1024 * 1024),
                "max_retries": max_retries,
            },
            encoder_options={**encoder_options, **({"truncate": True} if truncate else {})},
            ray_address=ray_address,
            encoder_resources=_json_option("--encoder-resources", encoder_resources),
            report_path=report_path,
            dead_letter_path=dead_letter_path,
            limit=limit,
        )

    job = run_guarded(build)
    bar = _progress_bar(job, limit)
    try:
        report = run_guarded(lambda: job.run(progress=bar.update_from_report))
    finally:
        bar.close()
        if job.report is not None and job.report.status != "completed":
            click.echo(job.report.summary(), err=True)
            if job.dead_letter_path.exists():
                click.echo(f"dead letters: {job.dead_letter_path}", err=True)
    click.echo(report.summary())
    if report.dead_lettered:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.dead_letter_reasons.items()))
        click.echo(f"dead-lettered {report.dead_lettered} ({reasons}): {job.dead_letter_path}")
    if report_path:
        click.echo(f"report: {report_path}")


def _progress_bar(job, limit) -> Progress:
    total = job.reader.count_hint()
    return Progress("ingest", min(total, limit) if (limit is not None and total) else total)


def _json_option(flag: str, text):
    import json

    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{flag} expects JSON such as '{{\"encoder\": 1}}', got {text!r} ({exc})") from None
