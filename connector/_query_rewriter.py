from __future__ import annotations

import copy
import dataclasses
import fnmatch
import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

from ._query_dsl import walk_query
from ._sparse_query import estimate_leaf_clauses

logger = logging.getLogger(__name__)

__all__ = ["QueryRewriter", "RewriteWarning"]

#: The text clauses that are replaced (``query_string`` only when its text has no syntax).
REWRITABLE = ("match", "match_phrase", "multi_match", "simple_query_string", "query_string")
# Text queries whose semantics a sparse clause cannot reproduce.
_NOT_REWRITABLE_TEXT = (
    "match_phrase_prefix",
    "match_bool_prefix",
    "combined_fields",
    "intervals",
    "more_like_this",
    "fuzzy",
    "prefix",
    "wildcard",
    "regexp",
    "span_term",
    "span_multi",
    "span_near",
    "span_or",
    "span_first",
    "span_not",
    "span_containing",
    "span_within",
    "term",
    "terms",
    "terms_set",
)
_MULTI_FIELD = ("multi_match", "simple_query_string", "query_string", "combined_fields", "more_like_this")
# Lucene classic query parser syntax: operators at term start, reserved characters, boolean words.
_QS_SYNTAX = re.compile(r'(^|\s)[+\-!]|&&|\|\||[(){}\[\]^"~*?:\\/]|\b(AND|OR|NOT)\b')

# ``make_clause(text, max_terms, original_clause, boost, name) -> replacement clause``
ClauseFactory = Callable[[str, int, dict, Optional[float], Optional[str]], dict]


class RewriteWarning(UserWarning):
    """A construct :class:`QueryRewriter` left unchanged."""


@dataclasses.dataclass
class _Site:
    container: Union[dict, list]
    key: Union[str, int]
    clause: dict
    text: str
    boost: Optional[float]
    name: Optional[str]
    path: str


