"""The sparse query scores the SPLADE dot product on the real nodes of both engines (``engine_backend``):
OpenSearch ``rank_features`` + ``rank_feature`` queries with the ``linear`` function; Elasticsearch
``sparse_vector`` + the ``sparse_vector`` query (8.15+) and ``term`` clauses with boosts (its 8.11-8.14 form)."""

from __future__ import annotations

import json
import random
import struct

import pytest

from echo_splade.mappings import IndexSpec, provision, read_index_meta, sparse_to_features, token_to_feature

# Lucene keeps 9 significant bits of a feature value: relative error below 2**-8 (about 0.4%).
NINE_BIT_TOLERANCE = 2.0**-8
TOKENS = ["▁the", "▁cat", "Ġdog", "a.b", "...", "_id", "~", "中文", "😀", " ", "*", "x" * 60, "▁Ġ", "#", "é"]


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _nine_bits(x: float) -> float:
    """What Lucene's FeatureField stores: the float32 bits with the low 15 bits dropped."""
    (bits,) = struct.unpack("I", struct.pack("f", x))
    return struct.unpack("f", struct.pack("I", (bits >> 15) << 15))[0]


def sparse_query(query: dict[str, float], sparse_type: str = "rank_features", terms: bool = False) -> dict:
    """The dot-product query of ``{token: weight}`` on the field type: score = sum of query weight x doc weight.

    ``rank_features``: bool.should of rank_feature(linear) clauses with boost = query weight.
    ``sparse_vector``: one sparse_vector query with ``query_vector``, or (``terms=True``) bool.should
    of term clauses with boost = query weight.
    """
    features = {token_to_feature(t): w for t, w in query.items()}
    if sparse_type == "rank_features":
        return {
            "bool": {
                "should": [
                    {"rank_feature": {"field": f"sparse.{f}", "linear": {}, "boost": w}} for f, w in features.items()
                ]
            }
        }
    if terms:
        return {"bool": {"should": [{"term": {"sparse": {"value": f, "boost": w}}} for f, w in features.items()]}}
    return {"sparse_vector": {"field": "sparse", "query_vector": features}}


def _query_forms(backend) -> list[dict]:
    """kwargs of :func:`sparse_query` for every query form of the engine's sparse field."""
    if backend.engine == "opensearch":
        return [{"sparse_type": "rank_features"}]
    return [{"sparse_type": "sparse_vector"}, {"sparse_type": "sparse_vector", "terms": True}]


@pytest.fixture
def scored_index(engine_backend, index_name):
    plan = provision(engine_backend, IndexSpec(index_name, model="test"))
    assert plan.sparse_type == {"opensearch": "rank_features", "elasticsearch": "sparse_vector"}[engine_backend.engine]
    rng = random.Random(7)
    docs = {}
    for i in range(8):
        chosen = rng.sample(TOKENS, rng.randint(3, 9))
        docs[f"d{i}"] = {t: rng.lognormvariate(-1.0, 1.5) for t in chosen}
    lines = []
    for doc_id, weights in docs.items():
        lines.append(json.dumps({"index": {"_index": index_name, "_id": doc_id}}))
        lines.append(json.dumps({"doc_id": doc_id, "model": "test", "sparse": sparse_to_features(weights)}))
    result = engine_backend.bulk(lines, refresh="true")
    assert not result["errors"]
    return index_name, docs


def test_linear_sparse_score_is_the_dot_product(engine_backend, scored_index):
    index, docs = scored_index
    rng = random.Random(11)
    queries = [{t: rng.uniform(0.05, 3.0) for t in rng.sample(TOKENS, k)} for k in (1, 2, 4, 7, 15)]
    checked = 0
    for query, form in ((q, f) for q in queries for f in _query_forms(engine_backend)):
        hits = engine_backend.search(index, {"query": sparse_query(query, **form), "size": 20})["hits"]["hits"]
        expected = {d: sum(w * weights[t] for t, w in query.items() if t in weights) for d, weights in docs.items()}
        matching = {d for d, score in expected.items() if score > 0}
        assert {h["_id"] for h in hits} == matching
        for hit in hits:
            dot = expected[hit["_id"]]
            # within the 9-bit storage tolerance of the exact dot product ...
            assert hit["_score"] == pytest.approx(dot, rel=NINE_BIT_TOLERANCE)
            # ... and exactly what Lucene computes from the truncated weights (float32 arithmetic)
            weights = docs[hit["_id"]]
            lucene = sum(_f32(_f32(w) * _nine_bits(weights[t])) for t, w in query.items() if t in weights)
            assert hit["_score"] == pytest.approx(lucene, rel=1e-6)
            checked += 1
        ranked = [h["_id"] for h in hits]
        by_dot = sorted(matching, key=lambda d: -expected[d])
        for better, worse in zip(by_dot, by_dot[1:]):
            if expected[better] > expected[worse] * (1 + 2 * NINE_BIT_TOLERANCE):
                assert ranked.index(better) < ranked.index(worse)
    assert checked >= 15 * len(_query_forms(engine_backend))


def test_storage_keeps_nine_significant_bits(engine_backend, scored_index):
    index, docs = scored_index
    doc_id, weights = next(iter(docs.items()))
    for (token, weight), form in ((tw, f) for tw in weights.items() for f in _query_forms(engine_backend)):
        hits = engine_backend.search(index, {"query": sparse_query({token: 1.0}, **form), "size": 20})["hits"]["hits"]
        score = {h["_id"]: h["_score"] for h in hits}[doc_id]
        assert _f32(score) == _nine_bits(weight)  # the JSON score is a float32 printed short
        assert 0 <= weight - score < weight * NINE_BIT_TOLERANCE


def test_encoder_vectors_score_their_dot_product(engine_backend, index_name, tiny_model):
    # End to end with the real encoder API: token dicts -> feature keys -> rank_features -> score.
    provision(engine_backend, IndexSpec.from_encoder(index_name, tiny_model))
    texts = ["The cat sat on the mat.", "Dogs chase cats in the park.", "Stock markets fell on Monday."]
    doc_tokens = [tiny_model.tokens(v) for v in tiny_model.encode_documents(texts, top_k=64)]
    lines = []
    for i, tokens in enumerate(doc_tokens):
        lines.append(json.dumps({"index": {"_index": index_name, "_id": str(i)}}))
        lines.append(
            json.dumps(
                {
                    "doc_id": str(i),
                    "sparse": sparse_to_features(tokens),
                    "model": tiny_model.model_id,
                    "model_rev": tiny_model.model_rev,
                }
            )
        )
    assert not engine_backend.bulk(lines, refresh="true")["errors"]
    (query_vec,) = tiny_model.encode_queries(["cats on mats"], top_k=16)
    query = tiny_model.tokens(query_vec)
    sparse_type = read_index_meta(engine_backend, index_name)["sparse_type"]
    hits = engine_backend.search(index_name, {"query": sparse_query(query, sparse_type), "size": 10})["hits"]["hits"]
    expected = {str(i): sum(w * d.get(t, 0.0) for t, w in query.items()) for i, d in enumerate(doc_tokens)}
    assert hits and {h["_id"] for h in hits} == {d for d, s in expected.items() if s > 0}
    for hit in hits:
        assert hit["_score"] == pytest.approx(expected[hit["_id"]], rel=NINE_BIT_TOLERANCE)
