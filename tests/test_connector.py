"""Connector pieces that need no cluster: term selection, clause bodies (OpenSearch and the
Elasticsearch sparse_vector body), fusion arithmetic, explanations, argument validation."""

from __future__ import annotations

import math

import pytest

from echo_splade.connector import (
    Explanation,
    Hybrid,
    SparseRetriever,
    select_terms,
    sparse_clause,
)


def test_select_terms_top_k_min_weight_and_limit():
    w = {"a": 0.5, "b": 2.0, "c": 1.0, "d": 0.0, "e": 1.0}
    assert list(select_terms(w, None, 0.0)) == ["b", "c", "e", "a"]  # ties by key, zero dropped
    assert select_terms(w, 2, 0.0) == {"b": 2.0, "c": 1.0}
    assert select_terms(w, None, 0.9) == {"b": 2.0, "c": 1.0, "e": 1.0}
    assert list(select_terms(w, 10, 0.0, limit=3)) == ["b", "c", "e"]
    with pytest.raises(ValueError, match="finite"):
        select_terms({"x": float("nan")}, None, 0.0)


def test_sparse_clause_bodies():
    q = sparse_clause({"▁heart": 1.5, "~2E": 0.25}, "sparse")
    assert q == {
        "bool": {
            "should": [
                {"rank_feature": {"field": "sparse.▁heart", "boost": 1.5, "linear": {}}},
                {"rank_feature": {"field": "sparse.~2E", "boost": 0.25, "linear": {}}},
            ]
        }
    }
    es = sparse_clause({"▁heart": 1.5}, "sparse", "sparse_vector", boost=2.0, name="n")
    assert es == {
        "sparse_vector": {
            "field": "sparse",
            "query_vector": {"▁heart": 1.5},
            "prune": False,
            "boost": 2.0,
            "_name": "n",
        }
    }
    assert sparse_clause({}, "sparse") == {"match_none": {}}
    with pytest.raises(ValueError, match="rank_features"):
        sparse_clause({"a": 1.0}, "sparse", "dense_vector")


def _es_retriever(version="8.19.0", **kw):
    from elasticsearch import Elasticsearch

    from echo_splade.client import Backend

    backend = Backend(Elasticsearch("http://127.0.0.1:1"), "elasticsearch", info={"version": {"number": version}})
    return SparseRetriever(backend, "docs", mode="tokens", clause_limit=1024, field_type="sparse_vector", **kw)


def test_sparse_vector_before_8_15_is_queried_with_term_clauses():
    # Elasticsearch 8.11-8.14 has the sparse_vector field but not the sparse_vector query
    clause = sparse_clause({"▁heart": 1.5, "a~2Eb": 0.5}, "sparse", "sparse_vector", boost=2.0, name="n", terms=True)
    assert clause == {
        "bool": {
            "should": [
                {"term": {"sparse": {"value": "▁heart", "boost": 1.5}}},
                {"term": {"sparse": {"value": "a~2Eb", "boost": 0.5}}},
            ],
            "boost": 2.0,
            "_name": "n",
        }
    }
    old = _es_retriever(version="8.12.2", query_top_k=None)
    body = old.build_query({f"tok{i}": 1.0 + i for i in range(2000)}, filters={"term": {"model": "m"}})
    (sparse,) = body["query"]["bool"]["must"]
    assert len(sparse["bool"]["should"]) == 1024 - 1  # each term clause counts against the clause limit
    assert "sparse_vector" in _es_retriever(version="8.15.0").build_query({"x": 1.0})["query"]


def test_elasticsearch_sparse_vector_body_with_filters_and_cap():
    r = _es_retriever(query_top_k=None)
    filters = [{"term": {"model": "m"}}, {"range": {"year": {"gte": 2000}}}]
    tokens = {f"tok{i}": 1.0 + i / 10000 for i in range(5000)}
    body = r.build_query(tokens, filters=filters, k=7)
    assert body["size"] == 7
    assert body["query"]["bool"]["filter"] == filters  # untouched
    (clause,) = body["query"]["bool"]["must"]
    vector = clause["sparse_vector"]["query_vector"]
    assert clause["sparse_vector"]["field"] == "sparse"
    assert len(vector) == 1024 - 2  # the filters' two leaves are reserved
    assert min(vector.values()) > 1.0 + (5000 - 1024) / 10000 - 1e-9  # the largest weights were kept
    assert r.backend.engine == "elasticsearch"


