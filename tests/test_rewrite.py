"""QueryRewriter on a table of real-world request bodies (no cluster: the bodies run on the node in
test_connector_cluster.py)."""

from __future__ import annotations

import copy
import warnings

import pytest

from echo_splade.connector import QueryRewriter, RewriteWarning

MARK = "__sparse__"

# (name, body, texts expected to be rewritten in walk order, substrings of the expected warnings)
BODIES = [
    ("plain-match", {"query": {"match": {"text": "heart attack risk"}}}, ["heart attack risk"], []),
    (
        "match-object-and-everything-else",
        {
            "from": 10,
            "size": 5,
            "track_total_hits": True,
            "_source": ["title", "doc_id"],
            "sort": [{"_score": "desc"}, {"doc_id": "asc"}],
            "query": {"match": {"text": {"query": "vitamin D", "boost": 2.0, "_name": "main", "operator": "and"}}},
            "highlight": {"fields": {"text": {"fragment_size": 80}}},
            "aggs": {"by_model": {"terms": {"field": "model"}}, "lexical": {"filter": {"match": {"text": "vitamin"}}}},
            "post_filter": {"match": {"text": "vitamin"}},
        },
        ["vitamin D"],
        [],
    ),
    (
        "bool-with-filters",
        {
            "query": {
                "bool": {
                    "must": [{"multi_match": {"query": "gene expression", "fields": ["title^2", "text"]}}],
                    "filter": [{"term": {"model": "tiny-mistral"}}, {"match": {"text": "cell"}}],
                    "must_not": [{"match_phrase": {"text": "retracted paper"}}],
                    "minimum_should_match": 0,
                }
            }
        },
        ["gene expression"],
        [],
    ),
    (
        "nested-bool",
        {
            "query": {
                "bool": {
                    "should": [
                        {"match_phrase": {"text": "blood pressure"}},
                        {
                            "bool": {
                                "must": {"simple_query_string": {"query": "salt intake", "fields": ["text"]}},
                                "filter": {"exists": {"field": "title"}},
                            }
                        },
                        {"term": {"doc_id": "d1"}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        },
        ["blood pressure", "salt intake"],
        [],
    ),
    (
        "function-score",
        {
            "query": {
                "function_score": {
                    "query": {"match": {"text": "protein folding"}},
                    "functions": [{"filter": {"match": {"text": "protein"}}, "weight": 2}],
                    "score_mode": "sum",
                    "boost_mode": "multiply",
                }
            }
        },
        ["protein folding"],
        [],
    ),
    (
        "query-string-plain",
        {"query": {"query_string": {"query": "cancer immunotherapy", "default_field": "text"}}},
        ["cancer immunotherapy"],
        [],
    ),
    (
        "query-string-syntax",
        {"query": {"query_string": {"query": "title:cancer AND (immuno*)", "default_field": "text"}}},
        [],
        ["query_string uses query syntax"],
    ),
    ("title-only-multi-match", {"query": {"multi_match": {"query": "x", "fields": ["title"]}}}, [], []),
    ("phrase-prefix", {"query": {"match_phrase_prefix": {"text": "insul"}}}, [], ["match_phrase_prefix"]),
    (
        "dis-max-boosting-constant",
        {
            "query": {
                "dis_max": {
                    "queries": [
                        {
                            "boosting": {
                                "positive": {"match": {"text": "obesity"}},
                                "negative": {"match": {"text": "mice"}},
                                "negative_boost": 0.2,
                            }
                        },
                        {"constant_score": {"filter": {"match": {"text": "diet"}}, "boost": 1.5}},
                    ],
                    "tie_breaker": 0.3,
                }
            }
        },
        ["obesity"],
        [],
    ),
    ("unknown-compound", {"query": {"hybrid": {"queries": [{"match": {"text": "x"}}]}}}, [], ["unknown compound"]),
    (
        "rescore",
        {
            "query": {"match": {"text": "sleep"}},
            "rescore": {"window_size": 10, "query": {"rescore_query": {"match_phrase": {"text": "sleep apnea"}}}},
        },
        ["sleep"],
        ["rescore"],
    ),
    ("no-query", {"size": 0, "aggs": {"m": {"terms": {"field": "model"}}}}, [], []),
    ("wildcard-fields", {"query": {"multi_match": {"query": "fever", "fields": ["*"]}}}, ["fever"], []),
    ("boosted-pattern-field", {"query": {"simple_query_string": {"query": "flu", "fields": ["tex*^3"]}}}, ["flu"], []),
    ("numeric-query", {"query": {"match": {"text": 42}}}, ["42"], []),
]


def _fake_factory(calls):
    def make(text, max_terms, original, boost, name):
        calls.append((text, max_terms, boost, name))
        return {MARK: {"original": copy.deepcopy(original), "text": text}}

    return make


def _unrewrite(node):
    """Put the originals back where the fake factory left markers."""
    if isinstance(node, list):
        return [_unrewrite(n) for n in node]
    if isinstance(node, dict):
        if MARK in node:
            return node[MARK]["original"]
        return {k: _unrewrite(v) for k, v in node.items()}
    return node


@pytest.mark.parametrize("name,body,texts,warns", BODIES, ids=[b[0] for b in BODIES])
def test_rewrite_table(name, body, texts, warns):
    before = copy.deepcopy(body)
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = QueryRewriter("text").rewrite(body, _fake_factory(calls), clause_limit=1024)
    assert body == before, "the input body was mutated"
    assert [c[0] for c in calls] == texts
    # every key outside the replaced clauses is identical, structure included
    assert _unrewrite(out) == before
    for key in before:
        if key != "query":
            assert out[key] == before[key]
    messages = [str(w.message) for w in caught if issubclass(w.category, RewriteWarning)]
    for fragment in warns:
        assert any(fragment in m for m in messages), (fragment, messages)
    if not warns:
        assert messages == []


def test_rewrite_keeps_boost_and_name():
    calls = []
    QueryRewriter("text").rewrite(BODIES[1][1], _fake_factory(calls), clause_limit=1024)
    assert calls[0][2:] == (2.0, "main")


def test_rewrite_shares_clause_budget():
    body = BODIES[3][1]  # two sites, one term clause, one exists filter
    calls = []
    QueryRewriter("text").rewrite(body, _fake_factory(calls), clause_limit=100)
    assert len(calls) == 2
    assert all(c[1] == (100 - 2) // 2 for c in calls)
    with pytest.raises(ValueError, match="no room"):
        QueryRewriter("text").rewrite(
            {
                "query": {
                    "bool": {
                        "must": [{"match": {"text": "a"}}],
                        "filter": [{"terms": {"doc_id": list(map(str, range(50)))}}],
                    }
                }
            },
            _fake_factory([]),
            clause_limit=40,
        )


def test_rewrite_other_field_and_validation():
    calls = []
    out = QueryRewriter(["title"]).rewrite(BODIES[2][1], _fake_factory(calls), clause_limit=1024)
    assert [c[0] for c in calls] == ["gene expression"]  # title^2 is listed
    assert MARK in out["query"]["bool"]["must"][0]
    with pytest.raises(ValueError, match="field"):
        QueryRewriter("")
    with pytest.raises(ValueError, match="body"):
        QueryRewriter().rewrite(["not", "a", "body"], _fake_factory([]), 1024)
