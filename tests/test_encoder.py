"""The Echo-SPLADE encoder on the tiny random Mistral (real 32,000-token Mistral tokenizer)."""

from __future__ import annotations

import json

import pytest
import torch

from echo_splade.encoder import (
    EchoSpladeEncoder,
    EncoderSpec,
    SparseVector,
    VocabBias,
    load_tokenizer,
    naive_splade_weights,
)

TEXTS = [
    "what causes heart disease",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "hi",
    "Aspirin lowers the risk of myocardial infarction in adults with diabetes.",
    "Protein folding 🧬 and α-helices",
]


def dense(vec: SparseVector, vocab: int) -> torch.Tensor:
    out = torch.zeros(vocab)
    out[torch.tensor(vec.indices, dtype=torch.long)] = torch.tensor(vec.values)
    return out


def assert_files_tell(encoder, *args, **kwargs):
    """The weights-free spec of ``from_pretrained(*args, **kwargs)`` names what the loaded ``encoder`` reports."""
    spec = EncoderSpec.resolve(*args, **kwargs)
    assert (spec.source, spec.model_id, spec.model_rev) == (encoder.source, encoder.model_id, encoder.model_rev)
    assert spec.config == encoder.config


def test_echo_input_ids_are_pinned(tiny_model):
    # [BOS] + tok("Document:") + tok(T) + tok("\nDocument again:") + tok(T), Mistral-7B tokenizer ids.
    [(row, doc)] = tiny_model.prepare(["hello world"], "document")
    assert row == 0
    assert doc.input_ids == [1, 14873, 28747, 6312, 28709, 1526, 28705, 13, 7364, 1076, 28747, 6312, 28709, 1526]
    assert (doc.pool_start, doc.pool_end) == (11, 14)
    [(_, query)] = tiny_model.prepare(["hello world"], "query")
    assert query.input_ids == [1, 16580, 28747, 6312, 28709, 1526, 28705, 13, 3294, 1076, 28747, 6312, 28709, 1526]
    assert (query.pool_start, query.pool_end) == (11, 14)


def test_echo_false_is_bos_plus_text(tiny_model):
    encoder = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", echo=False)
    [(_, inp)] = encoder.prepare(["hello world"])
    assert inp.input_ids == [1, 6312, 28709, 1526]
    assert (inp.pool_start, inp.pool_end) == (1, 4)


def test_pools_only_the_second_copy(tiny_model):
    """Same as full logits of the model masked to the second copy; different from pooling everything."""
    text = TEXTS[3]
    [(_, inp)] = tiny_model.prepare([text])
    ids = torch.tensor([inp.input_ids])
    with torch.inference_mode():
        logits = tiny_model.model(input_ids=ids).logits[0]  # [seq, vocab]
    expected = torch.log1p(torch.relu(logits[inp.pool_start : inp.pool_end])).max(dim=0).values
    # the default vocabulary filter (special, whitespace-only, punctuation-only tokens) zeroes its columns
    assert tiny_model.excluded is not None and int(tiny_model.excluded.sum()) > 1000
    expected = expected.masked_fill(tiny_model.excluded, 0.0)
    everything = torch.log1p(torch.relu(logits)).max(dim=0).values
    first_copy_and_template = torch.log1p(torch.relu(logits[: inp.pool_start])).max(dim=0).values

    [vec] = tiny_model.encode_documents([text])
    got = dense(vec, tiny_model.vocab_size)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, everything, atol=1e-3)
    assert not torch.allclose(got, first_copy_and_template, atol=1e-3)
    assert vec.indices == sorted(vec.indices) and min(vec.values) > 0


