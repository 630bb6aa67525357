from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SparseVector:
    """A sparse vocabulary vector: token ids with their (positive) weights.

    Plain Python lists (no numpy, no torch), so it pickles cheaply across Ray
    workers and serialises to JSON as is.

    Args:
        indices: token ids, strictly increasing.
        values: one weight per id, finite and > 0.
    """

    indices: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(
                f"SparseVector needs one value per index, got {len(self.indices)} indices and {len(self.values)} values"
            )
        previous = -1
        for i, (index, value) in enumerate(zip(self.indices, self.values)):
            if index <= previous:
                raise ValueError(
                    f"SparseVector indices must be strictly increasing token ids >= 0; item {i} is {index}"
                )
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"SparseVector values must be finite and > 0; item {i} (id {index}) is {value}")
            previous = index

    @classmethod
    def from_dict(cls, weights: Mapping[int, float]) -> SparseVector:
        """Build from ``{token_id: weight}``; zero weights are dropped."""
        items = sorted((int(k), float(v)) for k, v in weights.items() if v != 0)
        return cls([k for k, _ in items], [v for _, v in items])

    def to_dict(self) -> dict[int, float]:
        """``{token_id: weight}``."""
        return dict(zip(self.indices, self.values))

    def dot(self, other: SparseVector) -> float:
        """Exact dot product with another sparse vector."""
        small, large = (self, other) if len(self) <= len(other) else (other, self)
        table = large.to_dict()
        return sum(w * table[i] for i, w in zip(small.indices, small.values) if i in table)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return iter(zip(self.indices, self.values))
