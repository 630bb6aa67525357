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


def test_precision_options_a_model_cannot_run_with_are_refused_from_its_files():
    """``EncoderSpec.check_precision``: what ``from_pretrained`` and an ingest job (``ModelInfo.load``, before
    any encoder actor starts) refuse without loading weights: int8 off the CPU, SmoothQuant and the int8 LM head
    on the masked-LM peer (echo options), an alpha outside [0, 1]."""
    from echo_splade.encoder import INT8_DOCUMENT_OPTIONS, INT8_QUERY_OPTIONS, EncoderSpec
    from echo_splade.ingest import ModelInfo

    echo, peer = EncoderSpec.resolve("echo-splade-smollm2-135m"), EncoderSpec.resolve("splade-tiny")
    for options in (INT8_DOCUMENT_OPTIONS, INT8_QUERY_OPTIONS, {"quantize": "int8", "smooth": None}):
        echo.check_precision(**options, device="cpu")
        echo.check_precision(**options, device=None)  # the device not known yet: not checked
        with pytest.raises(ValueError, match="runs on the CPU only; the encoder would run on 'cuda'"):
            echo.check_precision(**options, device="cuda")
    echo.check_precision(None, None, "cuda")  # fp32 / bf16 anywhere
    with pytest.raises(ValueError, match=r"smooth must be in \[0, 1\], got 1.5"):
        echo.check_precision("int8-token", 1.5, "cpu")
    with pytest.raises(ValueError, match="smooth is a setting of quantize"):
        echo.check_precision(None, 0.7, "cpu")
    peer.check_precision("int8-token", None, "cpu")
    with pytest.raises(ValueError, match="is for echo .* splade-tiny is a masked LM; quantize it without smooth"):
        peer.check_precision(**INT8_DOCUMENT_OPTIONS, device="cpu")
    with pytest.raises(ValueError, match="'int8-token-head' is for echo .* masked LM; use 'int8-token'"):
        peer.check_precision("int8-token-head", None, "cpu")
    with pytest.raises(ValueError, match="masked LM; quantize it without smooth"):
        EchoSpladeEncoder.from_pretrained("splade-tiny", device="cpu", **INT8_DOCUMENT_OPTIONS)
    with pytest.raises(ValueError, match="masked LM; quantize it without smooth"):
        ModelInfo.load("splade-tiny", options=INT8_DOCUMENT_OPTIONS, device="cpu")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        ModelInfo.load("echo-splade-smollm2-135m", options=INT8_DOCUMENT_OPTIONS, device="cuda")
    assert ModelInfo.load("splade-tiny", options={"quantize": "int8-token"}, device="cpu").model == "splade-tiny"


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


def test_smoothing_keeps_the_fp32_function_and_brings_int8_closer_to_it(tiny_model):
    """SmoothQuant migration (``quantize(..., smooth=)``) rescales norms, up_proj/v_proj rows and the weight columns
    so fp32 computes the same vectors; with channel outliers (here: one channel of every RMSNorm made 60x larger,
    as the built-in model's activations have) per-token int8 then loses less than without it."""
    import copy

    import torch

    from echo_splade.encoder import SMOOTH_ALPHA, Int8Linear

    outliers = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for layer in outliers.backbone.layers:
            layer.input_layernorm.weight[3] *= 60.0
            layer.post_attention_layernorm.weight[5] *= 60.0
    texts = ["wing lift and drag at supersonic speeds", "boundary layer transition on a flat plate"]
    reference = outliers.encode_queries(texts, top_k=256)

    smoothed = copy.deepcopy(outliers)
    smoothed._smooth(SMOOTH_ALPHA, ["calibration text about aircraft engines", "another sentence"])
    before = outliers.backbone.layers[0].input_layernorm.weight
    assert not torch.allclose(smoothed.backbone.layers[0].input_layernorm.weight, before)  # it did rescale
    for a, b in zip(reference, smoothed.encode_queries(texts, top_k=256)):
        assert _cosine(a, b) > 0.99999  # the same fp32 function

    plain, migrated = copy.deepcopy(outliers), copy.deepcopy(outliers)
    plain.quantize("int8-token")
    migrated.quantize("int8-token", smooth=SMOOTH_ALPHA)
    assert migrated.quantized == f"int8-token+smooth{SMOOTH_ALPHA:g}" and migrated.model_rev == outliers.model_rev
    assert isinstance(migrated.backbone.layers[0].mlp.down_proj, Int8Linear)
    worse = [_cosine(a, b) for a, b in zip(reference, plain.encode_queries(texts, top_k=256))]
    better = [_cosine(a, b) for a, b in zip(reference, migrated.encode_queries(texts, top_k=256))]
    assert min(better) > max(worse)


