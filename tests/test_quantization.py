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
    with pytest.raises(ValueError, match=r"quantize must be one of \['int8'\] or None, got 'fp8'"):
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
