"""Two-phase sparse search: retrieve with the heaviest query terms, rescore the top window with all of them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

__all__ = ["TwoPhase", "TwoPhaseLike", "PHASEABLE_KEYS"]

TwoPhaseLike = Union[None, bool, "TwoPhase", Mapping[str, Any]]

#: Top-level keys of a search body under which a two-phase search returns the hits that exhaustive scoring
#: would (up to the window): nothing that ranks by other than the score (``sort``, ``collapse``,
#: ``search_after``), rescores already (``rescore``), cuts by the phase-1 score (``min_score``,
#: ``terminate_after``) or counts the matches (``aggs``: phase 1 matches fewer documents).
PHASEABLE_KEYS = frozenset(
    {
        "query",
        "size",
        "from",
        "_source",
        "stored_fields",
        "docvalue_fields",
        "fields",
        "script_fields",
        "highlight",
        "post_filter",
        "suggest",
        "track_total_hits",
        "track_scores",
        "timeout",
        "explain",
        "version",
        "seq_no_primary_term",
        "stats",
        "profile",
    }
)
# URL parameters of a search that change the same things (``filter_path`` may drop the hits that say whether
# phase 1 fell short)
_BLOCKING_PARAMS = frozenset({"scroll", "sort", "q", "search_after", "terminate_after", "min_score", "filter_path"})


@dataclass(frozen=True)
class TwoPhase:
    """Two-phase sparse search (the scheme of OpenSearch's neural-sparse ``two_phase`` processor, done client-side
    so it works on both engines and every version).

    Phase 1 searches with the query's heaviest terms only: those weighing at least ``prune_ratio`` times the
    heaviest one (at most ``max_phase1_terms``). Phase 2 is a ``rescore`` of the top ``window`` hits (per shard)
    with the full query vector, ``query_weight`` 0: every hit returned scores the exact dot product with all
    query terms, as exhaustive search would; a document that matches only the light terms and is outside
    phase 1's window is the one thing it can miss. When phase 1 keeps every term, no rescore is sent.

    Args:
        prune_ratio: in (0, 1]; phase 1 keeps terms with ``weight >= prune_ratio * max weight``.
        max_phase1_terms: at most this many phase-1 terms (``None``: no cap beyond the ratio).
        window_factor: >= 1; phase 2 rescores ``ceil(k * window_factor)`` hits per shard (at least ``k``).
        max_window: never rescore more than this per shard (``index.max_rescore_window``, default 10,000).
    """

    prune_ratio: float = 0.4
    max_phase1_terms: Optional[int] = None
    window_factor: float = 5.0
    max_window: int = 10_000

    def __post_init__(self) -> None:
        if not isinstance(self.prune_ratio, (int, float)) or not 0 < self.prune_ratio <= 1:
            raise ValueError(f"prune_ratio must be in (0, 1], got {self.prune_ratio!r}")
        if self.max_phase1_terms is not None and (
            not isinstance(self.max_phase1_terms, int) or self.max_phase1_terms < 1
        ):
            raise ValueError(f"max_phase1_terms must be a positive integer or None, got {self.max_phase1_terms!r}")
        if not isinstance(self.window_factor, (int, float)) or not self.window_factor >= 1:
            raise ValueError(f"window_factor must be a number >= 1, got {self.window_factor!r}")
        if not isinstance(self.max_window, int) or self.max_window < 1:
            raise ValueError(f"max_window must be a positive integer, got {self.max_window!r}")

    @classmethod
    def coerce(cls, value: TwoPhaseLike) -> Optional[TwoPhase]:
        """``None``/``False``: off; ``True``: the defaults; a mapping: its keyword arguments; a ``TwoPhase``: itself."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, TwoPhase):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"prune_ratio", "max_phase1_terms", "window_factor", "max_window"})
            if unknown:
                raise ValueError(
                    f"unknown two_phase option(s) {unknown}; allowed: prune_ratio, max_phase1_terms, "
                    "window_factor, max_window"
                )
            return cls(**dict(value))
        raise ValueError(f"two_phase must be None, a bool, a TwoPhase or a dict of its options, got {value!r}")

    def phase1(self, features: Mapping[str, float]) -> dict[str, float]:
        """The heaviest terms of ``features`` (ordered by weight, descending, as given by ``select_terms``)."""
        if not features:
            return {}
        heaviest = max(features.values())
        ranked = sorted(features.items(), key=lambda kw: (-kw[1], kw[0]))
        kept = [(k, w) for k, w in ranked if w >= self.prune_ratio * heaviest]
        if self.max_phase1_terms is not None:
            kept = kept[: self.max_phase1_terms]
        return dict(kept)

    def window(self, k: int) -> int:
        """Hits per shard that phase 2 rescores for a top-``k`` search."""
        return min(self.max_window, max(k, math.ceil(k * self.window_factor)))

    def refusal(self, body: Mapping[str, Any], params: Optional[Mapping[str, str]] = None) -> Optional[str]:
        """Why ``body`` (with the URL ``params`` of its request) cannot be searched in two phases with the hits
        that exhaustive scoring would return, or ``None`` when it can (see :data:`PHASEABLE_KEYS`)."""
        extra = sorted(set(body) - PHASEABLE_KEYS)
        if extra:
            return f"the body has {extra}"
        blocked = sorted(set(params or {}) & _BLOCKING_PARAMS)
        if blocked:
            return f"the request has the URL parameter(s) {blocked}"
        page = self.page(body, params)
        if page is None:
            return "from/size are not non-negative integers"
        start, size = page
        if size == 0:
            return "size is 0"
        if start + size > self.max_window:
            return f"from + size = {start + size} is beyond the rescore window limit {self.max_window}"
        return None

    @staticmethod
    def page(body: Mapping[str, Any], params: Optional[Mapping[str, str]] = None) -> Optional[tuple[int, int]]:
        """``(from, size)`` of a search (URL parameters win over the body, as on both engines; default ``(0,
        10)``), or ``None`` when one is not a non-negative integer."""
        out = []
        for key, default in (("from", 0), ("size", 10)):
            value: Any = (params or {}).get(key, body.get(key, default))
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                return None
            out.append(value)
        return out[0], out[1]

    @staticmethod
    def fell_short(answer: Any, size: int) -> bool:
        """Whether a two-phase search's ``answer`` (one ``_search`` response) holds fewer than ``size`` hits: its
        phase 1 matched too few documents (those holding only the lighter query terms would be missing), so the
        search should run again exhaustively. An answer without hits to count (an error) counts as fallen short."""
        hits = answer.get("hits") if isinstance(answer, Mapping) else None
        listed = hits.get("hits") if isinstance(hits, Mapping) else None
        return not isinstance(listed, list) or len(listed) < size

    @staticmethod
    def rescore(full_clause: Mapping[str, Any], window: int) -> dict:
        """The ``rescore`` section: the window's hits get the full clause's score alone (``query_weight`` 0)."""
        return {
            "window_size": window,
            "query": {"rescore_query": dict(full_clause), "query_weight": 0.0, "rescore_query_weight": 1.0},
        }
