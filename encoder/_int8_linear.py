"""An ``nn.Linear`` computed in int8: weights per output channel, activations per token (CPU inference)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["Int8Linear"]


class Int8Linear(torch.nn.Module):
    """Drop-in for a trained ``nn.Linear``: int8 weights with one scale per output channel, and each input row
    (token) quantized to int8 with its own scale at run time; the int8 x int8 product accumulates exactly in int32
    (``torch._int_mm``: VNNI/AMX kernels on x86), then is scaled back to float and the bias added.

    Per-token scales are what keep it close to fp32 in a decoder: a few tokens (the first position's "attention
    sink") carry activations hundreds of times larger than the rest, and one scale for the whole tensor (what
    ``torch.ao.quantization.quantize_dynamic`` uses) leaves the other tokens almost no levels.

    Args:
        linear: the layer to replace (its weights are copied and quantized; it is not changed).
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # [out]
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)  # [out, in]
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_t: torch.Tensor
        self.weight_scale: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight_t", quantized.t().contiguous())  # [in, out]: _int_mm's layout
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    @classmethod
    def fused(cls, linears: Sequence[torch.nn.Linear]) -> Int8Linear:
        """One layer for several that read the same input, their outputs concatenated in order.

        Each output channel keeps its own weight scale and each token its own activation scale (a function of
        the input row only), so every slice of the result is bit for bit what the separate layer computes; the
        gain is one activation quantization and one bigger matmul instead of several.

        Raises:
            ValueError: no layers, or layers with different input sizes.
        """
        return cls(concatenated(linears))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0  # [tokens, 1]
        quantized = torch.round(rows / scale).to(torch.int8)  # |value| <= 127 by construction
        out = torch._int_mm(quantized, self.weight_t).float()
        out.mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def concatenated(linears: Sequence[torch.nn.Linear]) -> torch.nn.Linear:
    """One ``nn.Linear`` whose output is the layers' outputs concatenated (a missing bias counts as zeros).

    Raises:
        ValueError: no layers, or layers with different input sizes.
    """
    if not linears:
        raise ValueError("concatenated needs at least one linear layer")
    sizes = {layer.in_features for layer in linears}
    if len(sizes) != 1:
        raise ValueError(f"layers to fuse must read the same input size, got in_features {sorted(sizes)}")
    first = linears[0].weight
    weight = torch.cat([layer.weight.detach() for layer in linears])
    has_bias = any(layer.bias is not None for layer in linears)
    out = torch.nn.Linear(first.shape[1], weight.shape[0], bias=has_bias, device=first.device, dtype=first.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if out.bias is not None:
            out.bias.copy_(
                torch.cat(
                    [
                        layer.bias.detach() if layer.bias is not None else first.new_zeros(layer.out_features)
                        for layer in linears
                    ]
                )
            )
    return out
