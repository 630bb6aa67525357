from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from echo_splade.mappings import sparse_to_features

from ._query_encoder import Query, QueryEncoder

__all__ = ["TokenQueryEncoder"]


class TokenQueryEncoder(QueryEncoder):
    """``mode="tokens"``: the caller's ``{token: weight}`` is the query (no text, no model)."""

    mode = "tokens"

    def prepare(self, query: Any) -> Query:
        if not isinstance(query, Mapping):
            raise ValueError(f"mode='tokens' takes a {{token: weight}} dict, got {type(query).__name__}")
        if not query:
            raise ValueError("the {token: weight} query is empty")
        for token in query:
            if not isinstance(token, str) or not token:
                raise ValueError(f"token keys must be non-empty strings, got {token!r}")
        return query

    def features(self, query: Query, max_terms: int, top_k: Optional[int], min_weight: float) -> dict[str, float]:
        if not isinstance(query, Mapping):
            raise ValueError(f"mode='tokens' takes a {{token: weight}} dict, got {type(query).__name__}")
        return sparse_to_features(query)  # the one conversion, the same rules as the documents'
