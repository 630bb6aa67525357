from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal, Optional, Union

from echo_splade.connector import DEFAULT_SPARSE_WEIGHT, TwoPhase

__all__ = ["AliasRule", "ProxyMode", "PROXY_MODES"]

ProxyMode = Literal["llm", "inference-free"]
PROXY_MODES = ("llm", "inference-free")


@dataclasses.dataclass(frozen=True)
class AliasRule:
    """How the proxy rewrites ``_search`` / ``_msearch`` / ``_count`` bodies on one alias.

    Args:
        name: the alias (or index) name, exactly as the app's requests spell it.
        mode: ``"llm"`` encodes the query text with the encoder; ``"inference-free"`` weighs the
            query's own tokens by their IDF over the sparse field (no model).
        hybrid: keep the original lexical clause beside the sparse one (one request: a raw
            weighted sum, ``Hybrid.combine_clauses``); ``False``: the sparse clause replaces it.
        sparse_weight: the sparse clause's share of that sum (BM25 gets ``1 - sparse_weight``).
        query_top_k: query terms kept (``None``: as many as the clause limit allows).
        fields: the text fields whose ``match``/``multi_match``/``query_string``-style clauses are
            rewritten (``QueryRewriter``'s rules; glob patterns allowed).
        sparse_field: the index's sparse field.
        model: the encoder (``llm``) or tokenizer (``inference-free``); ``None``: the model recorded in
            the index ``_meta``.
        two_phase: two-phase ``_search`` / ``_msearch`` (``SparseRetriever.rewrite_two_phase``): ``None``
            (the default) is ``TwoPhase()`` for ``llm`` aliases without ``hybrid`` (as ``SparseRetriever.search``)
            and off otherwise; ``True``: ``TwoPhase()``; ``False``: off; a table: ``TwoPhase``'s options
            (``prune_ratio``, ``max_phase1_terms``, ``window_factor``, ``max_window``). Applied only to bodies
            that rank by score alone (``TwoPhase.refusal``); ``_count`` is always exhaustive.
    """

    name: str
    mode: ProxyMode = "llm"
    hybrid: bool = False
    sparse_weight: float = DEFAULT_SPARSE_WEIGHT
    query_top_k: Optional[int] = 64
    fields: tuple[str, ...] = ("text",)
    sparse_field: str = "sparse"
    model: Optional[str] = None
    two_phase: Union[None, bool, TwoPhase] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or any(c in self.name for c in "/,*? "):
            raise ValueError(
                f"alias name must be one index or alias name (no '/', ',', '*', '?', spaces), got {self.name!r}"
            )
        if self.mode not in PROXY_MODES:
            raise ValueError(f"mode of alias {self.name!r} must be one of {PROXY_MODES}, got {self.mode!r}")
        if not isinstance(self.hybrid, bool):
            raise ValueError(f"hybrid of alias {self.name!r} must be true or false, got {self.hybrid!r}")
        weight = self.sparse_weight
        if (
            not isinstance(weight, (int, float))
            or isinstance(weight, bool)
            or math.isnan(weight)
            or not 0 <= weight <= 1
        ):
            raise ValueError(f"sparse_weight of alias {self.name!r} must be a number within [0, 1], got {weight!r}")
        top_k = self.query_top_k
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"query_top_k of alias {self.name!r} must be a positive integer or null, got {top_k!r}")
        fields = (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)
        if not fields or not all(isinstance(f, str) and f.strip() for f in fields):
            raise ValueError(f"fields of alias {self.name!r} must be non-empty field names, got {self.fields!r}")
        object.__setattr__(self, "fields", fields)
        if not isinstance(self.sparse_field, str) or not self.sparse_field or "." in self.sparse_field:
            raise ValueError(
                f"sparse_field of alias {self.name!r} must be a top-level field name, got {self.sparse_field!r}"
            )

        if self.two_phase is not None and not isinstance(self.two_phase, (bool, TwoPhase)):
            if not isinstance(self.two_phase, Mapping):
                raise ValueError(
                    f"two_phase of alias {self.name!r} must be true, false or a table of TwoPhase options, "
                    f"got {self.two_phase!r}"
                )
            try:
                object.__setattr__(self, "two_phase", TwoPhase.coerce(self.two_phase))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"two_phase of alias {self.name!r}: {exc}") from None

    @property
    def plan(self) -> Optional[TwoPhase]:
        """The two-phase plan of this alias's searches (``None``: exhaustive)."""
        if self.two_phase is None:
            return TwoPhase() if self.mode == "llm" and not self.hybrid else None
        return TwoPhase.coerce(self.two_phase)

    @classmethod
    def from_dict(cls, name: str, values: Mapping[str, Any]) -> AliasRule:
        """An alias rule from a config-file table; unknown keys are an error naming the allowed ones."""
        allowed = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for alias {name!r}; allowed: {allowed}")
        return cls(name=name, **dict(values))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["fields"] = list(self.fields)
        return out
