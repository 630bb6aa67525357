"""Document pruning by weight mass (issue 17): ``encoder.prune_weights`` and the ingest's ``doc_mass`` option."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from echo_splade.encoder import prune_weights, to_sparse_vector
from echo_splade.ingest import RECORD_FIELDS, EncodeBatch, IngestJob


def test_mass_keeps_the_fewest_largest_weights_that_reach_the_share():
    weights = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 1.0, "e": 0.0}
    assert prune_weights(weights, mass=0.5) == {"b": 5.0}  # 5 of 10 reaches 0.5
    assert prune_weights(weights, mass=0.51) == {"b": 5.0, "c": 3.0}  # the weight that crosses is kept
    assert prune_weights(weights, mass=0.8) == {"b": 5.0, "c": 3.0}
    assert prune_weights(weights, mass=0.81) == {"a": 1.0, "b": 5.0, "c": 3.0}  # ties: the input's order first
    assert prune_weights(weights, mass=1.0) == {"a": 1.0, "b": 5.0, "c": 3.0, "d": 1.0}  # zero weights never kept
    assert prune_weights(weights) == prune_weights(weights, mass=1.0)
    # with top_k and min_weight: each rule applies; the share is of the weights that pass min_weight
    assert prune_weights(weights, mass=0.9, top_k=2) == {"b": 5.0, "c": 3.0}
    assert prune_weights(weights, mass=0.6, min_weight=2.0) == {"b": 5.0}  # 5 of 8 >= 0.6
    assert prune_weights({}, mass=0.5) == {}


def test_top_k_matches_the_encoders_tensor_pruning():
    generator = torch.Generator().manual_seed(0)
    weights = torch.relu(torch.randn(500, generator=generator))
    vector = to_sparse_vector(weights, top_k=40, min_weight=0.2)
    as_dict = {i: float(w) for i, w in enumerate(weights.tolist())}
    assert prune_weights(as_dict, top_k=40, min_weight=0.2) == vector.to_dict()


@pytest.mark.parametrize("mass", [0, -0.1, 1.5, True, "0.8", float("nan")])
def test_bad_mass_is_refused_by_name(mass, tmp_path):
    with pytest.raises(ValueError, match="mass must be a share in"):
        prune_weights({"a": 1.0}, mass=mass)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "t"}\n')
    with pytest.raises(ValueError, match="mass must be a share in"):
        IngestJob(corpus, "i", doc_mass=mass)


class _SharedEncoder(EncodeBatch):
    """The encode stage over the session's ``tiny_model`` (no second model load)."""

    shared = None

    def load_encoder(self, model, **kwargs):
        return self.shared


def test_ingest_prunes_documents_by_mass_on_request(tmp_path, tiny_model):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "t"}\n')
    assert IngestJob(corpus, "i").doc_mass is None and IngestJob(corpus, "i", doc_mass=0.8).doc_mass == 0.8
    assert IngestJob(corpus, "i", doc_mass=1).doc_mass is None  # 1 keeps everything: recorded as no mass pruning
    rows = [{f: "" for f in RECORD_FIELDS} | {"doc_id": "d0", "text": "glaciers carve deep valleys", "line": 0}]
    _SharedEncoder.shared = tiny_model
    step = _SharedEncoder("tiny-mistral", doc_top_k=64)
    full = json.loads(step(pa.Table.from_pylist(rows)).to_pylist()[0]["doc"])["sparse"]
    step.doc_mass = 0.5
    half = json.loads(step(pa.Table.from_pylist(rows)).to_pylist()[0]["doc"])["sparse"]
    assert len(full) == 64 and 0 < len(half) < len(full)
    assert all(full[k] == w for k, w in half.items())  # a subset, same weights
    total, kept = sum(full.values()), sum(half.values())
    assert kept >= 0.5 * total > kept - min(half.values())  # reaches the share; one weight fewer would not
    assert min(half.values()) >= max(w for k, w in full.items() if k not in half)  # the largest ones
