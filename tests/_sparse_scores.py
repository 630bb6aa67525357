"""The dot-product check of the scoring tests (test_connector_cluster.py, test_compat.py): the query weights a
body sends, and the score each stored document should get for them (the brute-force dot product)."""

from __future__ import annotations


def query_weights(body) -> dict[str, float]:
    """``{feature: query weight}`` of the sparse clauses in a body: the ``rank_feature`` clauses (OpenSearch), the
    ``sparse_vector`` query (Elasticsearch >= 8.15) or the ``term``-with-boost clauses on the sparse field
    (Elasticsearch 8.11-8.14)."""
    out: dict[str, float] = {}

    def walk(node):
        if isinstance(node, dict):
            rf = node.get("rank_feature")
            if isinstance(rf, dict):
                out[rf["field"].split(".", 1)[1]] = rf["boost"]
            sv = node.get("sparse_vector")
            if isinstance(sv, dict):
                out.update(sv["query_vector"])
            term = (node.get("term") or {}).get("sparse")
            if isinstance(term, dict):
                out[term["value"]] = term["boost"]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(body)
    return out


def dot_products(weights: dict[str, float], stored: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{doc id: sum of weight x stored weight}``: the score the engine must give each document in ``stored``."""
    return {d: sum(w * features.get(k, 0.0) for k, w in weights.items()) for d, features in stored.items()}
