"""SparseRetriever against the real nodes of both engines (``engine_backend``: OpenSearch with
rank_features, Elasticsearch with sparse_vector): an index built with the tiny-mistral encoder, scores equal
to a brute-force dot product, the clause cap, rewritten bodies that execute, hybrid, inference-free,
explanations, awkward input, and the `echo-splade search` CLI."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from _sparse_scores import dot_products, query_weights

from echo_splade.client import ClusterError
from echo_splade.connector import DEFAULT_SPARSE_WEIGHT, SparseRetriever

DOCS = [
    ("d0", "Heart disease", "High blood pressure raises the risk of heart attack and stroke."),
    ("d1", "Vitamin D", "Vitamin D deficiency is common in winter and linked to bone loss."),
    ("d2", "Sleep", "Sleep apnea interrupts breathing during sleep and causes daytime fatigue."),
    ("d3", "Diabetes", "Insulin resistance precedes type 2 diabetes by many years."),
    ("d4", "Protein folding", "Misfolded proteins aggregate in neurodegenerative disease."),
    ("d5", "Gene expression", "Transcription factors control gene expression in the cell nucleus."),
    ("d6", "Immunotherapy", "Checkpoint inhibitors help T cells attack cancer cells."),
    ("d7", "Salt", "Reducing salt intake lowers blood pressure in most adults."),
    ("d8", "Obesity", "Obesity in mice fed a high-fat diet depends on gut bacteria."),
    ("d9", "Influenza", "Influenza vaccines are updated every year to match circulating strains."),
    ("d10", "Кровяное давление", "Высокое давление повышает риск инсульта. 高血压会增加中风风险。"),
    ("d11", "Emoji 😀", "Patients reported mood 😀 or 😞 on a daily scale; café naïve résumé."),
    ("d12", "Antibiotics", "Overuse of antibiotics drives resistance in hospital bacteria."),
    ("d13", "Exercise", "Regular aerobic exercise improves insulin sensitivity and mood."),
    ("d14", "Smoking", "Smoking damages the lungs and raises the risk of lung cancer."),
    ("d15", "Coffee", "Moderate coffee intake is not linked to heart disease in large cohorts."),
]
DOC_TOP_K = 400
REL = 0.006  # 9 significant bits stored per weight (~0.4%) plus float32 boosts


@pytest.fixture(scope="module")
def corpus(engine_backend, tiny_model):
    """A provisioned alias holding DOCS encoded by tiny-mistral; yields (alias, {id: stored features})."""
    from echo_splade.mappings import IndexSpec, provision, sparse_to_features

    name = f"t-connector-{engine_backend.engine}-{uuid.uuid4().hex[:8]}"
    # the engine's own sparse field: rank_features (OpenSearch), sparse_vector (Elasticsearch >= 8.11)
    plan = provision(engine_backend, IndexSpec.from_encoder(name, tiny_model))
    assert plan.sparse_type == {"opensearch": "rank_features", "elasticsearch": "sparse_vector"}[engine_backend.engine]
    texts = [f"{t}\n{x}" for _, t, x in DOCS]
    vectors = tiny_model.encode_documents(texts, top_k=None)
    stored, lines = {}, []
    for (doc_id, title, text), full_text, vec in zip(DOCS, texts, vectors):
        # the top DOC_TOP_K terms plus the document's own tokens (a random model's expansion
        # rarely holds them, and inference-free queries match on them), weights as encoded
        weights = dict(zip(vec.indices, vec.values))
        own = set(tiny_model.tokenizer(full_text, add_special_tokens=False)["input_ids"]) & set(weights)
        keep = own | set(sorted(weights, key=lambda i: -weights[i])[:DOC_TOP_K])
        features = sparse_to_features({tiny_model.id_to_token(i): weights[i] for i in keep})
        stored[doc_id] = features
        lines.append(json.dumps({"index": {"_index": name, "_id": doc_id}}))
        lines.append(
            json.dumps(
                {
                    "doc_id": doc_id,
                    "title": title,
                    "text": text,
                    "sparse": features,
                    "model": tiny_model.model_id,
                    "model_rev": tiny_model.model_rev,
                }
            )
        )
    resp = engine_backend.bulk(lines, refresh="true")
    assert not resp["errors"], resp
    yield name, stored
    engine_backend.request("DELETE", f"/{name}*", params={"expand_wildcards": "all", "ignore_unavailable": True})


@pytest.fixture(scope="module")
def retriever(engine_backend, corpus, tiny_model):
    return SparseRetriever(engine_backend.raw, corpus[0], encoder=tiny_model, mode="llm")


@pytest.mark.parametrize("top_k", [64, None])
def test_linear_scores_equal_brute_force_dot_product(engine_backend, corpus, tiny_model, top_k):
    name, stored = corpus
    r = SparseRetriever(engine_backend, name, encoder=tiny_model, query_top_k=top_k)
    body = r.build_query("does salt intake raise blood pressure")
    weights = query_weights(body)
    assert 0 < len(weights) <= (64 if top_k else r.clause_limit)
    expected = dot_products(weights, stored)
    hits = r.search("does salt intake raise blood pressure", k=len(DOCS))
    assert {h.id for h in hits} == {d for d, s in expected.items() if s > 0}
    for h in hits:
        assert h.score == pytest.approx(expected[h.id], rel=REL), h.id
    # the cluster's order is the brute-force order, up to the stored precision
    for a, b in zip(hits, hits[1:]):
        assert expected[a.id] >= expected[b.id] * (1 - 2 * REL)


@pytest.mark.parametrize("engine", ["elasticsearch"], indirect=True)  # the term form is for sparse_vector fields
def test_elasticsearch_8_11_to_8_14_form_executes_on_the_real_node(engine_backend, corpus, tiny_model):
    """Before 8.15 Elasticsearch has the sparse_vector field but no sparse_vector query: the retriever
    sends term clauses with boosts. The real node runs that body: same dot-product scores, same DFs."""
    from echo_splade.client import Backend
    from echo_splade.connector import DocumentFrequencies, uses_term_clauses

    name, stored = corpus
    as_8_12 = Backend(engine_backend.raw, "elasticsearch", info={"version": {"number": "8.12.2"}})
    assert uses_term_clauses(as_8_12, "sparse_vector") and not uses_term_clauses(engine_backend, "sparse_vector")
    r = SparseRetriever(as_8_12, name, encoder=tiny_model)
    query = "does salt intake raise blood pressure"
    body = r.build_query(query)
    assert "sparse_vector" not in json.dumps(body) and '"term"' in json.dumps(body)
    weights = query_weights(body)
    assert weights == query_weights(SparseRetriever(engine_backend, name, encoder=tiny_model).build_query(query))
    expected = dot_products(weights, stored)
    hits = r.search(query, k=len(DOCS))
    assert {h.id for h in hits} == {d for d, s in expected.items() if s > 0}
    for h in hits:
        assert h.score == pytest.approx(expected[h.id], rel=REL), h.id
    features = sorted(set().union(*map(set, stored.values())))[:300] + ["zz-no-such-feature"]
    dfs = DocumentFrequencies(as_8_12, name, "sparse", "sparse_vector")._compute(features)
    assert dfs == {f: sum(1 for s in stored.values() if f in s) for f in features}


def test_clause_cap_holds_for_thousands_of_terms(engine_backend, corpus, tiny_model):
    name, stored = corpus
    vocab = [tiny_model.id_to_token(i) for i in range(3, 5003)]
    tokens = {t: 1.0 + i / 10000 for i, t in enumerate(vocab)}
    r = SparseRetriever(engine_backend, name, mode="tokens", query_top_k=None)
    limit = r.clause_limit
    assert limit >= 1
    body = r.build_query(tokens, filters={"exists": {"field": "doc_id"}})
    assert len(query_weights(body)) == limit - 1  # one leaf left for the filter
    hits = r.search(tokens, k=5, filters={"exists": {"field": "doc_id"}})
    assert hits
    if engine_backend.engine != "opensearch":
        return  # Elasticsearch >= 8 derives its limit from the heap (>= 1024); 1024 is used, no exact limit to probe
    # the cap is needed: the same terms uncapped are refused by the node
    from echo_splade.connector import sparse_clause
    from echo_splade.mappings import token_to_feature

    uncapped = {"query": sparse_clause({token_to_feature(t): 1.0 for t in vocab[: limit + 50]}, "sparse", r.field_type)}
    with pytest.raises(ClusterError, match="(?i)too_many|clause"):
        engine_backend.search(name, uncapped)


def test_filters_stay_untouched_and_restrict(retriever):
    filters = [{"terms": {"doc_id": ["d3", "d13"]}}]
    body = retriever.build_query("insulin", filters=filters)
    assert body["query"]["bool"]["filter"] == filters
    hits = retriever.search("insulin", k=10, filters=filters)
    assert {h.id for h in hits} <= {"d3", "d13"} and hits


def test_explanations_match_stored_weights(retriever, corpus):
    _, stored = corpus
    weights = query_weights(retriever.build_query("vitamin D and bone loss"))
    hits = retriever.search("vitamin D and bone loss", k=5, explain=True)
    assert hits
    for h in hits:
        e = h.explanation
        assert e is not None and "sparse" not in h.source and h.source["doc_id"] == h.id
        assert e.matched == len(set(weights) & set(stored[h.id]))
        assert e.total == pytest.approx(h.score, rel=REL)
        assert len(e.terms) == min(10, e.matched)
        for t in e.terms:
            assert t.doc_weight == stored[h.id][t.feature]
            assert t.query_weight == weights[t.feature]
            assert t.product == pytest.approx(t.query_weight * t.doc_weight)
        products = [t.product for t in e.terms]
        assert products == sorted(products, reverse=True)


@pytest.mark.parametrize("method", ["rrf", "weighted"])
def test_hybrid_returns_fused_results(retriever, method):
    hits = retriever.search("blood pressure", k=5, hybrid=method)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.components for h in hits)
    # d0 and d7 are the BM25 matches for "blood pressure"; fusion keeps them on top of the BM25 list
    bm25_top = {h.id for h in hits if "bm25" in h.components and h.components["bm25"]["rank"] <= 2}
    assert bm25_top == {"d0", "d7"}
    single = retriever.build_query("blood pressure", hybrid=method)
    assert len(single["query"]["bool"]["should"]) == 2
    assert retriever.backend.search(retriever.index, single)["hits"]["hits"]


def test_inference_free_idf_weights_and_stored_table(engine_backend, corpus):
    name, stored = corpus
    r = SparseRetriever(engine_backend, name, mode="inference-free")
    weights = r.encode_query("blood pressure and stroke")
    assert weights
    from echo_splade.mappings import token_to_feature

    n = len(stored)
    for token, w in weights.items():
        df = sum(1 for f in stored.values() if token_to_feature(token) in f)
        assert df > 0
        assert w == pytest.approx(math.log(1 + (n - df + 0.5) / (df + 0.5)))
    assert r.search("blood pressure and stroke", k=3)
    found = r.refresh_document_frequencies()
    assert found == len(set().union(*map(set, stored.values())))
    again = SparseRetriever(engine_backend, name, mode="inference-free")
    assert again.encode_query("blood pressure and stroke") == weights
    assert again.document_frequencies._loaded and len(again.document_frequencies._df) == found


@pytest.mark.parametrize("mode", ["llm", "inference-free"])
@pytest.mark.parametrize(
    "text",
    ["bad\x00blood\x07 pressure\x1bcontrols", "mood 😀😞 emoji", "давление 高血压 pressure", "café naïve résumé"],
)
def test_awkward_text_works(engine_backend, corpus, tiny_model, mode, text):
    r = SparseRetriever(engine_backend, corpus[0], encoder=tiny_model if mode == "llm" else None, mode=mode)
    assert r.search(text, k=3)


def test_empty_and_long_queries(retriever):
    for bad in ["", "   \n\t", "\x00\x01"]:
        with pytest.raises(ValueError, match="empty"):
            retriever.search(bad)
    long_query = " ".join(["blood pressure salt heart"] * 600)  # > 2,400 words: several encoder windows
    assert len(retriever.encoder.prepare([long_query], "query")) > 1
    assert retriever.search(long_query, k=3)


def _expected_features(tiny_model, text: str) -> dict[str, float]:
    """{feature: weight} of ``text`` encoded as a query by the encoder itself (the retriever's 64 terms)."""
    from echo_splade.mappings import token_to_feature

    (vec,) = tiny_model.encode_queries([text], top_k=64)
    return {token_to_feature(t): w for t, w in tiny_model.tokens(vec).items()}


def _is_sparse_clause(node) -> bool:
    """A clause of the sparse field: a sparse_vector query, or a bool of rank_feature/term clauses on it."""
    if not isinstance(node, dict) or len(node) != 1:
        return False
    if "sparse_vector" in node:
        return node["sparse_vector"].get("field") == "sparse"
    should = (node.get("bool") or {}).get("should")
    return bool(should) and all(
        (c.get("rank_feature") or {}).get("field", "").startswith("sparse.") or "sparse" in (c.get("term") or {})
        for c in should
    )


def _sparse_paths(node, path=()):
    """Paths (tuples of keys and list positions) of the sparse clauses in a body, in walk order."""
    if _is_sparse_clause(node):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _sparse_paths(v, path + (k,))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _sparse_paths(v, path + (i,))]
    return []