def test_batch_equals_single_and_naive_reference(tiny_model):
    encoder = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", batch_size=3, chunk_size=7)
    together = encoder.encode_documents(TEXTS)
    alone = [encoder.encode_documents([t])[0] for t in TEXTS]
    vocab = encoder.vocab_size
    for a, b in zip(together, alone):
        torch.testing.assert_close(dense(a, vocab), dense(b, vocab), atol=1e-5, rtol=1e-5)

    # The naive implementation over one padded batch agrees too.
    windows = [w for _, w in encoder.prepare(TEXTS)]
    longest = max(len(w.input_ids) for w in windows)
    ids = torch.zeros(len(windows), longest, dtype=torch.long)
    mask = torch.zeros(len(windows), longest, dtype=torch.long)
    pool = torch.zeros(len(windows), longest, dtype=torch.bool)
    for i, w in enumerate(windows):
        ids[i, : len(w.input_ids)] = torch.tensor(w.input_ids)
        mask[i, : len(w.input_ids)] = 1
        pool[i, w.pool_start : w.pool_end] = True
    with torch.inference_mode():
        naive = naive_splade_weights(encoder.model, ids, mask, pool)
    for i, vec in enumerate(together):
        torch.testing.assert_close(dense(vec, vocab), naive[i].masked_fill(encoder.excluded, 0.0), atol=1e-5, rtol=1e-5)
    # without the filter the encoder is the naive implementation itself
    unfiltered = EchoSpladeEncoder(
        tiny_model.model, tiny_model.tokenizer, "tiny-mistral", batch_size=3, chunk_size=7, exclude=[]
    )
    for i, vec in enumerate(unfiltered.encode_documents(TEXTS)):
        torch.testing.assert_close(dense(vec, vocab), naive[i], atol=1e-5, rtol=1e-5)


def test_long_texts_are_windowed_and_max_pooled(tiny_model):
    encoder = EchoSpladeEncoder(
        tiny_model.model, tiny_model.tokenizer, "tiny-mistral", max_length=40, window_stride=10, batch_size=2
    )
    long_text = " ".join(f"word{i}" for i in range(60))
    text_ids = encoder.tokenizer([long_text], add_special_tokens=False)["input_ids"][0]
    windows = [w for _, w in encoder.prepare([long_text])]
    assert len(windows) > 3
    assert all(len(w.input_ids) <= 40 for w in windows)
    size = encoder.templates["document"].max_text_tokens(40)
    covered = set()
    for w in windows:
        second_copy = w.input_ids[w.pool_start : w.pool_end]
        assert len(second_copy) == size
        start = next(s for s in range(len(text_ids)) if text_ids[s : s + size] == second_copy)
        covered.update(range(start, start + size))
    assert covered == set(range(len(text_ids)))

    with torch.inference_mode():
        per_window = torch.stack([encoder.forward_inputs([w], [0], 1)[0] for w in windows])
    [vec, short] = encoder.encode_documents([long_text, "short one"])  # windows spread over several batches
    torch.testing.assert_close(dense(vec, encoder.vocab_size), per_window.max(dim=0).values, atol=1e-5, rtol=1e-5)

    truncating = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", max_length=40, truncate=True)
    [(_, only)] = truncating.prepare([long_text])
    assert only.input_ids == windows[0].input_ids
    [first] = truncating.encode_documents([long_text])
    torch.testing.assert_close(dense(first, encoder.vocab_size), per_window[0], atol=1e-5, rtol=1e-5)

    with pytest.raises(ValueError, match="window stride"):
        EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", max_length=40, window_stride=99)
    with pytest.raises(ValueError, match="leaves no room"):
        EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", max_length=9)


@pytest.mark.parametrize("bad", ["", "   ", "\n\t "])
def test_empty_text_names_its_position(tiny_model, bad):
    with pytest.raises(ValueError, match="position 2"):
        tiny_model.encode_queries(["fine", "also fine", bad, "fine again"])
    with pytest.raises(ValueError, match="position 0"):
        tiny_model.encode_documents([None])  # type: ignore[list-item]
    assert len(tiny_model.encode_queries(["fine", "also fine", "fine again"])) == 3


def test_pruning(tiny_model):
    [full] = tiny_model.encode_documents([TEXTS[0]])
    [top] = tiny_model.encode_documents([TEXTS[0]], top_k=7)
    [thresholded] = tiny_model.encode_documents([TEXTS[0]], min_weight=0.3)
    weights = full.to_dict()
    assert len(top) == 7
    assert sorted(top.values, reverse=True) == sorted(weights.values(), reverse=True)[:7]
    assert top.indices == sorted(top.indices)
    assert thresholded.to_dict() == {i: w for i, w in weights.items() if w >= 0.3}
    assert 0 < len(thresholded) < len(full)
    tokens = tiny_model.tokens(top)
    assert len(tokens) == 7 and set(tokens.values()) == set(top.values)
    with pytest.raises(ValueError, match="top_k"):
        tiny_model.encode_documents([TEXTS[0]], top_k=0)
    with pytest.raises(ValueError, match="min_weight"):
        tiny_model.encode_documents([TEXTS[0]], min_weight=-1.0)


