"""Several linear layers that read the same input (q/k/v, gate/up), computed as one bigger layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["FusedProjections"]


class FusedProjections(torch.nn.Module):
    """One fused layer standing in for ``len(sizes)`` projections of the same input.

    The model keeps calling its projections one by one (``q_proj(x)``, ``k_proj(x)``, ``v_proj(x)``): each is a
    :class:`ProjectionSlice` of this object. The first call with an input computes the fused layer once and
    keeps the parts; the calls for the other parts with the SAME tensor object return theirs; once every part
    was handed out the cache is dropped (no activations are held between forward passes). A call with another
    tensor, or a part asked for twice, recomputes: never a stale result, only lost speed. (The decoders this
    serves never change the input in place between the calls.) One forward pass at a time per encoder: two threads
    running the same quantized encoder at once could swap parts (no lock: it would break ``torch.compile``'s graph).

    Args:
        fused: a layer whose output is the projections' outputs concatenated (``nn.Linear`` or ``Int8Linear``).
        sizes: the output size of each projection, in order.
    """

    def __init__(self, fused: torch.nn.Module, sizes: Sequence[int]) -> None:
        super().__init__()
        self.fused = fused
        self.sizes = [int(s) for s in sizes]
        self._input: torch.Tensor | None = None
        self._parts: list[torch.Tensor | None] = []

    def part(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The ``index``-th projection of ``x``."""
        if x is not self._input or self._parts[index] is None:
            self._parts = list(self.fused(x).split(self.sizes, dim=-1))
            self._input = x
        out = self._parts[index]
        self._parts[index] = None
        if all(p is None for p in self._parts):
            self._input = None
        if out is None:  # unreachable: set just above
            raise RuntimeError("FusedProjections: part missing")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All projections of ``x`` concatenated."""
        return self.fused(x)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"
