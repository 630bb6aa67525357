from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Optional

__all__ = ["RewriteOutcome"]


@dataclasses.dataclass(frozen=True)
class RewriteOutcome:
    """The body to send and what happened (``status``: the ``X-Echo-Splade-Rewrite`` response header).

    A two-phase body comes with ``exhaustive``, the same searches scored exhaustively, to send instead when
    phase 1 fell short (:meth:`fell_short`); ``sizes`` holds the hits each search asks for: one entry for a
    ``_search``, one per search of an ``_msearch`` (``msearch``; ``None``: that search is not two-phase).
    """

    body: bytes
    status: str
    rewritten: int = 0
    exhaustive: Optional[bytes] = None
    sizes: tuple[Optional[int], ...] = ()
    msearch: bool = False

    def fell_short(self, answer: Any) -> bool:
        """Whether a two-phase search in the cluster's ``answer`` (a ``_search`` or ``_msearch`` response)
        returned fewer hits than it asked for: its phase 1 matched too few documents (documents holding only
        the lighter query terms would be missing), so the exhaustive body should be sent instead. An answer
        without the hits to count (an error) counts as fallen short."""
        if self.exhaustive is None:
            return False
        answers = [answer] if not self.msearch else answer.get("responses") if isinstance(answer, Mapping) else None
        if not isinstance(answers, list) or len(answers) != len(self.sizes):
            return True
        for size, one in zip(self.sizes, answers):
            if size is None:
                continue
            hits = one.get("hits", {}).get("hits") if isinstance(one, Mapping) else None
            if not isinstance(hits, list) or len(hits) < size:
                return True
        return False
