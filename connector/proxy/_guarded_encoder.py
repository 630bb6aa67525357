from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from ._query_encoder import EncoderUnavailable, QueryEncoder

__all__ = ["GuardedEncoder"]


class GuardedEncoder:
    """Wraps a :class:`QueryEncoder`: any failure while encoding becomes :class:`EncoderUnavailable`.

    The proxy then applies its ``--on-encoder-error`` policy (503, or the unmodified query with a
    response header) instead of failing the request some other way.
    """

    def __init__(self, inner: QueryEncoder) -> None:
        if not isinstance(inner, QueryEncoder):
            raise ValueError(
                f"a query encoder needs model_rev, encode_queries and tokens; {type(inner).__name__} lacks some"
            )
        self.inner = inner

    @property
    def model_rev(self) -> str:
        return str(self.inner.model_rev)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.inner, "tokenizer", None)

    def encode_queries(
        self, texts: Sequence[str], top_k: Optional[int] = None, min_weight: Optional[float] = None
    ) -> list[Any]:
        try:
            return self.inner.encode_queries(list(texts), top_k=top_k, min_weight=min_weight)
        except Exception as exc:
            raise EncoderUnavailable(f"query encoder failed: {type(exc).__name__}: {exc}") from exc

    def tokens(self, vector: Any) -> dict[str, float]:
        try:
            return self.inner.tokens(vector)
        except Exception as exc:
            raise EncoderUnavailable(f"query encoder failed: {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"GuardedEncoder({self.inner!r})"