def test_sparse_vector_validates():
    vec = SparseVector.from_dict({5: 0.5, 2: 1.5, 9: 0.0})
    assert vec.indices == [2, 5] and vec.values == [1.5, 0.5] and len(vec) == 2
    assert vec.to_dict() == {2: 1.5, 5: 0.5}
    assert vec.dot(SparseVector([5, 7], [2.0, 1.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="increasing"):
        SparseVector([3, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="> 0"):
        SparseVector([1], [0.0])
    with pytest.raises(ValueError, match="one value per index"):
        SparseVector([1, 2], [1.0])


def _random_adapter(tiny_model, directory):
    from peft import LoraConfig, get_peft_model

    base = EchoSpladeEncoder.from_pretrained("tiny-mistral").model
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(directory))


def test_adapter_save_load_round_trip(tiny_model, tmp_path):
    _random_adapter(tiny_model, tmp_path / "adapter")
    tuned = EchoSpladeEncoder.from_pretrained(
        "tiny-mistral", adapter=tmp_path / "adapter", max_length=64, top_k=20, query_prefix="Q:"
    )
    assert tuned.has_adapter and tuned.model_rev != tiny_model.model_rev
    assert_files_tell(tuned, "tiny-mistral", adapter=tmp_path / "adapter", max_length=64, top_k=20, query_prefix="Q:")
    [base_vec] = tiny_model.encode_documents([TEXTS[3]], top_k=20)
    [tuned_vec] = tuned.encode_documents([TEXTS[3]])
    assert len(tuned_vec) == 20 and tuned_vec.to_dict() != base_vec.to_dict()

    tuned.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "echo_splade.json").read_text())
    assert saved["model_id"] == "tiny-mistral" and saved["max_length"] == 64 and saved["top_k"] == 20
    assert saved["document_separator"] == "\nDocument again:" and saved["query_prefix"] == "Q:"

    reloaded = EchoSpladeEncoder.from_pretrained(tmp_path / "saved")
    assert reloaded.config == tuned.config
    assert reloaded.model_rev == tuned.model_rev
    assert_files_tell(reloaded, tmp_path / "saved")  # the adapter saved in the folder
    [again] = reloaded.encode_documents([TEXTS[3]])
    assert again.indices == tuned_vec.indices
    assert again.values == pytest.approx(tuned_vec.values, abs=1e-5)
    assert EchoSpladeEncoder(tuned.model, tuned.tokenizer, "tiny-mistral", **tuned.config).config == tuned.config

    overridden = EchoSpladeEncoder.from_pretrained(tmp_path / "saved", max_length=128)
    assert overridden.max_length == 128 and overridden.model_rev != tuned.model_rev
    assert_files_tell(overridden, tmp_path / "saved", max_length=128)
    assert load_tokenizer(tmp_path / "saved").convert_ids_to_tokens(1) == "<s>"
    with pytest.raises(ValueError, match="unknown encoder option"):
        EchoSpladeEncoder.from_pretrained("tiny-mistral", no_such_option=1)


def test_model_rev_is_stable_and_config_sensitive(tiny_model):
    same = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", **tiny_model.config)
    assert same.model_rev == tiny_model.model_rev and len(same.model_rev) == 12
    assert_files_tell(tiny_model, "tiny-mistral")
    other = EchoSpladeEncoder(
        tiny_model.model, tiny_model.tokenizer, "tiny-mistral", **{**tiny_model.config, "document_prefix": "Passage:"}
    )
    assert other.model_rev != tiny_model.model_rev


