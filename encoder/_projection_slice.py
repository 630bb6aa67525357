"""One projection of a :class:`FusedProjections` (replaces e.g. ``k_proj`` in the model)."""

from __future__ import annotations

import torch

from ._fused_projections import FusedProjections

__all__ = ["ProjectionSlice"]


class ProjectionSlice(torch.nn.Module):
    """Stands where a projection was: ``forward(x)`` is part ``index`` of the shared fused layer's output.

    Args:
        group: the fused layer shared by the slices of one module (e.g. one attention block's q, k and v).
        index: which part this slice returns.
    """

    def __init__(self, group: FusedProjections, index: int) -> None:
        super().__init__()
        self.group = group  # registered under each slice: the same module, so its buffers are stored once
        self.index = int(index)
        self.in_features = group.fused.in_features
        self.out_features = group.sizes[self.index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.group.part(self.index, x)

    def extra_repr(self) -> str:
        return f"part={self.index}, out_features={self.out_features}"
