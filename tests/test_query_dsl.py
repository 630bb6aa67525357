"""One query-DSL walker for the clause estimator and the rewriter: contexts, paths, and both users
reading the same table of compound queries. No cluster."""

from __future__ import annotations

import logging
import warnings

import pytest

from echo_splade.connector import (
    COMPOUND_QUERIES,
    IndexFacts,
    QueryRewriter,
    RewriteWarning,
    clean_query_text,
    estimate_leaf_clauses,
    walk_query,
)

QUERY = {
    "bool": {
        "must": [{"match": {"text": "a b"}}],
        "filter": {"match": {"text": "c"}},
        "should": [
            {"function_score": {"query": {"match": {"text": "d"}}, "functions": [{"filter": {"term": {"x": 1}}}]}},
            {"has_child": {"type": "c", "query": {"match": {"text": "e f g"}}}},
            {"boosting": {"positive": {"term": {"y": 2}}, "negative": {"match": {"text": "h"}}}},
        ],
    }
}


def test_walker_contexts_and_paths():
    leaves = {v.path: v.context for v in walk_query(QUERY) if not v.compound}
    assert leaves == {
        "query.bool.must[0].match": "score",
        "query.bool.filter.match": "filter",
        "query.bool.should[0].function_score.query.match": "score",
        "query.bool.should[0].function_score.functions[0].filter.term": "filter",
        "query.bool.should[1].has_child.query.match": "foreign",
        "query.bool.should[2].boosting.positive.term": "score",
        "query.bool.should[2].boosting.negative.match": "filter",
    }
    compound = [v.query_type for v in walk_query(QUERY) if v.compound]
    assert compound == ["bool", "function_score", "has_child", "boosting"]
    assert set(compound) <= set(COMPOUND_QUERIES)
    # a visit says where its clause sits, so a caller can replace it
    (visit,) = [v for v in walk_query(QUERY) if v.path == "query.bool.must[0].match"]
    assert visit.container[visit.key] is visit.clause


def test_estimator_and_rewriter_read_the_same_tree():
    # every leaf counts, in any context: 2 + 1 + 1 + 1 + 3 + 1 + 1 words/leaves
    assert estimate_leaf_clauses(QUERY) == 10
    seen = []

    def make_clause(text, max_terms, original, boost, name):
        seen.append((text, max_terms))
        return {"match_none": {}}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = QueryRewriter("text").rewrite({"query": QUERY}, make_clause, clause_limit=100)
    # only the scoring positions are replaced; filter context and the child query keep their text
    assert [t for t, _ in seen] == ["a b", "d"]
    assert out["query"]["bool"]["must"][0] == {"match_none": {}}
    assert out["query"]["bool"]["should"][0]["function_score"]["query"] == {"match_none": {}}
    assert out["query"]["bool"]["filter"] == {"match": {"text": "c"}}
    assert out["query"]["bool"]["should"][2]["boosting"]["negative"] == {"match": {"text": "h"}}
    assert any("has_child" in str(w.message) for w in caught if issubclass(w.category, RewriteWarning))
    # the budget: the clause limit less what the rest of the query uses (10 - the 3 replaced words), per site
    assert {m for _, m in seen} == {(100 - (10 - 3)) // 2}


def test_index_facts_given_values_need_no_cluster(caplog):
    facts = IndexFacts(backend=None, index="i", field="sparse", clause_limit=77, field_type="rank_features")  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        assert (facts.clause_limit, facts.field_type) == (77, "rank_features")
    assert not caplog.records  # nothing was read, so nothing is announced


def test_clean_query_text():
    assert clean_query_text("a\x00b\ud800") == "a b?"
    with pytest.raises(ValueError, match="empty or whitespace"):
        clean_query_text(" \x07 ")
    with pytest.raises(ValueError, match="mode='tokens'"):
        clean_query_text({"a": 1.0})