def test_tokens_mode_escapes_feature_names():
    r = _es_retriever(query_top_k=2)
    body = r.build_query({"a.b": 3.0, "▁x": 2.0, "small": 0.1})
    assert body["query"]["sparse_vector"]["query_vector"] == {"a~2Eb": 3.0, "▁x": 2.0}
    assert r.encode_query({"a.b": 3.0, "▁x": 2.0, "small": 0.1}) == {"a.b": 3.0, "▁x": 2.0}


def test_hybrid_rrf_and_weighted_fusion():
    bm25 = [("a", 10.0), ("b", 5.0), ("c", 1.0)]
    sparse = [("c", 3.0), ("a", 2.0)]
    rrf = Hybrid("rrf", sparse_weight=0.5, rank_constant=60).fuse(bm25, sparse)
    scores = {d: s for d, s, _ in rrf}
    assert scores["a"] == pytest.approx(0.5 / 61 + 0.5 / 62)
    assert scores["c"] == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert scores["b"] == pytest.approx(0.5 / 62)
    assert [d for d, _, _ in rrf] == ["a", "c", "b"]
    weighted = {d: (s, c) for d, s, c in Hybrid("weighted", sparse_weight=0.25).fuse(bm25, sparse)}
    # bm25 normalised: a 1, b 4/9, c 0; sparse normalised: c 1, a 0
    assert weighted["a"][0] == pytest.approx(0.75 * 1 + 0.25 * 0)
    assert weighted["b"][0] == pytest.approx(0.75 * 4 / 9)
    assert weighted["c"][0] == pytest.approx(0.25 * 1)
    assert weighted["c"][1] == {"bm25": {"score": 1.0, "rank": 3}, "sparse": {"score": 3.0, "rank": 1}}


def test_hybrid_coerce_and_validation():
    assert Hybrid.coerce(None) is None and Hybrid.coerce("none") is None and Hybrid.coerce(False) is None
    assert Hybrid.coerce(True) == Hybrid()
    assert Hybrid.coerce("weighted").method == "weighted"
    assert Hybrid.coerce({"candidates": 5}).candidates == 5
    with pytest.raises(ValueError, match="rrf"):
        Hybrid.coerce("linear")
    with pytest.raises(ValueError, match="unknown hybrid option"):
        Hybrid.coerce({"weight": 1})
    with pytest.raises(ValueError, match="sparse_weight"):
        Hybrid(sparse_weight=1.5)
    clause = Hybrid(sparse_weight=0.3).combine_clauses({"match_all": {}}, {"match_none": {}})
    assert [c["bool"]["boost"] for c in clause["bool"]["should"]] == [pytest.approx(0.7), 0.3]


def test_explanation_from_weights():
    q = {"▁heart": 2.0, "▁attack": 1.0, "▁x": 5.0}
    d = {"▁heart": 0.5, "▁attack": 3.0, "~2E": 9.0}
    e = Explanation.from_weights(q, d, top_n=1)
    assert e.matched == 2 and e.total == pytest.approx(4.0)
    (t,) = e.terms
    assert (t.token, t.query_weight, t.doc_weight, t.product) == ("▁attack", 1.0, 3.0, 3.0)
    assert e.to_dict()["terms"][0]["product"] == 3.0


