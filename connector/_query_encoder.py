"""The interface of the query encoders: how a query becomes ``{feature key: weight}``, one class per mode."""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Optional, Union

from ._index_facts import IndexFacts
from ._query_text import clean_query_text

logger = logging.getLogger(__name__)

__all__ = ["MODES", "Mode", "Query", "QueryEncoder"]

Mode = Literal["llm", "inference-free", "tokens"]
MODES: tuple[Mode, ...] = ("llm", "inference-free", "tokens")
Query = Union[str, Mapping[str, float]]


class QueryEncoder(abc.ABC):
    """Turns one query into feature weights for one mode (``LlmQueryEncoder``,
    ``InferenceFreeQueryEncoder``, ``TokenQueryEncoder``).

    :meth:`prepare` validates a query once (text cleaned, a ``{token: weight}`` dict checked);
    :meth:`features` takes the prepared query. The encoder model and the tokenizer (explanations
    need it in every mode) are resolved here, on first use: given objects, else names, else the
    model recorded in the index ``_meta`` (:class:`IndexFacts`).

    Args:
        facts: what the index tells us.
        encoder: an ``EchoSpladeEncoder``, or a name/path to load one from (``None``: the index's model).
        tokenizer: a HF tokenizer or a name for ``load_tokenizer`` (``None``: the encoder's, else the
            encoder name's, else the index's model).
        adapter, device: passed to ``EchoSpladeEncoder.from_pretrained`` when the encoder is loaded here.
        encoder_options: further ``from_pretrained`` options then (e.g. ``INT8_QUERY_OPTIONS``, ``compile=True``).
    """

    mode: ClassVar[Mode]

    def __init__(
        self,
        facts: IndexFacts,
        encoder: Any = None,
        tokenizer: Any = None,
        adapter: Optional[str] = None,
        device: Optional[str] = None,
        encoder_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.facts = facts
        self.adapter = adapter
        self.device = device
        self.encoder_options: dict[str, Any] = dict(encoder_options or {})
        self._encoder = encoder if not isinstance(encoder, str) else None
        self._encoder_name = encoder if isinstance(encoder, str) else None
        self._tokenizer = tokenizer if not isinstance(tokenizer, str) else None
        self._tokenizer_name = tokenizer if isinstance(tokenizer, str) else None

    # -- the model and tokenizer -------------------------------------------------
    @property
    def encoder(self) -> Any:
        """The encoder model, loaded on first use."""
        if self._encoder is None:
            from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

            name = self._encoder_name or self.facts.model("encoder")
            logger.info("loading encoder %s for queries on %s", name, self.facts.index)
            self._encoder = EchoSpladeEncoder.from_pretrained(
                name, adapter=self.adapter, device=self.device, **self.encoder_options
            )
            self.facts.warn_if_other_model(self._encoder)
        return self._encoder

    @property
    def tokenizer(self) -> Any:
        """The query vocabulary's tokenizer (the encoder's when it is loaded)."""
        if self._tokenizer is None:
            if (
                self._tokenizer_name is None
                and self._encoder is not None
                and getattr(self._encoder, "tokenizer", None) is not None
            ):
                self._tokenizer = self._encoder.tokenizer
            else:
                from echo_splade.encoder import load_tokenizer  # lazy: imports transformers

                name = self._tokenizer_name or self._encoder_name or self.facts.model("tokenizer")
                self._tokenizer = load_tokenizer(name)
        return self._tokenizer

    # -- queries -------------------------------------------------------------------
    def prepare(self, query: Any) -> Query:
        """``query`` validated, once per query: text cleaned (:func:`clean_query_text`) in the text modes."""
        return clean_query_text(query)

    def text(self, query: Query) -> str:
        """The text of a prepared query (for BM25 and explanations).

        Raises:
            ValueError: this mode has no query text.
        """
        if not isinstance(query, str):
            raise ValueError(f"mode={self.mode!r} has no query text")
        return query

    @abc.abstractmethod
    def features(self, query: Query, max_terms: int, top_k: Optional[int], min_weight: float) -> dict[str, float]:
        """``{feature key: weight}`` of a prepared query, before term selection.

        ``max_terms``/``top_k``/``min_weight`` are hints an encoder may prune with early (the
        caller selects the terms afterwards in any case).
        """
