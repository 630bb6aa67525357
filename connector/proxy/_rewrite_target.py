from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, Optional

__all__ = ["RewriteTarget", "TargetKind"]

TargetKind = Literal["search", "count", "msearch"]


@dataclasses.dataclass(frozen=True)
class RewriteTarget:
    """A request whose body the proxy may rewrite: ``kind`` on ``alias`` (``None``: ``/_msearch``,
    where each header line names its index); ``params``: the request's URL parameters."""

    kind: TargetKind
    alias: Optional[str]
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
