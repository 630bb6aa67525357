from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional, Protocol, runtime_checkable

__all__ = ["EncoderUnavailable", "QueryEncoder", "load_query_encoder"]

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


def load_query_encoder(name: str, device: Optional[str] = None, **options: Any) -> QueryEncoder:
    """The in-process encoder ``name`` (a built-in short name or a model folder), loaded once; ``options``: further
    ``from_pretrained`` options (e.g. ``INT8_QUERY_OPTIONS``, ``compile=True``)."""
    from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

    logger.info("loading query encoder %s", name)
    encoder: QueryEncoder = EchoSpladeEncoder.from_pretrained(name, device=device, **options)
    return encoder
