"""int8 dynamic quantization of the backbone (an option; fp32 stays the reference): what it changes and refuses."""

from __future__ import annotations

import math

import pytest

from echo_splade.encoder import EchoSpladeEncoder


def _cosine(a, b) -> float:
    da, db = a.to_dict(), b.to_dict()
    dot = sum(w * db.get(k, 0.0) for k, w in da.items())
    return dot / math.sqrt(sum(w * w for w in da.values()) * sum(w * w for w in db.values()))


def test_unknown_quantize_mode_is_refused_before_loading():
    with pytest.raises(
        ValueError, match=r"quantize must be one of \['int8', 'int8-token', 'int8-token-head'\] or None, got 'fp8'"
    ):
        EchoSpladeEncoder.from_pretrained("no-such-model", quantize="fp8")


def test_int8_backbone_keeps_model_rev_and_head_and_stays_near_fp32(tiny_model):
    quantized = EchoSpladeEncoder.from_pretrained("tiny-mistral", device="cpu", dtype="float32", quantize="int8")
    assert quantized.quantized == "int8" and tiny_model.quantized is None
    assert quantized.model_rev == tiny_model.model_rev  # a precision choice, like dtype
    assert type(quantized.model.get_output_embeddings()).__name__ == "Linear"  # the LM head keeps fp32
    assert "quantized='int8'" in repr(quantized)
    texts = ["wing lift and drag at supersonic speeds", "boundary layer transition on a flat plate"]
    for a, b in zip(tiny_model.encode_documents(texts, top_k=256), quantized.encode_documents(texts, top_k=256)):
        assert 0.9 < _cosine(a, b) < 1.0  # moved, but near (the built-in model moves far more: README)
    with pytest.raises(ValueError, match="already quantized"):
        quantized.quantize("int8")


def test_int8_linear_gives_each_token_its_own_scale():
    """One token 1,000x larger than the rest (the built-in model has such 'attention sink' tokens): per-token
    scales keep the other tokens' outputs close; one scale per tensor (quantize='int8') zeroes them."""
    import warnings

    import torch

    from echo_splade.encoder import Int8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(2, 8, 64)
    x[0, 0] *= 1000.0
    exact = linear(x)
    int8 = Int8Linear(linear)
    assert "in_features=64, out_features=32, bias=True" in repr(int8)
    error = ((int8(x) - exact).norm(dim=-1) / exact.norm(dim=-1)).max()
    assert error < 0.02
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        per_tensor = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear}, dtype=torch.qint8)
    rest = (per_tensor(x) - exact)[:, 1:].norm(dim=-1) / exact[:, 1:].norm(dim=-1)
    assert rest.median() > 0.5  # the other tokens lost almost everything


def test_int8_token_backbone_stays_near_fp32(tiny_model):
    import copy

    from echo_splade.encoder import Int8Linear, ProjectionSlice

    quantized = copy.deepcopy(tiny_model)
    quantized.quantize("int8-token")
    assert quantized.quantized == "int8-token" and quantized.model_rev == tiny_model.model_rev
    assert not any(type(m).__name__ == "Linear" for m in quantized.backbone.modules())
    layer = quantized.backbone.layers[0]
    assert isinstance(layer.self_attn.o_proj, Int8Linear) and isinstance(layer.mlp.down_proj, Int8Linear)
    assert isinstance(layer.self_attn.k_proj, ProjectionSlice)  # q/k/v and gate/up: one fused Int8Linear each
    assert isinstance(layer.mlp.up_proj.group.fused, Int8Linear)
    assert type(quantized.model.get_output_embeddings()).__name__ == "Linear"  # the LM head keeps fp32
    texts = ["wing lift and drag at supersonic speeds", "boundary layer transition on a flat plate"]
    for a, b in zip(tiny_model.encode_documents(texts, top_k=256), quantized.encode_documents(texts, top_k=256)):
        assert 0.98 < _cosine(a, b) < 1.0


def test_fused_int8_linear_equals_the_separate_layers_bit_for_bit():
    """q/k/v (and gate/up) read the same input: one Int8Linear over their concatenated weights gives each
    layer's exact output, since weight scales are per output channel and activation scales per token."""
    import torch

    from echo_splade.encoder import FusedProjections, Int8Linear, ProjectionSlice

    torch.manual_seed(0)
    layers = [torch.nn.Linear(48, n, bias=b) for n, b in ((48, False), (16, True), (16, False))]
    x = torch.randn(1, 7, 48)
    x[0, 0] *= 500.0  # an attention-sink-like token
    fused = Int8Linear.fused(layers)
    assert fused.out_features == 80
    separate = [Int8Linear(layer)(x) for layer in layers]
    assert all(torch.equal(a, b) for a, b in zip(fused(x).split([48, 16, 16], dim=-1), separate))
    group = FusedProjections(fused, [48, 16, 16])
    slices = [ProjectionSlice(group, i) for i in range(3)]
    assert all(torch.equal(s(x), ref) for s, ref in zip(slices, separate))  # computed once, handed out per part
    assert group._input is None  # nothing held after the last part
    y = x.clone()
    assert torch.equal(slices[1](y), Int8Linear(layers[1])(y))  # another tensor: recomputed, never stale
    assert torch.equal(slices[1](x), separate[1])
    with pytest.raises(ValueError, match=r"same input size, got in_features \[16, 48\]"):
        Int8Linear.fused([layers[0], torch.nn.Linear(16, 4)])


def test_int8_token_head_quantizes_a_copy_of_the_lm_head(tiny_model):
    import copy

    from echo_splade.encoder import Int8Linear

    quantized = copy.deepcopy(tiny_model)
    quantized.quantize("int8-token-head")
    assert isinstance(quantized.head_override, Int8Linear) and tiny_model.head_override is None
    head = quantized.model.get_output_embeddings()
    assert type(head).__name__ == "Linear" and head.weight.dtype.is_floating_point  # the model's own head: fp32
    assert quantized.vocab_size == tiny_model.vocab_size
    texts = ["wing lift and drag at supersonic speeds", "boundary layer transition on a flat plate"]
    for a, b in zip(tiny_model.encode_queries(texts, top_k=256), quantized.encode_queries(texts, top_k=256)):
        assert 0.97 < _cosine(a, b) < 1.0
    with pytest.raises(ValueError, match="already quantized"):
        quantized.quantize("int8-token")
    quantized.quantized, quantized.compiled = None, True  # what compile() records (compiling takes a minute)
    with pytest.raises(ValueError, match="quantize before compile"):
        quantized.quantize("int8-token")