def _at(node, path):
    for key in path:
        node = node[key]
    return node


def _put(node, path, value):
    _at(node, path[:-1])[path[-1]] = value


def _text_of(clause) -> str:
    """The query text of a rewritable text clause of the table (match, match_phrase, multi_match, ...)."""
    ((qtype, params),) = clause.items()
    if "query" in params:
        return str(params["query"])
    value = params["text"]
    return str(value["query"] if isinstance(value, dict) else value)


def _scores(backend, index, query) -> dict[str, float]:
    resp = backend.search(index, {"query": query, "size": len(DOCS)})
    assert resp["_shards"]["failed"] == 0, resp["_shards"]
    return {h["_id"]: h["_score"] for h in resp["hits"]["hits"]}


@pytest.mark.parametrize("hybrid", [None, "weighted"])
def test_rewritten_bodies_put_the_sparse_clause_in_place_of_the_text_clause(retriever, corpus, tiny_model, hybrid):
    """Every body of the rewrite table, rewritten by the real retriever: each rewritten text clause is
    replaced, at its own path, by the sparse clause of its text encoded by the encoder (boost and _name
    kept); with hybrid the original clause stays beside it (``keeps_original``); putting the original
    clauses back gives the original body; and the rewritten body runs on the node without failures."""
    import copy
    import warnings

    from test_rewrite import BODIES

    from echo_splade.connector import RewriteWarning

    wrapper_tail = ("bool", "should", 1, "bool", "must", 0)  # where Hybrid.combine_clauses puts the sparse clause
    for name, body, texts, warns in BODIES:
        if name == "unknown-compound":  # a neural-search plugin query this node does not have
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = retriever.rewrite(body, hybrid=hybrid)
        assert bool(warns) == any(issubclass(w.category, RewriteWarning) for w in caught), name
        paths = _sparse_paths(out)
        assert len(paths) == len(texts), (name, paths)
        restored = copy.deepcopy(out)
        seen = []
        for path in paths:
            sparse = _at(out, path)
            if hybrid is None:
                site = path
            else:
                assert path[-len(wrapper_tail) :] == wrapper_tail, (name, path)
                site = path[: -len(wrapper_tail)]
            original = _at(body, site)
            text = _text_of(original)
            seen.append(text)
            ((_, params),) = original.items()
            inner = params if "query" in params else params["text"]
            boost = inner.get("boost") if isinstance(inner, dict) else None
            label = inner.get("_name") if isinstance(inner, dict) else None
            # the clause carries the encoder's own query vector of that text, with the clause's boost (and _name)
            assert query_weights(sparse) == pytest.approx(_expected_features(tiny_model, text), rel=1e-5), (name, text)
            clause_params = sparse.get("sparse_vector") or sparse["bool"]
            assert clause_params.get("boost") == boost, (name, path)
            assert clause_params.get("_name") == (label if hybrid is None else None), (name, path)
            if hybrid is not None:  # keeps_original: BM25 on the original clause, beside the sparse one
                w = DEFAULT_SPARSE_WEIGHT
                assert _at(out, site) == {
                    "bool": {
                        "should": [
                            {"bool": {"must": [original], "boost": 1.0 - w}},
                            {"bool": {"must": [sparse], "boost": w}},
                        ]
                    }
                }, name
            _put(restored, site, copy.deepcopy(original))
        assert sorted(seen) == sorted(texts), name
        assert restored == body, f"{name}: the rewrite changed more than the text clauses"
        resp = retriever.backend.search(corpus[0], out)
        assert resp["_shards"]["failed"] == 0 and "hits" in resp, name


