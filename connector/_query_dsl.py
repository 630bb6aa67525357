"""The one query-DSL walker: which queries are compound, where their child queries sit, in which context.

Shared by the clause estimator (:func:`estimate_leaf_clauses`, every leaf counts against the
cluster's clause limit) and :class:`QueryRewriter` (text clauses in scoring positions are
replaced). One table, :data:`COMPOUND_QUERIES`, says for each compound query the slots that
hold child queries and their context:

- ``"score"``: the child scores the hit (``bool.must``/``should``, ``function_score.query``, ...);
- ``"filter"``: filter context, the child only matches (``bool.filter``/``must_not``,
  ``constant_score.filter``, ``boosting.negative``, ``function_score.functions[].filter``);
- ``"foreign"``: the child scores OTHER documents (``has_child``/``has_parent``).

A child's context is the narrower of its slot's and its parent's (``score`` < ``filter`` <
``foreign``). Queries not in the table are leaves, also unknown compound ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Union

__all__ = ["COMPOUND_QUERIES", "Context", "QueryVisit", "walk_query"]

Context = Literal["score", "filter", "foreign"]
_RANK: dict[str, int] = {"score": 0, "filter": 1, "foreign": 2}

#: compound query -> ``(slot, context)`` of each place holding child queries (a clause or a list of clauses);
#: ``functions[].filter`` is the ``filter`` of each entry of the ``functions`` list.
COMPOUND_QUERIES: dict[str, tuple[tuple[str, Context], ...]] = {
    "bool": (("must", "score"), ("should", "score"), ("filter", "filter"), ("must_not", "filter")),
    "constant_score": (("filter", "filter"),),
    "function_score": (("query", "score"), ("functions[].filter", "filter")),
    "script_score": (("query", "score"),),
    "nested": (("query", "score"),),
    "dis_max": (("queries", "score"),),
    "boosting": (("positive", "score"), ("negative", "filter")),
    "has_child": (("query", "foreign"),),
    "has_parent": (("query", "foreign"),),
}


@dataclasses.dataclass
class QueryVisit:
    """One ``{query_type: params}`` entry of a clause object met by :func:`walk_query`.

    ``clause`` is the clause object holding it (normally the one entry), found at
    ``container[key]`` (a dict slot or a list position), so a caller can replace the whole clause.
    ``compound``: ``query_type`` is in :data:`COMPOUND_QUERIES` (its children are visited after it).
    """

    query_type: str
    params: Any
    clause: Mapping[str, Any]
    container: Union[dict, list, None]
    key: Union[str, int, None]
    path: str
    context: Context
    compound: bool


def _narrower(a: Context, b: Context) -> Context:
    return a if _RANK[a] >= _RANK[b] else b


def walk_query(
    node: Any, path: str = "query", context: Context = "score", container: Any = None, key: Any = None
) -> Iterator[QueryVisit]:
    """Every query entry of the query tree ``node`` (a clause object or a list of them), depth first.

    Compound queries are yielded before their children. Malformed parts (a compound query whose
    params are not an object, non-object children) are yielded as leaves / skipped, never raised on.
    """
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk_query(item, f"{path}[{i}]", context, node, i)
        return
    if not isinstance(node, Mapping):
        return
    for qtype, params in node.items():
        here = f"{path}.{qtype}"
        slots = COMPOUND_QUERIES.get(qtype) if isinstance(params, Mapping) else None
        yield QueryVisit(qtype, params, node, container, key, here, context, slots is not None)
        for slot, slot_context in slots or ():
            child_context = _narrower(context, slot_context)
            if slot == "functions[].filter":
                for i, fn in enumerate(params.get("functions") or []):
                    if isinstance(fn, Mapping):
                        yield from walk_query(
                            fn.get("filter"), f"{here}.functions[{i}].filter", child_context, fn, "filter"
                        )
                continue
            yield from walk_query(params.get(slot), f"{here}.{slot}", child_context, params, slot)
