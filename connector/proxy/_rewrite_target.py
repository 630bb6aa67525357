from __future__ import annotations

import dataclasses
from typing import Literal, Optional

__all__ = ["RewriteTarget", "TargetKind"]

TargetKind = Literal["search", "count", "msearch"]


@dataclasses.dataclass(frozen=True)
class RewriteTarget:
    """A request whose body the proxy may rewrite: ``kind`` on ``alias`` (``None``: ``/_msearch``,
    where each header line names its index)."""

    kind: TargetKind
    alias: Optional[str]
