from __future__ import annotations

import dataclasses

__all__ = ["RewriteOutcome"]


@dataclasses.dataclass(frozen=True)
class RewriteOutcome:
    """The body to send and what happened (``status``: the ``X-Echo-Splade-Rewrite`` response header)."""

    body: bytes
    status: str
    rewritten: int = 0