@pytest.mark.parametrize("hybrid", [None, "weighted"])
@pytest.mark.parametrize("body_name", ["plain-match", "match-object-and-everything-else"])
def test_rewritten_query_scores_the_dot_product(retriever, corpus, engine_backend, tiny_model, body_name, hybrid):
    """The rewritten query scores what it should on the node: the clause's boost times the dot product of
    the encoder's query vector with the stored document vectors (within the 9-bit precision); with hybrid,
    (1 - w) x the original clause's own score (BM25, run alone on the node) + w x that boosted dot product
    (w: the default sparse weight)."""
    from test_rewrite import BODIES

    name, stored = corpus
    (body,) = [b for n, b, _, _ in BODIES if n == body_name]
    out = retriever.rewrite(body, hybrid=hybrid)
    clause = body["query"]["match"]["text"]
    text, boost = (clause["query"], clause["boost"]) if isinstance(clause, dict) else (clause, 1.0)
    dot = dot_products(_expected_features(tiny_model, text), stored)
    lexical = _scores(engine_backend, name, body["query"]) if hybrid else {}
    w = DEFAULT_SPARSE_WEIGHT if hybrid else 1.0
    expected = {d: w * boost * s + (1.0 - w) * lexical.get(d, 0.0) for d, s in dot.items()}
    assert not hybrid or lexical, "the original clause matches nothing: the hybrid sum is not tested"
    got = _scores(engine_backend, name, out["query"])
    assert set(got) == {d for d, s in expected.items() if s > 0}
    for doc_id, score in got.items():
        assert score == pytest.approx(expected[doc_id], rel=REL), doc_id
    if body_name == "match-object-and-everything-else" and hybrid is None:
        # the clause's _name survives: the node reports it as matched
        resp = engine_backend.search(name, {"query": out["query"], "size": len(DOCS)})
        assert all(h.get("matched_queries") == ["main"] for h in resp["hits"]["hits"]), resp["hits"]["hits"][:2]


