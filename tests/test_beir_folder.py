"""The one BEIR folder reader: training pairs and evaluation judgments come from the same qrels parsing."""

import json
import sys

import pytest

from echo_splade.encoder import (
    TrainingExample,
    iter_beir_corpus,
    iter_beir_qrels,
    load_training_examples,
    read_beir_qrels,
    read_beir_queries,
)
from echo_splade.integration import EvalDataset


@pytest.fixture
def beir(tmp_path):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "body"})
        + "\n\n"
        + json.dumps({"_id": "d2", "title": "", "text": "other"})
        + "\n"
    )
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q2", "text": "second"})
        + "\n"
        + json.dumps({"_id": "q1", "text": "first"})
        + "\n"
        + json.dumps({"_id": "q3", "text": "  "})
        + "\n"
    )
    # a header with another spelling, a blank row, ids with stray spaces, fractional and zero scores
    (root / "qrels" / "train.tsv").write_text(
        "Query_ID\tcorpus-id\tscore\nq1\td1\t2\n\nq2 \td2\t0\nq1\td2\t1.0\nq3\td1\t1\n"
    )
    return root


def test_qrels_rows_in_file_order_and_as_judgments(beir):
    qrels = beir / "qrels" / "train.tsv"
    assert list(iter_beir_qrels(qrels)) == [("q1", "d1", 2.0), ("q2", "d2", 0.0), ("q1", "d2", 1.0), ("q3", "d1", 1.0)]
    assert read_beir_qrels(qrels) == {"q1": {"d1": 2, "d2": 1}, "q2": {"d2": 0}, "q3": {"d1": 1}}


def test_qrels_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(ValueError, match="bad.tsv:2: expected"):
        list(iter_beir_qrels(bad))
    bad.write_text("q1\td1\thigh\n")
    with pytest.raises(ValueError, match="bad.tsv:1: score 'high' is not a number"):
        list(iter_beir_qrels(bad))
    bad.write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(ValueError, match="holds no judgments"):
        read_beir_qrels(bad)


def test_queries_and_corpus(beir):
    assert read_beir_queries(beir / "queries.jsonl") == {"q2": "second", "q1": "first"}  # empty text skipped
    assert read_beir_queries(beir / "queries.jsonl", ids={"q1"}) == {"q1": "first"}
    assert [r["_id"] for r in iter_beir_corpus(beir / "corpus.jsonl")] == ["d1", "d2"]
    with pytest.raises(FileNotFoundError):
        read_beir_queries(beir / "missing.jsonl")


def test_training_and_evaluation_read_the_same_judgments(beir):
    # training: every relevant (score > 0) pair in file order; evaluation: the same queries and judgments
    assert load_training_examples(beir) == [TrainingExample("first", "T\nbody"), TrainingExample("first", "other")]
    data = EvalDataset(beir, split="train")
    assert data.queries == {"q1": "first", "q2": "second"}
    assert data.qrels == {"q1": {"d1": 2, "d2": 1}, "q2": {"d2": 0}}
    assert data.missing_queries == ["q3"]


def test_the_reader_needs_no_torch():
    import subprocess

    code = (
        "import sys; from echo_splade.encoder import read_beir_qrels, read_beir_queries; "
        "import echo_splade.ingest, echo_splade.connector, echo_splade.integration; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