def test_constructor_validation_names_allowed_values():
    from opensearchpy import OpenSearch

    client = OpenSearch("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="llm.*inference-free.*tokens"):
        SparseRetriever(client, "i", mode="dense")
    with pytest.raises(ValueError, match="query_top_k"):
        SparseRetriever(client, "i", query_top_k=0)
    with pytest.raises(ValueError, match="min_weight"):
        SparseRetriever(client, "i", min_weight=-1)
    with pytest.raises(ValueError, match="field"):
        SparseRetriever(client, "i", field="a.b")
    with pytest.raises(ValueError, match="field_type"):
        SparseRetriever(client, "i", field_type="dense")
    with pytest.raises(TypeError, match="OpenSearch"):
        SparseRetriever(object(), "i")


def test_bad_query_input_errors():
    r = _es_retriever()
    with pytest.raises(ValueError, match="empty"):
        r.build_query({})
    with pytest.raises(ValueError, match="dict"):
        r.build_query("text in tokens mode")
    with pytest.raises(ValueError, match="finite"):
        r.build_query({"a": math.inf})
    with pytest.raises(ValueError, match="k must be"):
        r.build_query({"a": 1.0}, k=0)
    with pytest.raises(ValueError, match="hybrid"):
        r.build_query({"a": 1.0}, hybrid="rrf")
    with pytest.raises(ValueError, match="empty or whitespace"):
        SparseRetriever.clean_text(" \t\x00\x07 ")
    assert SparseRetriever.clean_text("a\x00b\ud800") == "a b?"


def test_query_vector_cache_is_lru_and_copies():
    from echo_splade.connector import QueryVectorCache

    cache = QueryVectorCache(maxsize=2)
    cache.put("a", {"x": 1.0})
    cache.put("b", {"y": 2.0})
    got = cache.get("a")
    got["x"] = 99.0  # callers may mutate what they get
    assert cache.get("a") == {"x": 1.0}
    cache.put("c", {"z": 3.0})  # evicts the least recently used: b
    assert cache.get("b") is None and cache.get("c") == {"z": 3.0} and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)
    off = QueryVectorCache(0)
    off.put("a", {"x": 1.0})
    assert off.get("a") is None
    with pytest.raises(ValueError, match="maxsize must be"):
        QueryVectorCache(-1)


def test_llm_queries_are_encoded_once_per_text(tiny_model, monkeypatch):
    from opensearchpy import OpenSearch

    from echo_splade.connector import QueryVectorCache, SparseRetriever

    calls = []
    original = tiny_model.encode_queries

    def counting(texts, **kwargs):
        calls.append(list(texts))
        return original(texts, **kwargs)

    monkeypatch.setattr(tiny_model, "encode_queries", counting)
    client = OpenSearch("http://127.0.0.1:9")  # never contacted: the clause limit and field type are given
    retriever = SparseRetriever(client, "idx", encoder=tiny_model, clause_limit=1024, field_type="rank_features")
    first = retriever.encode_query("glaciers carve valleys")
    again = retriever.encode_query("glaciers carve valleys")
    assert first == again and calls == [["glaciers carve valleys"]]
    retriever.encode_query("glaciers  carve valleys")  # another text (even whitespace): encoded, not served stale
    assert len(calls) == 2 and retriever.query_cache.hits == 1
    uncached = SparseRetriever(
        client,
        "idx",
        encoder=tiny_model,
        clause_limit=1024,
        field_type="rank_features",
        query_cache=QueryVectorCache(0),
    )
    uncached.encode_query("glaciers carve valleys")
    uncached.encode_query("glaciers carve valleys")
    assert len(calls) == 4


def test_two_phase_is_on_for_search_and_off_for_build_query_by_default():
    from echo_splade.client import Backend
    from echo_splade.connector import TwoPhase

    backend = Backend(object(), "opensearch", info={"version": {"number": "2.19.6"}})
    llm = SparseRetriever(backend, "docs", encoder="not-loaded-here", clause_limit=1024, field_type="rank_features")
    assert llm.two_phase == TwoPhase() and llm.build_two_phase is None  # llm mode: search() only
    inference_free = SparseRetriever(backend, "docs", mode="inference-free", tokenizer="x", clause_limit=1024)
    assert inference_free.two_phase is None  # it lost nDCG@10 there (README): exhaustive
    weights = {"heavy": 4.0, "mid": 2.0, "light": 0.5}
    default = _es_retriever(query_top_k=None)  # tokens mode: exhaustive unless asked
    assert default.two_phase is None and default.build_two_phase is None
    assert "rescore" not in default.build_query(weights)
    body = default.build_query(weights, k=10, two_phase=True)  # asked for: phase 1 >= 0.4 x the heaviest
    assert body["query"]["sparse_vector"]["query_vector"] == {"heavy": 4.0, "mid": 2.0}
    assert body["rescore"]["window_size"] == 50
    assert body["rescore"]["query"]["rescore_query"]["sparse_vector"]["query_vector"] == weights
    everywhere = _es_retriever(query_top_k=None, two_phase=True)
    assert everywhere.build_two_phase == TwoPhase() and "rescore" in everywhere.build_query(weights)
    for off in (None, False):
        r = _es_retriever(query_top_k=None, two_phase=off)
        assert r.two_phase is None and r.build_two_phase is None
    with pytest.raises(ValueError, match="two_phase must be"):
        _es_retriever(two_phase="always")
