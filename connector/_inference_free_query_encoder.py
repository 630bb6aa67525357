from __future__ import annotations

from typing import Optional

from echo_splade.mappings import token_to_feature

from ._query_encoder import Query, QueryEncoder

__all__ = ["InferenceFreeQueryEncoder"]


class InferenceFreeQueryEncoder(QueryEncoder):
    """``mode="inference-free"``: no model runs; the query's tokens (the model's tokenizer) weighted
    by their IDF over the indexed sparse field (``IndexFacts.document_frequencies``)."""

    mode = "inference-free"

    def features(self, query: Query, max_terms: int, top_k: Optional[int], min_weight: float) -> dict[str, float]:
        ids = self.tokenizer(self.text(query), add_special_tokens=False, verbose=False)["input_ids"]
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        features = list(dict.fromkeys(token_to_feature(t) for t in tokens if t))
        return self.facts.document_frequencies.idf(features)
