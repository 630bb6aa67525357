from __future__ import annotations

from pathlib import Path

import click

from ._options import connection_options, dataset_option, run_guarded


@click.command("mine-negatives")
@dataset_option
@click.option(
    "--index",
    required=True,
    help="Index (alias) holding the corpus text; built from the text alone (BM25 only, no encoding) when missing.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL of training rows for `echo-splade train --data` (written atomically).",
)
@click.option("--split", default="train", show_default=True, help="Qrels split to mine (never 'test').")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="BM25 results per query to draw negatives from.",
)
@click.option(
    "--skip", type=click.IntRange(min=0), default=0, show_default=True, help="Top BM25 ranks never used as negatives."
)
@click.option(
    "--negatives",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Hard negatives per (query, positive) row.",
)
@click.option(
    "--max-positives", type=click.IntRange(min=1), help="Positives per query, best judged first. [default: all]"
)
@click.option(
    "--min-score",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Lowest relevance score that counts as a positive.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@connection_options
def command(
    conn, dataset, index, output, split, depth, skip, negatives, max_positives, min_score, seed, no_progress
) -> None:
    """Write (query, positive, BM25 hard negative) training rows for a BEIR training split.

    Judged-relevant documents are positives; negatives are drawn from the
    cluster's BM25 results for the query that are not judged for it.

    \b
    Example:
      echo-splade mine-negatives --dataset ../shared/data/scifact --index mine-scifact --output scifact.jsonl
      echo-splade train --data scifact.jsonl --output models/scifact
    """

    def action() -> None:
        from echo_splade.integration import EvalDataset, HardNegativeMiner

        data = EvalDataset(dataset, split=split)
        click.echo(f"dataset {data.path} split {split}: {len(data)} judged queries")
        miner = HardNegativeMiner(
            conn,
            index,
            depth=depth,
            skip=skip,
            negatives=negatives,
            max_positives=max_positives,
            min_score=min_score,
            seed=seed,
        )
        try:
            rows = miner.write(data, output, progress=not no_progress)
        finally:
            miner.close()
        click.echo(f"wrote {rows} training rows to {output}")

    run_guarded(action)
