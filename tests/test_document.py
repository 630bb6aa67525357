"""The indexed document has one owner (``mappings.document_source``): its fields, the token -> feature
conversion shared with the query side, and the one name for the model that reloads the encoder."""

from __future__ import annotations

import types

import pytest

from echo_splade.connector import SparseRetriever
from echo_splade.mappings import (
    DOCUMENT_FIELDS,
    FLOAT_MIN_NORMAL,
    IndexSpec,
    document_source,
    model_name,
    sparse_to_features,
)


def test_text_only_and_encoded_document_sources():
    assert document_source("d1", "T", "body") == {"doc_id": "d1", "title": "T", "text": "body"}
    doc = document_source("d1", "T", "body", {"a.b": 2.0, "▁x": 0.5, "tiny": 1e-40}, model="m", model_rev="r")
    assert tuple(doc) == DOCUMENT_FIELDS
    assert doc["sparse"] == {"a~2Eb": 2.0, "▁x": 0.5}  # escaped keys, weights Lucene refuses dropped
    assert (doc["model"], doc["model_rev"]) == ("m", "r")
    with pytest.raises(ValueError, match="model and model_rev"):
        document_source("d1", "T", "body", {"a": 1.0}, model="m")
    with pytest.raises(ValueError, match="token_weights"):
        document_source("d1", "T", "body", model="m", model_rev="r")
    with pytest.raises(ValueError, match="'bad'.*negative"):
        document_source("d1", "T", "body", {"bad": -1.0}, model="m", model_rev="r")


def test_model_name_is_what_reloads_the_encoder():
    trained = types.SimpleNamespace(source="runs/my-model", model_id="smollm2-135m", model_rev="r", config={})
    assert model_name(trained) == "runs/my-model"  # not the base model
    assert model_name(types.SimpleNamespace(model_id="tiny-mistral")) == "tiny-mistral"
    assert model_name(object()) is None
    assert IndexSpec.from_encoder("i", trained).model == "runs/my-model"
    assert IndexSpec.for_model("i", "runs/my-model", "r", {}) == IndexSpec.from_encoder("i", trained)


def _tokens_retriever(**kw):
    from elasticsearch import Elasticsearch

    from echo_splade.client import Backend

    backend = Backend(Elasticsearch("http://127.0.0.1:1"), "elasticsearch", info={"version": {"number": "8.19.0"}})
    return SparseRetriever(backend, "docs", mode="tokens", clause_limit=1024, field_type="sparse_vector", **kw)


def test_query_side_converts_with_the_document_rules():
    weights = {"a.b": 3.0, "▁x": 2.0, "tiny": FLOAT_MIN_NORMAL / 2}
    body = _tokens_retriever(query_top_k=None).build_query(weights)
    assert body["query"]["sparse_vector"]["query_vector"] == sparse_to_features(weights)
    with pytest.raises(ValueError, match="'neg'.*negative"):  # the same error as a document weight
        _tokens_retriever().build_query({"ok": 1.0, "neg": -0.5})
