from __future__ import annotations

from pathlib import Path

import click

from ._options import run_guarded


@click.command("split-pairs")
@click.option(
    "--pairs",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL of {"query", "positive"} pairs (e.g. ../shared/data/medquad_train/train_pairs.jsonl).',
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the dev BEIR files (corpus.jsonl, queries.jsonl, qrels/dev.tsv) and train_pairs.jsonl.",
)
@click.option("--dev-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Pairs held out.")
@click.option(
    "--distractors",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Extra unjudged corpus documents from the other pairs (then not trained on).",
)
@click.option(
    "--max-train", type=click.IntRange(min=1), help="Keep at most N train pairs (seeded random subset). [default: all]"
)
@click.option("--seed", type=int, default=0, show_default=True)
def command(pairs, output, dev_size, distractors, max_train, seed) -> None:
    """Hold out a dev set from training pairs: a BEIR folder for `eval --split dev`, the rest for `train`.

    \b
    Example:
      echo-splade split-pairs --pairs ../shared/data/pubmedqa_train/train_pairs.jsonl --output runs/dev/pubmedqa \\
          --dev-size 500 --distractors 0
      echo-splade eval --dataset runs/dev/pubmedqa --split dev --index dev-pubmedqa
    """

    def action() -> None:
        from echo_splade.integration import PairsSplit

        counts = PairsSplit(pairs, dev_size=dev_size, distractors=distractors, seed=seed, max_train=max_train).write(
            output
        )
        click.echo(
            f"{output}: {counts['dev_queries']} dev queries over {counts['corpus']} documents "
            f"(qrels/dev.tsv); {counts['train_pairs']} train pairs in train_pairs.jsonl "
            f"({counts['dropped']} pairs left out: their answer is in the dev corpus)"
        )

    run_guarded(action)