def test_vocab_bias_calibrates_sparsifies_and_round_trips(tiny_model, tmp_path):
    texts = [TEXTS[0], TEXTS[3], TEXTS[4], "Water boils at 100 degrees Celsius at sea level."]
    raw = tiny_model.max_logits(texts, "document")  # [4, vocab], before bias and activation
    assert raw.shape == (4, tiny_model.vocab_size)
    plain = [dense(v, tiny_model.vocab_size) for v in tiny_model.encode_documents(texts)]
    assert torch.allclose(torch.stack(plain), torch.log1p(torch.relu(raw)), atol=1e-5)

    bias = VocabBias.calibrate(raw, quantile=0.75)  # b_v = -(3rd of 4 values of token v)
    assert torch.equal(bias.bias, -raw.kthvalue(3, dim=0).values)
    biased = EchoSpladeEncoder(
        tiny_model.model, tiny_model.tokenizer, "tiny-mistral", vocab_bias=bias, **tiny_model.config
    )
    vectors = biased.encode_documents(texts)
    expected = torch.log1p(torch.relu(raw + bias.bias.detach()))
    assert torch.allclose(torch.stack([dense(v, biased.vocab_size) for v in vectors]), expected, atol=1e-5)
    # Each token now fires in at most one of the four texts: sparse, IDF-like.
    assert ((expected > 0).sum(dim=0) <= 1).all()
    assert sum(len(v) for v in vectors) < sum(int((p > 0).sum()) for p in plain) / 3
    assert biased.has_adapter and biased.model_rev != tiny_model.model_rev

    biased.save_pretrained(tmp_path / "biased")
    assert (tmp_path / "biased" / "vocab_bias.safetensors").is_file()
    reloaded = EchoSpladeEncoder.from_pretrained(tmp_path / "biased")
    assert torch.equal(reloaded.vocab_bias.bias, bias.bias)
    assert reloaded.model_rev == biased.model_rev
    assert_files_tell(reloaded, tmp_path / "biased")
    assert reloaded.source == str(tmp_path / "biased") and reloaded.model_id == "tiny-mistral"
    assert [v.to_dict() for v in reloaded.encode_documents(texts)] == [v.to_dict() for v in vectors]

    with pytest.raises(ValueError, match="vocab_bias has 7 entries"):
        EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", vocab_bias=VocabBias(7))
    with pytest.raises(ValueError, match="quantile must be in"):
        VocabBias.calibrate(raw, quantile=0.0)


@pytest.mark.parametrize("name, lora_r", [("echo-splade-smollm2-135m", 8), ("echo-splade-smollm2-135m-head", None)])
def test_builtin_trained_encoders_load_and_are_sparse(name, lora_r):
    from echo_splade.encoder import BUILTIN_MODELS, DEFAULT_MODEL

    assert DEFAULT_MODEL == "echo-splade-smollm2-135m"
    assert name in BUILTIN_MODELS and (BUILTIN_MODELS[name] / "echo_splade.json").is_file()
    assert (BUILTIN_MODELS[name] / "README.md").is_file()  # the model card
    encoder = EchoSpladeEncoder.from_pretrained(name, device="cpu")
    assert encoder.model_id == "smollm2-135m" and encoder.normalize == "log_softmax"
    assert encoder.source == name  # what an index records, so the query side loads this encoder back
    assert encoder.vocab_bias is not None and encoder.vocab_size == 49152
    # the default carries a LoRA adapter (merged into the backbone); -head is the bias alone
    assert encoder.has_adapter and (encoder.adapter_config.r if encoder.adapter_config else None) == lora_r
    assert_files_tell(encoder, name)  # LoRA adapter and head bias hashed from their files, as loaded
    [query, doc] = encoder.encode(["what causes heart disease"], "query") + encoder.encode_documents(
        ["Coronary artery disease is the most common cause of heart attacks and cardiac death."]
    )
    for vec in (query, doc):
        assert 3 <= len(vec) <= 300  # sparse without pruning (an untrained head weighs ~all 49,152 tokens)
    q_terms = encoder.tokens(query)
    top = [t.lstrip("Ġ").lower() for t in sorted(q_terms, key=q_terms.get, reverse=True)[:10]]
    assert "heart" in top and "disease" in top, top
    shared = set(query.indices) & set(doc.indices)
    assert {encoder.id_to_token(i).lstrip("Ġ").lower() for i in shared} >= {"heart", "disease"}
    assert load_tokenizer(name).vocab_size == 49152