def test_smoothing_refuses_what_it_cannot_do(tiny_model):
    import copy

    with pytest.raises(ValueError, match="smooth is a setting of quantize"):
        EchoSpladeEncoder.from_pretrained("no-such-model", smooth=0.7)
    encoder = copy.deepcopy(tiny_model)
    with pytest.raises(ValueError, match=r"smooth must be in \[0, 1\], got 1.5"):
        encoder.quantize("int8-token", smooth=1.5)
    with pytest.raises(ValueError, match="calibration texts are for smooth"):
        encoder.quantize("int8-token", calibration=["a text"])
    with pytest.raises(ValueError, match="at least one calibration text"):
        encoder.quantize("int8-token", smooth=0.5, calibration=[])
    assert encoder.quantized is None  # nothing half-done


def test_int8_query_options_reach_the_encoder_the_connector_loads(backend):
    """``SparseRetriever(encoder_options=...)`` (what ``ui``/``proxy``/``serve --int8 --compile`` pass) loads the
    query encoder with them; the proxy's loader likewise; the CLI flag builds that dict."""
    from click.testing import CliRunner

    from echo_splade.cli._options import cpu_speed_options
    from echo_splade.connector import SparseRetriever
    from echo_splade.connector.proxy import load_query_encoder
    from echo_splade.encoder import INT8_QUERY_OPTIONS, SMOOTH_ALPHA

    assert INT8_QUERY_OPTIONS == {"quantize": "int8-token-head", "smooth": SMOOTH_ALPHA}
    retriever = SparseRetriever(
        backend, "no-such-index-int8", encoder="tiny-mistral", device="cpu", encoder_options=INT8_QUERY_OPTIONS
    )
    assert retriever.encoder.quantized == f"int8-token-head+smooth{SMOOTH_ALPHA:g}"
    assert load_query_encoder("tiny-mistral", device="cpu", quantize="int8-token").quantized == "int8-token"

    import click

    seen = []

    @click.command()
    @cpu_speed_options
    def probe(encoder_options):
        seen.append(encoder_options)

    for flags in ([], ["--int8"], ["--int8", "--compile"]):
        assert CliRunner().invoke(probe, flags).exit_code == 0
    assert seen == [{}, INT8_QUERY_OPTIONS, {**INT8_QUERY_OPTIONS, "compile": True}]


def test_ingest_int8_and_compile_flags_reach_the_ingest_job(monkeypatch, tmp_path):
    """``ingest --int8 --compile [--truncate]`` builds the job with ``INT8_DOCUMENT_OPTIONS`` (fp32 LM head) and
    ``compile``; without the flags the job gets no precision options (fp32, the reference)."""
    from click.testing import CliRunner

    import echo_splade.ingest
    from echo_splade.cli import cli
    from echo_splade.encoder import INT8_DOCUMENT_OPTIONS, SMOOTH_ALPHA

    assert INT8_DOCUMENT_OPTIONS == {"quantize": "int8-token", "smooth": SMOOTH_ALPHA}
    seen = []

    class Probe:
        def __init__(self, *args, **kwargs):
            seen.append(kwargs["encoder_options"])
            raise ValueError("probe: stop before any work")

    monkeypatch.setattr(echo_splade.ingest, "IngestJob", Probe)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "t"}\n')
    base = ["ingest", "--corpus", str(corpus), "--index", "probe"]
    for flags in ([], ["--int8"], ["--int8", "--compile", "--truncate"]):
        result = CliRunner().invoke(cli, base + flags)
        assert result.exit_code != 0 and "probe: stop before any work" in result.output
    assert seen == [{}, INT8_DOCUMENT_OPTIONS, {**INT8_DOCUMENT_OPTIONS, "compile": True, "truncate": True}]


def test_the_ingest_job_names_the_precision_its_actors_encode_with(tmp_path):
    """What ``IngestJob`` records as the index's ``doc_precision``: the dtype the actors default to on their
    device unless one is asked for, and the int8 options."""
    import torch

    from echo_splade.encoder import INT8_DOCUMENT_OPTIONS, SMOOTH_ALPHA
    from echo_splade.ingest import IngestJob

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "t"}\n')
    plain = IngestJob(corpus, "probe")
    assert plain.document_precision("cpu") == {"dtype": "float32", "quantize": None, "smooth": None}
    assert plain.document_precision("cuda") == {"dtype": "bfloat16", "quantize": None, "smooth": None}
    int8 = IngestJob(corpus, "probe", encoder_options={**INT8_DOCUMENT_OPTIONS, "compile": True})
    assert int8.document_precision("cpu") == {"dtype": "float32", "quantize": "int8-token", "smooth": SMOOTH_ALPHA}
    half = IngestJob(corpus, "probe", encoder_options={"dtype": torch.float16})
    assert half.document_precision("cuda")["dtype"] == "float16"


def test_service_config_carries_the_int8_options():
    from echo_splade.integration.service import ServiceConfig

    config = ServiceConfig(model="echo-splade-smollm2-135m", quantize="int8-token-head", smooth=0.7, compile=True)
    assert ServiceConfig(**config.to_dict()) == config  # what each replica is built from
    with pytest.raises(ValueError, match="smooth must be a number given with quantize"):
        ServiceConfig(model="echo-splade-smollm2-135m", smooth=0.7)
    with pytest.raises(ValueError, match="compile must be true or false"):
        ServiceConfig(model="echo-splade-smollm2-135m", compile="yes")
