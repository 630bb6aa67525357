"""The ingest's encoder step: a broken model's NaN and an empty vector are dead-lettered with a reason, never indexed."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from echo_splade.ingest import DEAD_LETTER_REASONS, RECORD_FIELDS, EncodeBatch

OPTIONS = dict(max_length=64, encoder_options={"truncate": True}, torch_threads=1)


def _batch(texts: list[str]) -> pa.Table:
    rows = [
        {f: "" for f in RECORD_FIELDS} | {"doc_id": f"d{i}", "text": t, "line": i, "offset": 0, "row": i}
        for i, t in enumerate(texts)
    ]
    return pa.Table.from_pylist(rows)


def test_good_nan_and_empty_vectors():
    assert {"empty_vector", "encoding_failed"} <= set(DEAD_LETTER_REASONS)
    step = EncodeBatch("tiny-mistral", **OPTIONS)
    out = step(_batch(["glaciers carve valleys", "volcanoes erupt lava"])).to_pylist()
    assert [r["status"] for r in out] == ["encoded", "encoded"]
    doc = json.loads(out[0]["doc"])
    assert doc["sparse"] and doc["model_rev"] == step.model_rev and doc["doc_id"] == "d0"

    # nothing passes the pruning threshold: dead-lettered as empty_vector, not indexed without terms
    empty = EncodeBatch("tiny-mistral", min_weight=1e6, **OPTIONS)
    out = empty(_batch(["glaciers carve valleys"])).to_pylist()
    assert (out[0]["status"], out[0]["reason"], out[0]["doc"]) == ("dead", "empty_vector", "")

    # a model that yields NaN for every text: encoding_failed with the reason, never a silently sparser vector
    with torch.no_grad():
        step.encoder.model.get_output_embeddings().weight.fill_(float("nan"))
    out = step(_batch(["glaciers carve valleys", "volcanoes erupt lava"])).to_pylist()
    assert [(r["status"], r["reason"]) for r in out] == [("dead", "encoding_failed")] * 2
    assert "non-finite" in out[0]["detail"]


def test_model_info_and_the_actors_model_rev_check(tiny_model, tmp_path):
    from echo_splade.ingest import STATUS_ENCODED, IngestJob, ModelInfo
    from echo_splade.ingest._pipeline_rows import ENCODE_ADDS, ENCODE_DROPS

    info = ModelInfo.of(tiny_model)
    assert (info.model, info.model_rev) == (tiny_model.source, tiny_model.model_rev)
    # what the job provisions from without model_info: read from the files, no weights loaded
    assert ModelInfo.load("tiny-mistral") == info
    assert ModelInfo.load("tiny-mistral", options={"max_length": 64}).model_rev != info.model_rev
    # precision options (ingest --int8 --compile) load another precision of the same model: same info
    int8 = {"quantize": "int8-token-head", "smooth": 0.7}
    assert ModelInfo.load("tiny-mistral", options={**int8, "compile": True}) == info

    # the actors check that they load the model the index was prepared for
    step = EncodeBatch("tiny-mistral", expected_model_rev=None, **OPTIONS)
    same = EncodeBatch("tiny-mistral", expected_model_rev=step.model_rev, **OPTIONS)
    options = {**OPTIONS, "encoder_options": {**OPTIONS["encoder_options"], **int8}}
    quantized = EncodeBatch("tiny-mistral", expected_model_rev=step.model_rev, **options)  # the same model_rev
    assert quantized.encoder.quantized == "int8-token-head+smooth0.7"
    assert quantized(_batch(["glaciers carve valleys"])).column("status").to_pylist() == [STATUS_ENCODED]
    out = same(_batch(["glaciers carve valleys"]))
    assert out.column_names == [c for c in RECORD_FIELDS if c not in ENCODE_DROPS] + list(ENCODE_ADDS)
    assert out.column("status").to_pylist() == [STATUS_ENCODED]
    with pytest.raises(ValueError, match="model_rev 0123456789ab"):
        EncodeBatch("tiny-mistral", expected_model_rev="0123456789ab", **OPTIONS)
    with pytest.raises(ValueError, match="ModelInfo"):
        (tmp_path / "c.jsonl").write_text('{"_id": "1", "text": "t"}\n')
        IngestJob(tmp_path / "c.jsonl", "i", model_info={"model": "x"})