def test_cli_search(corpus, engine_connection):
    from click.testing import CliRunner

    from echo_splade.cli import cli

    url = engine_connection.urls[0]
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "search",
            "heart attack",
            "--index",
            corpus[0],
            "--url",
            url,
            "--model",
            "tiny-mistral",
            "--k",
            "3",
            "--json",
            "--explain",
        ],
    )
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert len(hits) == 3 and all(h["explanation"]["terms"] for h in hits)
    res = runner.invoke(
        cli,
        [
            "search",
            "heart attack",
            "--index",
            corpus[0],
            "--url",
            url,
            "--mode",
            "inference-free",
            "--hybrid",
            "rrf",
            "--explain",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "  1. " in res.output and "bm25 #" in res.output and " x " in res.output
    res = runner.invoke(cli, ["search", "  ", "--index", corpus[0], "--url", url])
    assert res.exit_code != 0 and "empty" in res.output


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_two_phase_rescored_hits_score_the_full_dot_product(engine_backend, corpus, tiny_model):
    """Phase 1 searches with the heaviest terms only; every hit returned carries the full query's dot product
    (the rescore), not phase 1's partial score."""
    name, stored = corpus
    query = "does salt intake raise blood pressure"
    plan = {"prune_ratio": 0.9, "window_factor": 4}
    two = SparseRetriever(engine_backend, name, encoder=tiny_model, query_top_k=None, two_phase=plan)
    body = two.build_query(query, k=5)
    first, full = query_weights(body["query"]), query_weights(body["rescore"]["query"]["rescore_query"])
    assert 0 < len(first) < len(full) and set(first) <= set(full)
    exhaustive = SparseRetriever(engine_backend, name, encoder=tiny_model, query_top_k=None)
    assert full == query_weights(exhaustive.build_query(query))  # phase 2 is the whole query vector
    assert body["rescore"]["window_size"] == 20

    expected, partial = dot_products(full, stored), dot_products(first, stored)
    hits = two.search(query, k=5)
    assert len(hits) == 5 and all(partial[h.id] > 0 for h in hits)  # phase 1 found them
    for h in hits:
        assert h.score == pytest.approx(expected[h.id], rel=REL), h.id
    assert any(abs(expected[h.id] - partial[h.id]) > 2 * REL * expected[h.id] for h in hits)  # rescored, not phase 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # the best phase-1 candidates by full score, as brute force ranks them
    best = sorted((d for d in stored if partial[d] > 0), key=lambda d: -expected[d])[:5]
    assert [expected[h.id] for h in hits] == pytest.approx([expected[d] for d in best], rel=2 * REL)


@pytest.mark.parametrize("hybrid", [None, "rrf"])
def test_two_phase_returns_what_exhaustive_scoring_finds_when_phase_1_finds_fewer_than_k(
    engine_backend, corpus, tiny_model, hybrid
):
    """Documents that match only the query's lighter terms are not lost: when phase 1 (the heaviest terms) finds
    fewer than k documents, the search is scored with every term."""
    name, stored = corpus
    query = "does salt intake raise blood pressure"
    plan = {"prune_ratio": 0.9, "window_factor": 4}
    two = SparseRetriever(engine_backend, name, encoder=tiny_model, query_top_k=None, two_phase=plan)
    body = two.build_query(query)
    first, full = query_weights(body["query"]), query_weights(body["rescore"]["query"]["rescore_query"])
    matched = {d for d, score in dot_products(full, stored).items() if score > 0}
    partial = {d for d, score in dot_products(first, stored).items() if score > 0}
    assert len(partial) < len(matched)  # the case: phase 1 alone would find fewer documents
    exhaustive = SparseRetriever(engine_backend, name, encoder=tiny_model, query_top_k=None, two_phase=None)
    want = exhaustive.search(query, k=len(matched), hybrid=hybrid)
    got = two.search(query, k=len(matched), hybrid=hybrid)
    assert [h.id for h in got] == [h.id for h in want]
    if hybrid is None:
        assert {h.id for h in got} == matched
