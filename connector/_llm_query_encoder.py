from __future__ import annotations

from typing import Any, Optional

from echo_splade.mappings import sparse_to_features

from ._index_facts import IndexFacts
from ._query_encoder import Query, QueryEncoder
from ._query_vector_cache import QueryVectorCache

__all__ = ["LlmQueryEncoder"]


class LlmQueryEncoder(QueryEncoder):
    """``mode="llm"``: the encoder's ``encode_queries`` (echo query template), cached per text.

    Args:
        query_cache: the LRU cache of encoded queries, keyed by ``model_rev``, the exact text and the
            pruning (default: a new ``QueryVectorCache(1024)``).
        others: as for :class:`QueryEncoder`.
    """

    mode = "llm"

    def __init__(self, facts: IndexFacts, *, query_cache: Optional[QueryVectorCache] = None, **kwargs: Any) -> None:
        super().__init__(facts, **kwargs)
        self.query_cache = query_cache if query_cache is not None else QueryVectorCache()

    def features(self, query: Query, max_terms: int, top_k: Optional[int], min_weight: float) -> dict[str, float]:
        text = self.text(query)
        # prune in the encoder: decoding tens of thousands of unused token strings costs more than the search
        top_k = max(1, max_terms) if top_k is None else min(top_k, max(1, max_terms))
        key = (self.encoder.model_rev, text, top_k, min_weight)  # the exact text: the cache never changes results
        weights = self.query_cache.get(key)
        if weights is None:
            vec = self.encoder.encode_queries([text], top_k=top_k, min_weight=min_weight or None)[0]
            weights = self.encoder.tokens(vec)
            self.query_cache.put(key, weights)
        return sparse_to_features(weights)  # the one conversion, the same rules as the documents'
