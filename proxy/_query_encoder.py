from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional, Protocol, runtime_checkable

__all__ = ["EncoderUnavailable", "GuardedEncoder", "QueryEncoder", "load_query_encoder"]

logger = logging.getLogger(__name__)


class EncoderUnavailable(RuntimeError):
    """The query encoder failed (a crashed or unreachable encoder, an out-of-memory error, ...)."""


@runtime_checkable
class QueryEncoder(Protocol):
    """What the proxy needs from a query encoder (the seam for a remote encoder service).

    ``EchoSpladeEncoder`` (in process) has it; a client of a remote service needs the same three
    members: ``model_rev`` (the encoder revision, part of the query-vector cache key),
    ``encode_queries(texts, top_k=, min_weight=)`` returning one vector per text, and ``tokens(vector)``
    turning a vector into ``{token_string: weight}``. ``tokenizer`` is optional (readable labels).
    """

    model_rev: str

    def encode_queries(
        self, texts: Sequence[str], top_k: Optional[int] = None, min_weight: Optional[float] = None
    ) -> list[Any]: ...

    def tokens(self, vector: Any) -> dict[str, float]: ...


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


def load_query_encoder(name: str, device: Optional[str] = None) -> QueryEncoder:
    """The in-process encoder ``name`` (a built-in short name or a model folder), loaded once."""
    from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

    logger.info("loading query encoder %s", name)
    encoder: QueryEncoder = EchoSpladeEncoder.from_pretrained(name, device=device)
    return encoder
