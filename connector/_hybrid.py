from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional, Union

__all__ = ["Hybrid", "HybridMethod"]

#: The default share of the sparse list in the fusion (chosen on dev data, see :class:`Hybrid`).
DEFAULT_SPARSE_WEIGHT = 0.5
HybridMethod = Literal["rrf", "weighted"]
HYBRID_METHODS = ("rrf", "weighted")


@dataclasses.dataclass(frozen=True)
class Hybrid:
    """How to combine BM25 and the sparse clause.

    ``SparseRetriever.search`` fuses client-side: it fetches the top
    ``candidates`` of a BM25 ``multi_match`` over ``fields`` and of the sparse
    query in one ``_msearch`` (ids and scores; the fused hits' sources follow in one ``_mget``), then

    - ``method="rrf"``: reciprocal-rank fusion,
      ``score = sparse_weight / (rank_constant + rank_sparse) + (1 - sparse_weight) / (rank_constant + rank_bm25)``
      (ranks from 1; a list that misses the document adds nothing);
    - ``method="weighted"`` (default): min-max normalise each list's scores to [0, 1] and
      take ``sparse_weight * sparse + (1 - sparse_weight) * bm25`` (missing -> 0).

    A single request body (``build_query``/``rewrite`` with ``hybrid``) cannot
    fuse ranks or normalise, so there both clauses sit in one ``bool.should``
    boosted by ``sparse_weight`` and ``1 - sparse_weight``: an unnormalised
    weighted sum of the raw scores.

    Defaults: ``weighted``, ``sparse_weight=0.5`` (:data:`DEFAULT_SPARSE_WEIGHT`), ``rank_constant=60`` (for
    ``rrf``; the value of Cormack et al. 2009), ``candidates=100``, ``fields=("title", "text")``. The method and
    the weight were chosen on DEV data only (docs/TRAINING.md, "Choices on dev data only": SciFact train
    queries, NFCorpus dev and a MedQuAD held-out dev set, ``benchmarks/dev_choices.py``): weighted beat rrf
    on all three, and sparse weight 0.5 had the best mean (0.4 within 0.001). Weighted fusion keeps BM25's
    score gaps, which rank fusion throws away.
    """

    method: HybridMethod = "weighted"
    sparse_weight: float = DEFAULT_SPARSE_WEIGHT
    rank_constant: int = 60
    candidates: int = 100
    fields: tuple[str, ...] = ("title", "text")

    def __post_init__(self) -> None:
        if self.method not in HYBRID_METHODS:
            raise ValueError(f"hybrid method must be one of {HYBRID_METHODS}, got {self.method!r}")
        if not (0.0 <= self.sparse_weight <= 1.0) or math.isnan(self.sparse_weight):
            raise ValueError(f"sparse_weight must be within [0, 1], got {self.sparse_weight}")
        if self.rank_constant < 1:
            raise ValueError(f"rank_constant must be >= 1, got {self.rank_constant}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        fields = (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)
        if not fields or not all(isinstance(f, str) and f for f in fields):
            raise ValueError(f"fields must be non-empty field names, got {self.fields!r}")
        object.__setattr__(self, "fields", fields)

    @classmethod
    def coerce(cls, value: Union[None, bool, str, Hybrid, Mapping[str, Any]]) -> Optional[Hybrid]:
        """``None``/``False``/``"none"`` -> no hybrid; ``True`` -> defaults; a method name; a dict of fields."""
        if value is None or value is False or value == "none":
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(method=value)  # type: ignore[arg-type]
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(
                    f"unknown hybrid option(s) {sorted(unknown)}; allowed: {[f.name for f in dataclasses.fields(cls)]}"
                )
            return cls(**value)
        raise ValueError(f"hybrid must be None, True, one of {HYBRID_METHODS}, a dict or a Hybrid, got {value!r}")

    # -- query pieces ------------------------------------------------------
    def bm25_clause(self, text: str) -> dict:
        """The lexical side: ``multi_match`` (plain text, never ``query_string`` syntax)."""
        return {"multi_match": {"query": text, "fields": list(self.fields)}}

    def combine_clauses(self, bm25: Mapping[str, Any], sparse: Mapping[str, Any]) -> dict:
        """One clause scoring ``(1 - w) * bm25 + w * sparse`` on raw scores (single-request hybrid)."""
        return {
            "bool": {
                "should": [
                    {"bool": {"must": [dict(bm25)], "boost": 1.0 - self.sparse_weight}},
                    {"bool": {"must": [dict(sparse)], "boost": self.sparse_weight}},
                ]
            }
        }

    # -- client-side fusion -----------------------------------------------
    def fuse(
        self, bm25: Sequence[tuple[str, float]], sparse: Sequence[tuple[str, float]]
    ) -> list[tuple[str, float, dict]]:
        """Fuse two ranked ``[(doc_id, score), ...]`` lists (best first).

        Returns ``[(doc_id, fused_score, components), ...]`` best first, ties broken
        by doc id so the order is deterministic.
        """
        lists = {"bm25": (bm25, 1.0 - self.sparse_weight), "sparse": (sparse, self.sparse_weight)}
        fused: dict[str, float] = {}
        components: dict[str, dict] = {}
        for name, (hits, weight) in lists.items():
            normalised = self._normalise([s for _, s in hits]) if self.method == "weighted" else []
            for rank, (doc_id, score) in enumerate(hits, start=1):
                if self.method == "rrf":
                    part = weight / (self.rank_constant + rank)
                else:
                    part = weight * normalised[rank - 1]
                fused[doc_id] = fused.get(doc_id, 0.0) + part
                components.setdefault(doc_id, {})[name] = {"score": score, "rank": rank}
        order = sorted(fused, key=lambda d: (-fused[d], d))
        return [(d, fused[d], components[d]) for d in order]

    @staticmethod
    def _normalise(scores: Sequence[float]) -> list[float]:
        if not scores:
            return []
        lo, hi = min(scores), max(scores)
        if hi - lo <= 0:
            return [1.0 for _ in scores]
        return [(s - lo) / (hi - lo) for s in scores]
