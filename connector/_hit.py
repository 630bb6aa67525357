from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ._explanation import Explanation

__all__ = ["Hit"]


@dataclasses.dataclass
class Hit:
    """One search result.

    ``score`` is the cluster's score for plain sparse/BM25 searches and the fused
    score for client-side hybrid searches; ``components`` then holds each list's
    raw score and rank (``{"bm25": {"score": s, "rank": r}, "sparse": {...}}``).
    ``source`` is the document's ``_source`` without the sparse field.
    """

    id: str
    score: float
    source: dict = dataclasses.field(default_factory=dict)
    explanation: Optional[Explanation] = None
    index: Optional[str] = None
    components: Optional[dict[str, dict[str, Any]]] = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "score": self.score, "index": self.index, "source": self.source}
        if self.components is not None:
            out["components"] = self.components
        if self.explanation is not None:
            out["explanation"] = self.explanation.to_dict()
        return out
