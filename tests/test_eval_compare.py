"""`echo-splade eval` with several --model: one report, BM25 once, every encoder's systems side by side (real node)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_eval import DOCS, EASY

from echo_splade.cli import cli
from echo_splade.integration import METRICS, EvalReport


@pytest.fixture
def easy_beir(tmp_path):
    root = tmp_path / "easy"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in DOCS.items())
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in EASY.items()))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in EASY.items())
    )
    return root


@pytest.mark.cluster
def test_two_encoders_in_one_report(easy_beir, index_name, connection, backend, ray_session, tmp_path):
    report_path = tmp_path / "compare.json"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--dataset",
            str(easy_beir),
            "--index",
            index_name,
            "--model",
            "tiny-mistral",
            "--model",
            "splade-tiny",
            "--systems",
            "bm25,sparse,hybrid",
            "--max-length",
            "128",
            "--report",
            str(report_path),
            "--no-progress",
            "--url",
            connection.urls[0],
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = EvalReport.load(report_path)
    assert list(report.systems) == [
        "bm25",
        "sparse [tiny-mistral]",
        "hybrid [tiny-mistral]",
        "sparse [splade-tiny]",
        "hybrid [splade-tiny]",
    ]
    for name in report.systems:
        assert name in result.output
    # each encoder has its own index, named after it, holding its own vectors
    runs = report.config["runs"]
    assert report.config["models"] == ["tiny-mistral", "splade-tiny"]
    for label in ("tiny-mistral", "splade-tiny"):
        assert runs[label]["index"] == f"{index_name}-{label}"
        assert runs[label]["model_rev"] == runs[label]["index_model_rev"]
        assert backend.count(f"{index_name}-{label}") == len(DOCS)
    assert runs["tiny-mistral"]["systems"] == ["bm25", "sparse", "hybrid"] and runs["splade-tiny"]["systems"] == [
        "sparse",
        "hybrid",
    ]
    assert runs["tiny-mistral"]["model_rev"] != runs["splade-tiny"]["model_rev"]
    # the easy queries repeat their document's rare words: BM25 and a real SPLADE model find every one
    assert report.systems["bm25"]["ndcg@10"] == 1.0
    assert report.systems["sparse [splade-tiny]"]["ndcg@10"] >= 0.9
    for name, figures in report.systems.items():
        assert all(0.0 <= figures[m] <= 1.0 for m in METRICS), name
    assert report_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_combine_keeps_bm25_once_and_labels_the_rest():
    def rep(ndcg: float, systems: tuple[str, ...]) -> EvalReport:
        figures = {"ndcg@10": ndcg, "recall@100": 1.0, "mrr@10": ndcg, "p50_ms": 3.0}
        return EvalReport(
            systems={s: dict(figures) for s in systems},
            config={"dataset_name": "d", "split": "test", "num_queries": 2, "failed_queries": {}},
        )

    combined = EvalReport.combine({"a": rep(0.5, ("bm25", "sparse")), "b": rep(0.7, ("bm25", "sparse"))})
    assert list(combined.systems) == ["bm25", "sparse [a]", "sparse [b]"]
    assert combined.systems["bm25"]["ndcg@10"] == 0.5 and combined.systems["sparse [b]"]["ndcg@10"] == 0.7
    assert combined.config["models"] == ["a", "b"] and set(combined.config["runs"]) == {"a", "b"}
    with pytest.raises(ValueError, match="at least one report"):
        EvalReport.combine({})


def test_bm25_alone_with_several_models_is_a_clear_error(tmp_path):
    from echo_splade.cli import cli

    (tmp_path / "beir").mkdir()
    # refused before anything is read or any node contacted (nothing listens on port 1)
    args = ["eval", "--url", "http://127.0.0.1:1", "--dataset", str(tmp_path / "beir"), "--index", "i"]
    result = CliRunner().invoke(cli, [*args, "--systems", "bm25", "--model", "a", "--model", "b"])
    assert result.exit_code == 2, result.output
    assert "--model" in result.output and "bm25 uses no model" in result.output
    assert "systems" in result.output and "empty" not in result.output
