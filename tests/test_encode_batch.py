"""The ingest's encoder step: a broken model's NaN and an empty vector are dead-lettered with a reason, never indexed."""

from __future__ import annotations

import json

import pyarrow as pa
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
