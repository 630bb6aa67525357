"""SmoothQuant-style scale migration before per-token int8 (an option of :meth:`EchoSpladeEncoder.quantize`).

Per-token activation scales (:class:`Int8Linear`) handle the tokens that are much larger than the others; what
is left of the int8 error comes from **channels** that are much larger than the others in every token: beside
them the other channels of a token get few int8 levels. SmoothQuant (Xiao et al., 2023) divides each input
channel ``j`` of a linear layer by ``s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)`` and multiplies the
weight's column ``j`` by ``s_j``: the same product, with the activation outliers moved into the weights (whose
rows have their own int8 scale). The division is folded into the layer that produces the input, so the model
computes the same function in fp32 (up to rounding) and nothing is added at run time:

- ``q/k/v_proj`` and ``gate/up_proj``: into the RMSNorm weight before them (one ``s`` per group);
- ``down_proj``: into ``up_proj``'s output rows (``act(gate) * up`` is linear in ``up``);
- ``o_proj``: into ``v_proj``'s output rows; with grouped-query attention one value channel feeds several
  heads' ``o_proj`` columns, so those share the scale (the largest of the group's).

``max|X_j|`` comes from calibration texts run through the encoder in fp32 (:data:`CALIBRATION_TEXTS` by default:
generic sentences written for this; no collection's data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_TEXTS",
    "SMOOTH_ALPHA",
    "activation_maxima",
    "check_alpha",
    "smooth_backbone",
    "smoothed_inputs",
]

#: The migration strength chosen on dev data (NFCorpus dev queries, README "Measured"): 0.5 and 0.8 left some
#: queries far from fp32, 0.6-0.7 none; 0.7 the closest on average.
SMOOTH_ALPHA = 0.7

#: Default calibration texts: short and long, questions and statements, several domains (written for this
#: module; the channel outliers of a decoder are a property of the model, seen in any text).
CALIBRATION_TEXTS: tuple[str, ...] = (
    "What are the side effects of taking vitamin D supplements every day?",
    "How does a bloom filter answer membership queries with a fixed amount of memory?",
    "Which rivers flow through more than three countries in Europe?",
    "Does regular exercise lower the risk of heart disease in older adults?",
    "The committee approved the new budget after a long debate about school funding and road repairs.",
    "Stainless steel resists corrosion because chromium forms a thin oxide layer on its surface.",
    "who wrote the first novel printed in english",
    "best way to store fresh herbs so they last longer",
    "Can a landlord raise the rent during a fixed-term lease?",
    "Mutations in the BRCA1 gene increase the lifetime risk of breast and ovarian cancer.",
    "The turbine blades were cooled by air bled from the compressor to survive the gas temperature.",
    "Why do leaves change colour in autumn before they fall?",
    "Error 503 means the server is temporarily unable to handle the request; retry after a delay.",
    "A randomized trial compared two doses of the drug in 412 patients with chronic kidney disease.",
    "Is it ethical for governments to collect location data from phones to track a pandemic?",
    "The recipe needs two cups of flour, one egg, a pinch of salt and warm milk.",
)


def activation_maxima(
    backbone: torch.nn.Module, run: Callable[[], object], names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """``{name: max |input| per input channel}`` (``[in_features]``) of the named linear layers while ``run()``
    runs (the encoder encoding calibration texts)."""
    maxima: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:

        def hook(_module, inputs, _output, name=name):
            rows = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0).float()
            maxima[name] = rows if name not in maxima else torch.maximum(maxima[name], rows)

        handles.append(backbone.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return maxima


#: Per decoder layer, the linear layers whose inputs are measured: one per group that shares an input (q/k/v,
#: gate/up) and the two that read their own (o_proj, down_proj).
_MEASURED = ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj")


def check_alpha(alpha: float) -> None:
    """Raises ``ValueError`` unless ``alpha`` is in [0, 1]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"smooth must be in [0, 1], got {alpha}")


