"""int8 quantization of an encoder's backbone for CPU inference (an option; fp32 is the reference)."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal, get_args

import torch

from ._fused_projections import FusedProjections
from ._int8_linear import Int8Linear, concatenated
from ._projection_slice import ProjectionSlice
from ._smooth_quant import SMOOTH_ALPHA

logger = logging.getLogger(__name__)

__all__ = [
    "INT8_DOCUMENT_OPTIONS",
    "INT8_QUERY_OPTIONS",
    "QUANTIZE_MODES",
    "Quantize",
    "check_quantizable",
    "check_quantize_mode",
    "fuse_projections",
    "quantize_backbone",
]

#: ``"int8"``: the backbone's ``nn.Linear`` layers run with int8 weights (one scale per tensor) and int8
#: activations with one scale per call (``torch.ao.quantization.quantize_dynamic``): far from fp32 for the built-in
#: model (a few "attention sink" tokens carry activations up to ~1,900x the median token's, README "Measured").
#: ``"int8-token"``: :class:`Int8Linear`: int8 weights with one scale per output channel and activations with one
#: scale per token (q/k/v and gate/up fused into one layer each: the same numbers, fewer and bigger matmuls).
#: Both: the LM head (tied to the input embeddings), embeddings and norms stay fp32.
#: ``"int8-token-head"``: ``"int8-token"`` plus an int8 per-token COPY of the LM head for the SPLADE head (the
#: embeddings keep the fp32 weight): the head reads 4x fewer bytes per query.
Quantize = Literal["int8", "int8-token", "int8-token-head"]
QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)

#: ``from_pretrained`` options of the long-running commands' ``--int8`` (``ui``, ``proxy``, ``serve``): the
#: per-token int8 backbone and LM-head copy after a SmoothQuant migration (alpha :data:`SMOOTH_ALPHA`). Chosen on
#: dev data: NFCorpus dev (100 queries) nDCG@10 within 0.005 of fp32, query cosine mean 0.99 (README "Measured").
INT8_QUERY_OPTIONS: dict[str, Any] = {"quantize": "int8-token-head", "smooth": SMOOTH_ALPHA}

#: ``from_pretrained`` options of ``echo-splade ingest --int8``: the per-token int8 backbone after the same
#: SmoothQuant migration, the LM head kept in fp32 (its int8 copy moved document vectors too far: on 48 NFCorpus
#: dev-pool documents cosine vs fp32 mean / min 0.9854 / 0.9709 with it, 0.9893 / 0.9798 without; README "Measured").
INT8_DOCUMENT_OPTIONS: dict[str, Any] = {"quantize": "int8-token", "smooth": SMOOTH_ALPHA}

#: Projections that read the same input in the supported decoders (Llama, Mistral, Qwen2 families).
FUSED_GROUPS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def fuse_projections(backbone: torch.nn.Module, int8: bool) -> int:
    """Replace each group of :data:`FUSED_GROUPS` (plain ``nn.Linear`` layers of one module) by one fused layer,
    in place: an :class:`Int8Linear` when ``int8`` (outputs bit for bit those of separate ``Int8Linear`` layers),
    else an ``nn.Linear`` (the same up to float summation order). Returns how many layers were fused away."""
    fused = 0
    for module in list(backbone.modules()):
        for names in FUSED_GROUPS:
            layers = [getattr(module, name, None) for name in names]
            if not all(type(layer) is torch.nn.Linear for layer in layers):
                continue
            linears: list[torch.nn.Linear] = layers  # type: ignore[assignment]
            if len({layer.in_features for layer in linears}) != 1:
                continue
            one = Int8Linear.fused(linears) if int8 else concatenated(linears)
            group = FusedProjections(one, [layer.out_features for layer in linears])
            for index, name in enumerate(names):
                setattr(module, name, ProjectionSlice(group, index))
            fused += len(names)
    return fused


def check_quantize_mode(mode: object) -> None:
    """Raises ``ValueError`` naming the allowed modes unless ``mode`` is one of :data:`QUANTIZE_MODES`."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)} or None, got {mode!r}")


def check_quantizable(backbone: torch.nn.Module, mode: object) -> None:
    """Raises ``ValueError`` unless ``mode`` is known and ``backbone`` is on the CPU (int8 kernels are CPU
    kernels): checked before anything changes the model."""
    check_quantize_mode(mode)
    devices = {p.device.type for p in backbone.parameters()}
    if devices != {"cpu"}:
        raise ValueError(
            f"quantize={mode!r} runs on the CPU only; the model is on {sorted(devices)} (use device='cpu')"
        )


def quantize_backbone(backbone: torch.nn.Module, mode: str) -> int:
    """Quantize ``backbone``'s ``nn.Linear`` layers in place; returns how many were replaced.

    Only the backbone: the LM head is tied to the input embeddings in the supported models (``"int8-token-head"``
    quantizes a copy of it: :meth:`EchoSpladeEncoder.quantize`).

    Raises:
        ValueError: ``mode`` is not one of :data:`QUANTIZE_MODES`, or the backbone is not on the CPU
            (dynamic int8 kernels are CPU kernels).
    """
    check_quantizable(backbone, mode)
    linear = sum(1 for m in backbone.modules() if type(m) is torch.nn.Linear)
    if mode in ("int8-token", "int8-token-head"):
        fused = fuse_projections(backbone, int8=True)
        names = [name for name, m in backbone.named_modules() if type(m) is torch.nn.Linear]
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name)
            setattr(parent, child, Int8Linear(getattr(parent, child)))
        logger.info(
            "replaced %d linear layers of the backbone by Int8Linear (per-token int8; %d of them fused)", linear, fused
        )
        return linear
    with warnings.catch_warnings():
        # torch marks the eager quantization API deprecated in favour of torchao; it still works in the locked torch
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(backbone, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    logger.info("quantized %d linear layers of the backbone to int8 (dynamic)", linear)
    return linear
