"""int8 dynamic quantization of an encoder's backbone for CPU inference (an option; fp32 is the reference)."""

from __future__ import annotations

import logging
import warnings
from typing import Literal, get_args

import torch

logger = logging.getLogger(__name__)

__all__ = ["QUANTIZE_MODES", "Quantize", "quantize_backbone"]

#: ``"int8"``: the backbone's ``nn.Linear`` layers run with int8 weights and per-batch int8 activations
#: (``torch.ao.quantization.quantize_dynamic``); the LM head, embeddings and norms stay fp32.
Quantize = Literal["int8"]
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
    with warnings.catch_warnings():
        # torch marks the eager quantization API deprecated in favour of torchao; it still works in the locked torch
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(backbone, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    logger.info("quantized %d linear layers of the backbone to int8 (dynamic)", linear)
    return linear
