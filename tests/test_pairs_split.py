"""Dev sets held out from question -> answer training pairs (no leakage into the train pairs)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from echo_splade.cli import cli
from echo_splade.encoder import load_training_examples
from echo_splade.integration import EvalDataset, PairsSplit


def _pairs(path, rows):
    path.write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, p in rows), encoding="utf-8")
    return path


def test_split_writes_a_beir_dev_folder_and_leak_free_train_pairs(tmp_path):
    rows = [(f"question {i}?", f"answer number {i % 15}") for i in range(40)]  # answers shared by several questions
    pairs = _pairs(tmp_path / "pairs.jsonl", rows)
    counts = PairsSplit(pairs, dev_size=10, distractors=3, seed=1).write(tmp_path / "out")
    dev = EvalDataset(tmp_path / "out", split="dev")
    assert len(dev) == 10 == counts["dev_queries"]
    corpus = [json.loads(line) for line in (tmp_path / "out" / "corpus.jsonl").read_text().splitlines()]
    texts = {d["_id"]: d["text"] for d in corpus}
    query_text = dev.queries
    for qid, judged in dev.qrels.items():
        [(doc_id, score)] = judged.items()
        number = int(query_text[qid].split()[1].rstrip("?"))
        assert score == 1 and texts[doc_id] == f"answer number {number % 15}"
    dev_answers = {texts[d] for judged in dev.qrels.values() for d in judged}
    assert len(corpus) == len(dev_answers) + 3  # distractors
    train = load_training_examples(tmp_path / "out" / "train_pairs.jsonl")
    assert train and not any(e.positive in texts.values() for e in train)  # nothing of the corpus is trained on
    assert counts["train_pairs"] == len(train) and counts["left_out_by_max_train"] == 0
    assert counts["distractors"] == 3 and counts["train_pairs"] + counts["dev_queries"] + counts["dropped"] == 40
    capped = PairsSplit(pairs, dev_size=10, distractors=3, seed=1, max_train=2).write(tmp_path / "capped")
    assert capped["train_pairs"] == 2 and capped["left_out_by_max_train"] == counts["train_pairs"] - 2
    assert len(load_training_examples(tmp_path / "capped" / "train_pairs.jsonl")) == 2
    again = PairsSplit(pairs, dev_size=10, distractors=3, seed=1).write(tmp_path / "again")
    assert again == counts
    assert (tmp_path / "again" / "qrels" / "dev.tsv").read_text() == (
        tmp_path / "out" / "qrels" / "dev.tsv"
    ).read_text()


def test_bad_pairs_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: needs non-empty 'query' and 'positive'"):
        PairsSplit(_pairs(tmp_path / "pairs.jsonl", [("q", "a"), ("", "b")])).write(tmp_path / "x")
    with pytest.raises(ValueError, match="leaves no training pairs"):
        PairsSplit(_pairs(tmp_path / "two.jsonl", [("q", "a"), ("r", "b")]), dev_size=2).write(tmp_path / "y")
    with pytest.raises(ValueError, match="dev_size must be >= 1"):
        PairsSplit(tmp_path / "two.jsonl", dev_size=0)


def test_split_pairs_cli(tmp_path):
    pairs = _pairs(tmp_path / "pairs.jsonl", [(f"q{i}", f"a{i}") for i in range(20)])
    result = CliRunner().invoke(
        cli, ["split-pairs", "--pairs", str(pairs), "--output", str(tmp_path / "o"), "--dev-size", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "5 dev queries over 5 documents" in result.output and "15 train pairs" in result.output