def smoothed_inputs(backbone: torch.nn.Module) -> list[str]:
    """The names of the linear layers whose input maxima :func:`smooth_backbone` needs (for
    :func:`activation_maxima`).

    Raises:
        ValueError: the backbone is not a Llama-family decoder (no ``.layers`` list).
    """
    layers = getattr(backbone, "layers", None)
    if layers is None:
        raise ValueError(f"smooth supports Llama-family decoders (a .layers list); got {type(backbone).__name__}")
    return [f"layers.{index}.{name}" for index in range(len(layers)) for name in _MEASURED]


def _scales(act_max: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    """``s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)`` over the layers' columns (``[in_features]``)."""
    w_max = torch.stack([w.detach().abs().amax(dim=0) for w in weights]).amax(dim=0).float()
    scales = act_max.clamp(min=1e-5).pow(alpha) / w_max.clamp(min=1e-5).pow(1.0 - alpha)
    return scales.clamp(min=1e-5)


def smooth_backbone(backbone: torch.nn.Module, maxima: dict[str, torch.Tensor], alpha: float) -> int:
    """Migrate activation outliers into the weights of a Llama-family backbone, in place (module docstring);
    ``maxima`` from :func:`activation_maxima` for every layer's ``self_attn.q_proj``, ``self_attn.o_proj``,
    ``mlp.gate_proj`` and ``mlp.down_proj``. Returns how many linear layers were rescaled.

    Raises:
        ValueError: ``alpha`` outside [0, 1], a layer without the expected modules, or a missing maximum.
    """
    check_alpha(alpha)
    missing = [name for name in smoothed_inputs(backbone) if name not in maxima]
    if missing:
        raise ValueError(f"cannot smooth: no activation maximum for {missing[:3]} ({len(missing)} missing)")
    layers: Any = backbone.layers  # a decoder's layer list (smoothed_inputs checked it is there)
    changed = 0
    with torch.no_grad():
        for index, layer in enumerate(layers):
            prefix = f"layers.{index}"
            try:
                attn, mlp = layer.self_attn, layer.mlp
                groups = (
                    (layer.input_layernorm, (attn.q_proj, attn.k_proj, attn.v_proj), f"{prefix}.self_attn.q_proj"),
                    (layer.post_attention_layernorm, (mlp.gate_proj, mlp.up_proj), f"{prefix}.mlp.gate_proj"),
                )
            except AttributeError as error:
                raise ValueError(f"cannot smooth {prefix}: {error}") from error
            for norm, linears, name in groups:
                s = _scales(maxima[name], [lin.weight for lin in linears], alpha)
                norm.weight.div_(s.to(norm.weight.dtype))
                for lin in linears:
                    lin.weight.mul_(s.to(lin.weight.dtype))
                changed += len(linears)
            # down_proj: its input is act(gate) * up, linear in up's output rows
            s = _scales(maxima[f"{prefix}.mlp.down_proj"], [mlp.down_proj.weight], alpha)
            mlp.up_proj.weight.div_(s[:, None].to(mlp.up_proj.weight.dtype))
            if mlp.up_proj.bias is not None:
                mlp.up_proj.bias.div_(s.to(mlp.up_proj.bias.dtype))
            mlp.down_proj.weight.mul_(s.to(mlp.down_proj.weight.dtype))
            # o_proj: its input channels are value channels; heads sharing a key/value head share the scale
            heads = attn.config.num_attention_heads
            kv_heads = attn.config.num_key_value_heads
            head_dim = attn.o_proj.in_features // heads
            s = _scales(maxima[f"{prefix}.self_attn.o_proj"], [attn.o_proj.weight], alpha)
            shared = s.view(kv_heads, heads // kv_heads, head_dim).amax(dim=1)  # [kv_heads, head_dim]
            attn.v_proj.weight.div_(shared.reshape(-1)[:, None].to(attn.v_proj.weight.dtype))
            if attn.v_proj.bias is not None:
                attn.v_proj.bias.div_(shared.reshape(-1).to(attn.v_proj.bias.dtype))
            per_head = shared[:, None, :].expand(kv_heads, heads // kv_heads, head_dim).reshape(-1)
            attn.o_proj.weight.mul_(per_head.to(attn.o_proj.weight.dtype))
            changed += 2
    logger.info("smoothed %d linear layers (alpha %.2f)", changed, alpha)
    return changed
