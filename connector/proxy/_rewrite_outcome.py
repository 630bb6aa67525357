from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Optional

from echo_splade.connector import TwoPhase

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
        """Whether a two-phase search in the cluster's ``answer`` (a ``_search`` or ``_msearch`` response) fell
        short (:meth:`TwoPhase.fell_short`), so the exhaustive body should be sent instead."""
        if self.exhaustive is None:
            return False
        answers = [answer] if not self.msearch else answer.get("responses") if isinstance(answer, Mapping) else None
        if not isinstance(answers, list) or len(answers) != len(self.sizes):
            return True
        return any(size is not None and TwoPhase.fell_short(one, size) for size, one in zip(self.sizes, answers))