class QueryRewriter:
    """Replace lexical text clauses on given fields of a search body with sparse clauses.

    Walks ``body["query"]``: in scoring positions (``bool.must``/``should``,
    ``function_score.query``, ``script_score.query``, ``dis_max.queries``,
    ``boosting.positive``, ``nested.query``) it replaces ``match``,
    ``match_phrase``, ``multi_match``, ``simple_query_string`` and plain-text
    ``query_string`` clauses that target one of ``fields``. Clauses in filter
    context (``bool.filter``/``must_not``, ``constant_score``, ``post_filter``,
    aggregations, function filters) keep their lexical meaning and stay as they
    are. Constructs it cannot rewrite (``query_string`` with syntax,
    ``match_phrase_prefix``, ``intervals``, spans, ``rescore``, unknown
    compound queries, ...) are left unchanged with a :class:`RewriteWarning`
    (also logged) naming them and their path. The input is never mutated.
    """

    def __init__(self, fields: Union[str, Sequence[str]] = "text") -> None:
        fields = (fields,) if isinstance(fields, str) else tuple(fields)
        if not fields or not all(isinstance(f, str) and f.strip() for f in fields):
            raise ValueError(f"fields must be one or more non-empty field names, got {fields!r}")
        self.fields = fields

    # -- public ------------------------------------------------------------
    def rewrite(
        self, body: Mapping[str, Any], make_clause: ClauseFactory, clause_limit: int, keeps_original: bool = False
    ) -> dict:
        """Return a rewritten deep copy of ``body``.

        ``clause_limit`` is the cluster's clause limit: the replacement clauses
        share what the rest of the query leaves of it (``keeps_original`` says the
        replacement still contains the original clause, as hybrid does).
        """
        if not isinstance(body, Mapping):
            raise ValueError(f"body must be a search request body (a dict), got {type(body).__name__}")
        out = copy.deepcopy(dict(body))
        if "rescore" in out and self._mentions_text(out["rescore"]):
            self._warn("rescore", "rescore queries are left unchanged")
        query = out.get("query")
        if query is None:
            logger.info("rewrite: the body has no query; nothing to rewrite")
            return out
        sites: list[_Site] = []
        self._walk(query, out, "query", sites)
        if not sites:
            logger.info("rewrite: no text clause on %s in a scoring position", list(self.fields))
            return out
        others = estimate_leaf_clauses(query)
        if not keeps_original:
            others -= sum(estimate_leaf_clauses(s.clause) for s in sites)
        budget = (clause_limit - others) // len(sites)
        if budget < 1:
            raise ValueError(
                f"the query already uses about {others} of the cluster's {clause_limit} clauses; "
                "no room is left for the sparse clauses"
            )
        for site in sites:
            container: Any = site.container  # a dict keyed by str or a list indexed by int
            container[site.key] = make_clause(site.text, budget, site.clause, site.boost, site.name)
            logger.debug("rewrite: replaced %s", site.path)
        return out

    # -- walking -----------------------------------------------------------
    def _walk(self, query: Any, container: dict, key: str, sites: list[_Site]) -> None:
        """Collect the replaceable sites of ``query`` (the shared :func:`walk_query` walker)."""
        for visit in walk_query(query, key, "score", container, key):
            qtype, params, here, scoring = visit.query_type, visit.params, visit.path, visit.context == "score"
            if visit.context == "foreign":  # inside has_child/has_parent: warned about at the parent
                continue
            if visit.compound:
                if qtype in ("has_child", "has_parent") and self._mentions_text(params):
                    self._warn(here, f"{qtype} scores other documents; its text clauses are left unchanged")
            elif qtype in REWRITABLE:
                self._visit_text(qtype, params, visit.clause, visit.container, visit.key, here, scoring, sites)
            elif qtype in _NOT_REWRITABLE_TEXT:
                if scoring and self._on_field(qtype, params):
                    self._warn(here, f"{qtype} on {self._field_list()} cannot be expressed as a sparse clause")
            elif isinstance(params, (Mapping, list)) and self._mentions_text(params):
                self._warn(here, f"unknown compound query {qtype!r}; its text clauses are left unchanged")

    def _visit_text(
        self,
        qtype: str,
        params: Any,
        node: Mapping,
        container: Any,
        key: Any,
        path: str,
        scoring: bool,
        sites: list[_Site],
    ) -> None:
        if not isinstance(params, Mapping) or not self._on_field(qtype, params):
            return
        if not scoring:
            logger.info("rewrite: %s is in filter context; it keeps its lexical meaning", path)
            return
        if len(node) != 1:
            self._warn(path, f"the clause object holds several keys {sorted(node)}")
            return
        text, boost, name = self._text_of(qtype, params)
        if text is None:
            self._warn(path, f"{qtype} has no plain query text")
            return
        if qtype == "query_string" and _QS_SYNTAX.search(text):
            self._warn(path, "query_string uses query syntax (operators, fields, wildcards, phrases)")
            return
        if not text.strip():
            self._warn(path, f"{qtype} has empty query text")
            return
        sites.append(_Site(container, key, dict(node), text, boost, name, path))

    # -- helpers -----------------------------------------------------------
    def _field_list(self) -> str:
        return ", ".join(self.fields)

    def _matches(self, name: Any) -> bool:
        if not isinstance(name, str):
            return False
        bare = name.split("^", 1)[0]
        return any(fnmatch.fnmatchcase(f, bare) for f in self.fields)

    def _on_field(self, qtype: str, params: Any) -> bool:
        if not isinstance(params, Mapping):
            return False
        if qtype in _MULTI_FIELD or "fields" in params:
            fields = params.get("fields")
            if fields is None:
                fields = [params.get("default_field", "*")]
            return any(self._matches(f) for f in fields)
        if "field" in params:
            return self._matches(params["field"])
        return any(self._matches(k) for k in params if not k.startswith("_") and k != "boost")

    def _text_of(self, qtype: str, params: Mapping) -> tuple[Optional[str], Optional[float], Optional[str]]:
        if qtype in _MULTI_FIELD:
            text, boost, name = params.get("query"), params.get("boost"), params.get("_name")
        else:
            (value,) = [v for k, v in params.items() if self._matches(k)][:1] or [None]
            if isinstance(value, Mapping):
                text, boost, name = value.get("query"), value.get("boost"), value.get("_name")
            else:
                text, boost, name = value, None, None
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = str(text)
        return (text if isinstance(text, str) else None), boost, name

    def _mentions_text(self, node: Any) -> bool:
        if isinstance(node, list):
            return any(self._mentions_text(n) for n in node)
        if not isinstance(node, Mapping):
            return False
        for k, v in node.items():
            if k in REWRITABLE + _NOT_REWRITABLE_TEXT and self._on_field(k, v):
                return True
            if isinstance(v, (Mapping, list)) and self._mentions_text(v):
                return True
        return False

    @staticmethod
    def _warn(path: str, why: str) -> None:
        message = f"rewrite left {path} unchanged: {why}"
        logger.warning(message)
        warnings.warn(message, RewriteWarning, stacklevel=4)
