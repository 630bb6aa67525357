from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Optional

from echo_splade.mappings import feature_to_token

from ._term_contribution import TermContribution
from ._token_label import PieceScheme, token_label

__all__ = ["Explanation"]


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why a hit matched: the expansion terms shared by query and document.

    ``terms`` holds the top ``top_n`` contributions, largest product first;
    ``matched`` counts all shared terms and ``total`` sums all their products
    (the brute-force sparse dot product, before 9-bit rounding).
    """

    terms: tuple[TermContribution, ...]
    matched: int
    total: float

    @classmethod
    def from_weights(
        cls,
        query_features: Mapping[str, float],
        doc_features: Mapping[str, float],
        top_n: Optional[int] = 10,
        texts: Sequence[str] = (),
        scheme: PieceScheme = "bpe",
    ) -> Explanation:
        """Intersect a query's and a document's ``{feature: weight}`` maps.

        Works from the document's stored ``rank_features`` (its ``_source``),
        so explaining a hit costs no extra request. Each term's ``label`` is the token as a
        person reads it (:func:`token_label`: a word piece with the word of ``texts`` it came from).
        """
        if top_n is not None and top_n < 0:
            raise ValueError(f"top_n must be >= 0 or None, got {top_n}")
        shared = [
            TermContribution(feature_to_token(f), f, float(qw), float(doc_features[f]))
            for f, qw in query_features.items()
            if f in doc_features
        ]
        shared.sort(key=lambda t: (-t.product, t.feature))
        total = sum(t.product for t in shared)
        kept = [
            dataclasses.replace(t, label=token_label(t.token, texts, scheme))
            for t in (shared if top_n is None else shared[:top_n])
        ]
        return cls(terms=tuple(kept), matched=len(shared), total=total)

    def to_dict(self) -> dict:
        return {"matched": self.matched, "total": self.total, "terms": [t.to_dict() for t in self.terms]}
