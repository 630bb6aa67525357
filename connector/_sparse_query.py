"""Pure query-building helpers shared by the retriever, the rewriter and document frequencies."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal, Optional

from echo_splade.client import Backend, ClusterError, ClusterStateError

from ._query_dsl import walk_query

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CLAUSE_LIMIT",
    "SparseFieldType",
    "detect_field_type",
    "estimate_leaf_clauses",
    "read_clause_limit",
    "select_terms",
    "sparse_clause",
    "uses_term_clauses",
]

SparseFieldType = Literal["rank_features", "sparse_vector"]
SPARSE_FIELD_TYPES = ("rank_features", "sparse_vector")
#: First Elasticsearch version with the ``sparse_vector`` query (the field type came in 8.11).
SPARSE_VECTOR_QUERY_SINCE = (8, 15)

#: Lucene's ``IndexSearcher.maxClauseCount`` default, OpenSearch's
#: ``indices.query.bool.max_clause_count`` default, and the floor of the
#: heap-derived limit of Elasticsearch >= 8.
DEFAULT_CLAUSE_LIMIT = 1024
CLAUSE_SETTING = "indices.query.bool.max_clause_count"

# Text queries: one leaf per word per field.
_TEXT_QUERIES = (
    "match",
    "match_phrase",
    "match_phrase_prefix",
    "match_bool_prefix",
    "multi_match",
    "combined_fields",
    "simple_query_string",
    "query_string",
)


def select_terms(
    weights: Mapping[str, float],
    top_k: Optional[int],
    min_weight: float,
    limit: Optional[int] = None,
) -> dict[str, float]:
    """Keep the ``top_k`` largest weights that are ``>= min_weight`` and > 0, at most ``limit``.

    Non-finite weights are an error. Returns a dict ordered by weight
    (descending), ties by key, so the same input always gives the same query.
    """
    for key, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w):
            raise ValueError(f"query weight for {key!r} must be a finite number, got {w!r}")
    kept = sorted(
        ((k, float(w)) for k, w in weights.items() if w > 0 and w >= min_weight), key=lambda kw: (-kw[1], kw[0])
    )
    cap = min(x for x in (top_k, limit, len(kept)) if x is not None)
    return dict(kept[:cap])


def sparse_clause(
    features: Mapping[str, float],
    field: str,
    field_type: SparseFieldType = "rank_features",
    boost: Optional[float] = None,
    name: Optional[str] = None,
    terms: bool = False,
) -> dict:
    """The sparse dot-product clause for ``{feature: query_weight}``.

    ``rank_features``: ``bool.should`` of one ``rank_feature`` query per term with
    the ``linear`` function and ``boost`` = query weight, so a document scores
    ``sum(query_weight * doc_weight)`` over shared terms (the SPLADE score).
    ``sparse_vector`` (Elasticsearch >= 8.15): one ``sparse_vector`` query with
    ``query_vector`` and ``prune: false``, which scores the same dot product; with ``terms=True``
    (Elasticsearch 8.11-8.14, which has the field but not that query, see
    :func:`uses_term_clauses`): ``bool.should`` of one ``term`` query per feature
    with ``boost`` = query weight, the same dot product. An empty query vector
    gives ``match_none``.
    """
    if field_type not in SPARSE_FIELD_TYPES:
        raise ValueError(f"field_type must be one of {SPARSE_FIELD_TYPES}, got {field_type!r}")
    extra: dict[str, Any] = {}
    if boost is not None:
        extra["boost"] = boost
    if name is not None:
        extra["_name"] = name
    if not features:
        return {"match_none": dict(extra)}
    if field_type == "sparse_vector" and terms:
        should: list[dict[str, Any]] = [
            {"term": {field: {"value": key, "boost": float(w)}}} for key, w in features.items()
        ]
        return {"bool": {"should": should, **extra}}
    if field_type == "sparse_vector":
        # prune off: Elasticsearch 8.19+/9.1+ turn token pruning on for new sparse_vector fields and apply it
        # to queries that do not say otherwise, dropping frequent low-weight query tokens (the score is then no
        # longer the dot product; measured on 8.19.21: 4.89 instead of 6.12)
        vector = {k: float(v) for k, v in features.items()}
        return {"sparse_vector": {"field": field, "query_vector": vector, "prune": False, **extra}}
    should = [
        {"rank_feature": {"field": f"{field}.{key}", "boost": float(w), "linear": {}}} for key, w in features.items()
    ]
    return {"bool": {"should": should, **extra}}


def uses_term_clauses(backend: Backend, field_type: SparseFieldType) -> bool:
    """Whether a ``field_type`` field is queried with ``term`` clauses (:func:`sparse_clause` ``terms``):
    a ``sparse_vector`` field on Elasticsearch before 8.15, which has no ``sparse_vector`` query."""
    return (
        field_type == "sparse_vector"
        and backend.engine == "elasticsearch"
        and tuple(backend.version[:2]) < SPARSE_VECTOR_QUERY_SINCE
    )


def read_clause_limit(backend: Backend) -> int:
    """The cluster's boolean clause limit; :data:`DEFAULT_CLAUSE_LIMIT` when it cannot be read.

    OpenSearch: ``indices.query.bool.max_clause_count`` (transient, then
    persistent, then node defaults). Elasticsearch >= 8 derives the limit from
    heap and thread pool sizes and ignores that setting; its floor, 1024, is used.
    """
    if backend.engine == "elasticsearch" and backend.version[:1] >= (8,):
        return DEFAULT_CLAUSE_LIMIT
    try:
        resp = backend.request("GET", "/_cluster/settings", params={"include_defaults": True, "flat_settings": True})
    except ClusterError as exc:
        logger.info("cannot read %s (%s); assuming %d", CLAUSE_SETTING, exc, DEFAULT_CLAUSE_LIMIT)
        return DEFAULT_CLAUSE_LIMIT
    for section in ("transient", "persistent", "defaults"):
        value = (resp.get(section) or {}).get(CLAUSE_SETTING)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                logger.warning("unreadable %s=%r; assuming %d", CLAUSE_SETTING, value, DEFAULT_CLAUSE_LIMIT)
                return DEFAULT_CLAUSE_LIMIT
    return DEFAULT_CLAUSE_LIMIT


def estimate_leaf_clauses(node: Any) -> int:
    """An upper-bound estimate of the Lucene leaf queries a query DSL tree expands to.

    Lucene counts every leaf (and every term of a multi-term query) against the
    clause limit. Text queries count one per whitespace-separated word per
    field; other leaves count one; ``terms`` counts one per value. The tree is
    walked by :func:`walk_query` (the rewriter's walker), in every context.
    """
    return sum(_leaf_count(visit.query_type, visit.params) for visit in walk_query(node) if not visit.compound)


def _leaf_count(qtype: str, params: Any) -> int:
    if qtype == "sparse_vector" and isinstance(params, Mapping):
        return len(params.get("query_vector") or {}) or 1
    if qtype in _TEXT_QUERIES:
        return _text_query_terms(qtype, params)
    if qtype == "terms" and isinstance(params, Mapping):
        values = [v for k, v in params.items() if k != "boost" and isinstance(v, list)]
        return max(1, sum(len(v) for v in values))
    return 1


def _text_query_terms(qtype: str, params: Any) -> int:
    if not isinstance(params, Mapping):
        return 1
    if qtype in ("multi_match", "combined_fields", "simple_query_string", "query_string"):
        text = params.get("query")
        fields = params.get("fields") or [params.get("default_field", "*")]
        # a wildcard field pattern may expand to several fields; count 2 for it
        n_fields = sum(2 if "*" in str(f) else 1 for f in fields)
    else:
        value = next(iter(params.values()), "") if params else ""
        text = value.get("query") if isinstance(value, Mapping) else value
        n_fields = 1
    words = len(str(text or "").split()) or 1
    return words * n_fields


def detect_field_type(backend: Backend, index: str, field: str) -> SparseFieldType:
    """The mapped type of ``field`` in every index behind ``index`` (an alias or index name).

    Raises ``ClusterStateError`` (a ``ValueError``) when the field is missing, not a sparse type, or
    mapped differently in different indices behind the alias.
    """
    resp = backend.request("GET", f"/{index}/_mapping/field/{field}")
    leaf = field.rsplit(".", 1)[-1]
    types = set()
    for body in (resp or {}).values():
        mapping = (body.get("mappings") or {}).get(field, {}).get("mapping", {}).get(leaf, {})
        if mapping:
            types.add(mapping.get("type"))
    if not types:
        raise ClusterStateError(f"index {index!r} has no field {field!r}; is it an echo-splade index (provisioned)?")
    if len(types) > 1:
        raise ClusterStateError(
            f"field {field!r} has different types across the indices behind {index!r}: {sorted(map(str, types))}"
        )
    (ftype,) = types
    if ftype not in SPARSE_FIELD_TYPES:
        raise ClusterStateError(
            f"field {field!r} of index {index!r} is a {ftype!r} field; expected one of {SPARSE_FIELD_TYPES}"
        )
    return ftype
