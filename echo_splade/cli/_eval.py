from __future__ import annotations

import re
from pathlib import Path

import click

from ._options import (
    adapter_option,
    connection_options,
    dataset_option,
    query_top_k_option,
    run_guarded,
    sparse_weight_option,
)
from ._progress import Progress

_SYSTEMS = ("bm25", "sparse", "sparse-inference-free", "hybrid")


def _systems(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in names if s not in _SYSTEMS]
    if unknown or not names:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(_SYSTEMS)} (comma-separated)"
        )
    if len(set(names)) != len(names):
        raise click.BadParameter(f"a system is listed twice: {value}")
    return names


@click.command("eval")
@dataset_option
@click.option("--index", required=True, help="Index (alias) holding the corpus; provisioned and ingested when missing.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Encoder: short name (echo-splade-smollm2-135m, echo-splade-smollm2-135m-head, echo-splade-bert-tiny, "
    "smollm2-135m, splade-tiny, tiny-mistral) or folder. Repeat it to compare encoders in one report: "
    "each then gets its own index, --index plus '-' plus the model's name. "
    "[default: the built-in model; none for --systems bm25]",
)
@adapter_option
@click.option("--split", default="test", show_default=True, help="Qrels split (qrels/<split>.tsv).")
@click.option(
    "--systems",
    default=",".join(_SYSTEMS),
    show_default=True,
    callback=_systems,
    help="Comma-separated systems to evaluate.",
)
@click.option("--max-queries", type=click.IntRange(min=1), help="Evaluate only the first N judged queries.")
@click.option(
    "--self-hits",
    type=click.Choice(["auto", "drop", "keep"]),
    default="auto",
    show_default=True,
    help="Drop a query's own document from its results (ArguAna convention); auto: when the "
    "queries are corpus documents (same id and text).",
)
@click.option(
    "--hybrid",
    "hybrid_method",
    type=click.Choice(["rrf", "weighted"]),
    default="weighted",
    show_default=True,
    help="Fusion of the hybrid system.",
)
@sparse_weight_option(help="Weight of the sparse list in the hybrid fusion (BM25 gets 1 - w).")
@query_top_k_option("Query terms kept by the sparse systems ('all': as many as the clause limit allows).")
@click.option(
    "--doc-top-k",
    type=click.IntRange(min=1),
    help="Document pruning when the index is ingested here. [default: the ingest default]",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=16),
    help="Encoder input limit per window, for ingest and queries alike. [default: the model's]",
)
@click.option(
    "--truncate",
    is_flag=True,
    help="Encode only the first window of long documents and queries "
    "(faster on a CPU; recorded in the report). [default: max-pool all windows]",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON report path. [default: eval-<index>-<split>.json]",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG plot path (quality vs p50 latency). [default: the report path with .png]",
)
@click.option("--no-progress", is_flag=True, help="No progress (bars on a terminal, else a line every 30 s).")
@connection_options
def command(
    conn,
    dataset,
    index,
    models,
    adapter,
    split,
    systems,
    max_queries,
    self_hits,
    hybrid_method,
    sparse_weight,
    query_top_k,
    doc_top_k,
    max_length,
    truncate,
    report_path,
    plot_path,
    no_progress,
) -> None:
    """Evaluate BM25, learned sparse and hybrid retrieval in the cluster on a BEIR folder.

    Prints a table of nDCG@10, Recall@100, MRR@10 (ranx) and p50 latency per
    system, writes a JSON report with the exact configuration and a PNG plot.
    """

    def action() -> None:
        from echo_splade.integration import EvalDataset, EvalReport

        if len(models) > 1 and adapter:
            raise click.BadParameter(
                "--adapter applies to one --model; save the adapted encoder as a folder "
                "(echo-splade train) to compare it with others",
                param_hint="--adapter",
            )
        if len(models) > 1 and "bm25" in systems and len(systems) == 1:
            raise click.BadParameter(
                f"--systems bm25 uses no model, so {len(models)} models have nothing to compare: give at most "
                "one --model, or add a sparse system (e.g. --systems bm25,sparse)",
                param_hint="--model",
            )
        report = Path(report_path or f"eval-{index}-{split}.json")
        plot = Path(plot_path or report.with_suffix(".png"))
        data = EvalDataset(dataset, split=split, max_queries=max_queries)
        click.echo(f"dataset {data.path} split {split}: {len(data)} judged queries")
        if len(models) <= 1:
            result = run_one(data, index, models[0] if models else None, systems)
        else:
            results = {}
            for number, model in enumerate(models):
                own = [s for s in systems if s != "bm25" or number == 0]  # BM25 does not depend on the model
                model_index = f"{index}-{_slug(model)}"
                click.echo(f"== {model}: index {model_index}")
                results[_slug(model)] = run_one(data, model_index, model, own)
            result = EvalReport.combine(results)
        click.echo("")
        click.echo(result.format_table())
        click.echo("")
        click.echo(f"report: {result.save(report)}")
        click.echo(f"plot:   {result.save_plot(plot)}")
        failed = {s: n for s, n in _failed(result).items() if n}
        if failed:
            click.echo(f"warning: failed queries (scored as empty results): {failed}", err=True)

    def run_one(data, index, model, systems):
        from echo_splade.integration import Evaluator

        report_dir = Path(report_path or ".").parent
        bars: dict[str, Progress] = {}  # one per ingest / system, opened on its first report

        def ingest_progress(ingest_report) -> None:
            bars.setdefault("ingest", Progress(f"ingest {index}")).update_from_report(ingest_report)

        def query_progress(system: str, done: int, total: int) -> None:
            bars.setdefault(system, Progress(system, total, unit="query", units="queries")).update(done)

        evaluator = Evaluator(
            conn,
            index,
            systems=systems,
            model=model,
            adapter=adapter,
            self_hits=self_hits,
            hybrid={"method": hybrid_method, "sparse_weight": sparse_weight},
            query_top_k=query_top_k,
            doc_top_k=doc_top_k,
            max_length=max_length,
            truncate=truncate,
            progress=False if no_progress else query_progress,
        )
        try:
            built = evaluator.ensure_index(
                data, report_dir=report_dir, progress=None if no_progress else ingest_progress
            )
            if "ingest" in bars:
                bars.pop("ingest").close()
            if built:
                info = evaluator.ingest_info
                click.echo(
                    f"indexed {info['indexed']} documents of {data.corpus_path} into {index} "
                    f"({info['mode']}, {info['seconds']:.0f}s)"
                )
            else:
                click.echo(f"index {index} exists; evaluating it as is")
            return evaluator.evaluate(data)
        finally:
            for bar in bars.values():
                bar.close()
            evaluator.close()

    run_guarded(action)


def _slug(model: str) -> str:
    """A model's name as an index-name part: the folder or short name, lower-case, ``[a-z0-9_-]`` only."""
    name = Path(model.rstrip("/")).name.lower()
    return re.sub(r"[^a-z0-9_-]+", "-", name).strip("-") or "model"


def _failed(result) -> dict[str, int]:
    runs = result.config.get("runs")
    if runs is None:
        return dict(result.config["failed_queries"])
    return {
        f"{system} [{label}]": n for label, config in runs.items() for system, n in config["failed_queries"].items()
    }
