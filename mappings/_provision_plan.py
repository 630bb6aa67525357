from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

__all__ = ["ProvisionPlan", "PlannedRequest"]


@dataclasses.dataclass(frozen=True)
class PlannedRequest:
    """One REST call of a plan: exactly what is sent."""

    method: str
    path: str
    body: Optional[dict] = None
    params: Optional[dict] = None

    def render(self) -> str:
        """``METHOD /path?params`` and the pretty-printed JSON body (what ``--dry-run`` prints)."""
        query = "&".join(f"{k}={v}" for k, v in (self.params or {}).items())
        line = f"{self.method} {self.path}" + (f"?{query}" if query else "")
        if self.body is None:
            return line
        return line + "\n" + json.dumps(self.body, indent=2, ensure_ascii=False)


@dataclasses.dataclass
class ProvisionPlan:
    """What :func:`provision` does (or did) for one alias.

    Attributes:
        alias: the alias name.
        target: the physical index documents of this spec go to (a new version when one is created).
        live: the physical index the alias points at once the plan has run.
        actions: short labels in order: ``create``, ``alias``, ``swap``, ``update-meta``, ``drop``;
            empty for a no-op.
        requests: the REST calls, in order.
        analyzer: the analyzer of the BM25 fields of ``target``.
        sparse_type: the type of the sparse field of ``target`` (``rank_features`` or ``sparse_vector``;
            ``None`` when an existing index has no sparse field).
        dropped: physical indices the plan deletes.
        executed: whether the requests were sent.
    """

    alias: str
    target: str
    live: str
    analyzer: str
    sparse_type: Optional[str] = None
    actions: list[str] = dataclasses.field(default_factory=list)
    requests: list[PlannedRequest] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)
    executed: bool = False

    @property
    def noop(self) -> bool:
        return not self.requests

    def add(self, action: str, method: str, path: str, body: Any = None, params: Optional[dict] = None) -> None:
        if action not in self.actions:
            self.actions.append(action)
        self.requests.append(PlannedRequest(method, path, body, params))

    def summary(self) -> str:
        """One human-readable line."""
        if self.noop:
            return f"no-op: alias {self.alias} -> {self.live} already matches the spec"
        parts = []
        if "create" in self.actions:
            parts.append(f"created {self.target} (analyzer {self.analyzer}, sparse field {self.sparse_type})")
        if "alias" in self.actions or "swap" in self.actions or "create" in self.actions and self.live == self.target:
            parts.append(f"alias {self.alias} -> {self.live}")
        elif "create" in self.actions:
            parts.append(f"alias {self.alias} still -> {self.live}")
        if "update-meta" in self.actions:
            parts.append(f"recorded the model in {self.target} _meta")
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped))
        text = "; ".join(parts)
        return text if self.executed else f"planned: {text}"
