"""`echo-splade encode` and `echo-splade train` on the tiny random Mistral."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from echo_splade.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def test_encode_texts_prints_jsonl_matching_the_library(runner, tiny_model):
    result = runner.invoke(
        cli, ["encode", "--model", "tiny-mistral", "--queries", "--top-k", "5", "what causes heart disease", "aspirin"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["id"] for line in lines] == ["0", "1"]
    expected = tiny_model.encode_queries(["what causes heart disease", "aspirin"], top_k=5)
    for line, vec in zip(lines, expected):
        assert line["model_rev"] == tiny_model.model_rev
        assert line["tokens"] == pytest.approx(tiny_model.tokens(vec), abs=1e-5)


def test_encode_corpus_with_limit_and_terms(runner, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"_id": f"d{i}", "title": f"Title {i}", "text": "Some body text."}) for i in range(5))
        + "\n"
        + json.dumps({"_id": "empty", "title": "", "text": " "})
    )
    result = runner.invoke(
        cli,
        [
            "encode",
            "--model",
            "tiny-mistral",
            "--input",
            str(corpus),
            "--limit",
            "3",
            "--terms",
            "4",
            "--max-length",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("d")]
    assert [r[0] for r in rows] == ["d0", "d1", "d2"]
    assert all(len(r[2].split(" ")) == 4 for r in rows)


def test_encode_errors_are_one_clear_line(runner):
    result = runner.invoke(cli, ["encode", "--model", "tiny-mistral", "fine", "   "])
    assert result.exit_code != 0
    assert "position 1" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["encode", "--model", "tiny-mistral"])
    assert result.exit_code != 0 and "either TEXTS or --input" in result.output


def test_train_cli_refuses_test_split_and_defaults_match_the_library(runner, tmp_path):
    from echo_splade.cli import _train
    from echo_splade.encoder import TrainingConfig

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (beir / name).write_text("")
    result = runner.invoke(
        cli,
        ["train", "--data", str(beir), "--split", "test", "--output", str(tmp_path / "o"), "--model", "tiny-mistral"],
    )
    assert result.exit_code != 0 and "refusing to train on the 'test' split" in result.output

    defaults = TrainingConfig()
    checked = 0
    for param in _train.command.params:
        value = getattr(defaults, param.name, None)
        if value in (None, ()):
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        assert param.default == value, param.name
        checked += 1
    assert checked >= 15
    assert _train._layers("2-4,7") == (2, 3, 4, 7) and _train._layers("all") is None


def test_train_cli_writes_a_loadable_adapter(runner, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(p)
            for p in [
                {"query": "capital of france", "positive": "Paris is the capital of France."},
                {"query": "who wrote hamlet", "positive": "Hamlet was written by Shakespeare.", "negative": "Paris."},
            ]
        )
        + "\n"
    )
    out = tmp_path / "adapter"
    result = runner.invoke(
        cli,
        [
            "train",
            "--data",
            str(data),
            "--output",
            str(out),
            "--model",
            "tiny-mistral",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--max-length",
            "48",
            "--lora-r",
            "4",
            "--lora-layers",
            "1",
            "--train-modules",
            "model.norm",
        ],
    )
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [s["step"] for s in steps] == [1, 2] and all("nnz_d" in s for s in steps)
    encoded = runner.invoke(cli, ["encode", "--model", str(out), "capital", "--terms", "2"])
    assert encoded.exit_code == 0, encoded.output
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["lora_r"] == 4 and saved["lora_layers"] == [1] and saved["train_modules"] == ["model.norm"]


def test_paper_scale_recipe_runs_on_a_tiny_model(runner, tmp_path):
    """docs/TRAINING.md's Mistral-7B command, with only the weights, data, output and size swapped for tiny ones."""
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "TRAINING.md").read_text()
    block = re.search(r"<!-- recipe:paper-scale[^>]*-->\s*```bash\n(.*?)```", doc, re.S)
    assert block, "the paper-scale recipe block is missing from docs/TRAINING.md"
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    assert argv[:3] == ["echo-splade", "-v", "train"]
    options = dict(zip(argv[3::2], argv[4::2]))
    assert len(argv[3:]) == 2 * len(options), "every recipe option takes one value"
    assert options["--model"] == "/path/to/Mistral-7B-v0.1" and options["--device"] == "cuda"
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(p)
            for p in [
                {"query": "capital of france", "positive": "Paris is the capital of France.", "negative": "Hamlet."},
                {"query": "who wrote hamlet", "positive": "Hamlet was written by Shakespeare.", "negative": "Paris."},
            ]
        )
        + "\n"
    )
    options.update(
        {
            "--model": "tiny-mistral",
            "--data": str(data),
            "--output": str(tmp_path / "out"),
            "--steps": "2",
            "--batch-size": "2",
            "--grad-accum": "1",
            "--max-length": "48",
            "--device": "cpu",
        }
    )
    result = runner.invoke(cli, ["train", *[x for kv in options.items() for x in kv]])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "training_config.json").read_text())
    assert saved["lora_r"] == 16 and saved["lambda_q"] == 5e-4 and saved["normalize"] == "none"
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
