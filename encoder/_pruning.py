"""Pruning of a sparse vector's weights: top-k and weight mass (torch-free; the stored-vector twin of
``to_sparse_vector``, which prunes the model's ``[vocab]`` tensor the same way)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Optional, TypeVar

__all__ = ["check_mass", "prune_weights"]

K = TypeVar("K", bound=Hashable)


def check_mass(mass: Optional[float]) -> None:
    """``ValueError`` unless ``mass`` is None or a share in (0, 1]."""
    if mass is not None and (isinstance(mass, bool) or not isinstance(mass, (int, float)) or not 0 < mass <= 1):
        raise ValueError(f"mass must be a share in (0, 1] or None, got {mass!r}")


def prune_weights(
    weights: Mapping[K, float],
    top_k: Optional[int] = None,
    min_weight: Optional[float] = None,
    mass: Optional[float] = None,
) -> dict[K, float]:
    """The weights > 0 that survive every given rule, in the input's order.

    Args:
        weights: ``{key: weight}`` (token ids or feature names).
        top_k: keep at most the ``top_k`` largest weights.
        min_weight: drop weights below this.
        mass: keep the largest weights until they hold this share of the total weight (of the weights > 0 and
            >= ``min_weight``); the weight that crosses the share is kept. ``1.0`` keeps all.

    Ties are broken by key order of the sort (largest weight first, then the input's order), so a result is
    deterministic.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 or None, got {top_k!r}")
    if min_weight is not None and not min_weight >= 0:
        raise ValueError(f"min_weight must be >= 0 or None, got {min_weight!r}")
    check_mass(mass)
    floor = 0.0 if min_weight is None else min_weight
    kept = [(k, w) for k, w in weights.items() if w > 0 and w >= floor]
    if not math.isfinite(sum(w for _, w in kept)):
        raise ValueError("weights must be finite")
    ranked = sorted(range(len(kept)), key=lambda i: -kept[i][1])
    count = len(ranked)
    if mass is not None and mass < 1 and count:
        target = mass * sum(w for _, w in kept)
        total = 0.0
        for n, i in enumerate(ranked, start=1):
            total += kept[i][1]
            if total >= target:
                count = n
                break
    if top_k is not None:
        count = min(count, top_k)
    chosen = set(ranked[:count])
    return {k: w for i, (k, w) in enumerate(kept) if i in chosen}
