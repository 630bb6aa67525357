"""int8 dynamic quantization of an encoder's backbone for CPU inference (an option; fp32 is the reference)."""

from __future__ import annotations

import logging
import warnings
from typing import Literal, get_args

import torch

from ._int8_linear import Int8Linear

logger = logging.getLogger(__name__)

__all__ = ["QUANTIZE_MODES", "Quantize", "quantize_backbone"]

#: ``"int8"``: the backbone's ``nn.Linear`` layers run with int8 weights (one scale per tensor) and int8
#: activations with one scale per call (``torch.ao.quantization.quantize_dynamic``): far from fp32 for the built-in
#: model (a few "attention sink" tokens carry activations up to ~1,900x the median token's, README "Measured").
#: ``"int8-token"``: :class:`Int8Linear`: int8 weights with one scale per output channel and activations with one
#: scale per token. Both: the LM head (tied to the input embeddings), embeddings and norms stay fp32.
Quantize = Literal["int8", "int8-token"]
QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)


def quantize_backbone(backbone: torch.nn.Module, mode: str) -> int:
    """Quantize ``backbone``'s ``nn.Linear`` layers in place; returns how many were replaced.

    Only the backbone: the LM head is tied to the input embeddings in the supported models and decides the
    vocabulary weights directly (SPLADE's max over positions of its logits), so it keeps fp32.

    Raises:
        ValueError: ``mode`` is not one of :data:`QUANTIZE_MODES`, or the backbone is not on the CPU
            (dynamic int8 kernels are CPU kernels).
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)} or None, got {mode!r}")
    devices = {p.device.type for p in backbone.parameters()}
    if devices != {"cpu"}:
        raise ValueError(
            f"quantize={mode!r} runs on the CPU only; the model is on {sorted(devices)} (use device='cpu')"
        )
    linear = sum(1 for m in backbone.modules() if type(m) is torch.nn.Linear)
    if mode == "int8-token":
        names = [name for name, m in backbone.named_modules() if type(m) is torch.nn.Linear]
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name)
            setattr(parent, child, Int8Linear(getattr(parent, child)))
        logger.info("replaced %d linear layers of the backbone by Int8Linear (per-token int8)", linear)
        return linear
    with warnings.catch_warnings():
        # torch marks the eager quantization API deprecated in favour of torchao; it still works in the locked torch
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(backbone, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    logger.info("quantized %d linear layers of the backbone to int8 (dynamic)", linear)
    return linear
