from __future__ import annotations

import dataclasses

__all__ = ["TermContribution"]


@dataclasses.dataclass(frozen=True)
class TermContribution:
    """One expansion term that matched a document.

    ``product = query_weight * doc_weight`` is this term's share of the sparse
    (``linear`` rank_feature) score. ``doc_weight`` is the weight as sent at
    ingest (``_source``); the cluster scores with it rounded to 9 significant
    bits, so the sum of products matches the hit's score within ~0.4%.
    """

    token: str
    feature: str
    query_weight: float
    doc_weight: float
    #: the token as a person reads it (``"ooking <- cooking"`` for a word piece); default the token itself
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.token)

    @property
    def product(self) -> float:
        return self.query_weight * self.doc_weight

    def to_dict(self) -> dict:
        return {
            "token": self.token,
            "label": self.label,
            "feature": self.feature,
            "query_weight": self.query_weight,
            "doc_weight": self.doc_weight,
            "product": self.product,
        }
