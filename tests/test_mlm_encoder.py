"""The masked-LM SPLADE peer (BERT-style, no echo), selected by the model's config, with the same interface."""

from __future__ import annotations

import json

import pytest
import torch

from echo_splade.encoder import BUILTIN_MODELS, EchoSpladeEncoder, EncoderSpec, MlmSpladeEncoder


@pytest.fixture(scope="module")
def splade_tiny():
    return EchoSpladeEncoder.from_pretrained("splade-tiny", device="cpu", max_length=64)


def dense(vec, vocab):
    out = torch.zeros(vocab)
    out[list(vec.indices)] = torch.tensor(vec.values)
    return out


def test_selected_by_the_model_config(splade_tiny):
    assert isinstance(splade_tiny, MlmSpladeEncoder)
    assert splade_tiny.vocab_size == 30522 and splade_tiny.echo is False
    assert splade_tiny.templates["query"].build([7, 8]).input_ids == [101, 7, 8, 102]  # [CLS] text [SEP]


def test_vectors_are_splade_over_every_position(splade_tiny):
    """log(1 + relu(MLM logits)) max-pooled over [CLS] text [SEP], the excluded tokens zeroed."""
    text = "What causes heart disease?"
    ids = splade_tiny.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        logits = splade_tiny.model(**ids).logits[0]  # [seq, vocab]
    expected = torch.log1p(torch.relu(logits)).max(dim=0).values.masked_fill(splade_tiny.excluded, 0.0)
    [vec] = splade_tiny.encode_queries([text])
    torch.testing.assert_close(dense(vec, splade_tiny.vocab_size), expected, atol=1e-5, rtol=1e-5)
    top = [t for t, _ in sorted(splade_tiny.tokens(vec).items(), key=lambda kv: -kv[1])[:6]]
    assert {"heart", "disease"} <= set(top)
    assert not {"?", "[CLS]", "[SEP]"} & set(splade_tiny.tokens(vec))


def test_long_texts_are_windowed_and_batches_agree(splade_tiny):
    long_text = " ".join(f"topic{i} alpha beta" for i in range(40))  # > 64 tokens
    windows = splade_tiny.prepare([long_text])
    assert len(windows) > 1 and all(len(w.input_ids) <= 64 for _, w in windows)
    [together] = splade_tiny.encode_documents([long_text])
    parts = [splade_tiny.forward_inputs([w], [0], 1)[0] for _, w in windows]
    torch.testing.assert_close(
        dense(together, splade_tiny.vocab_size), torch.stack(parts).max(dim=0).values, atol=1e-5, rtol=1e-5
    )
    texts = ["short one", long_text, "another short text about glaciers"]
    batch = splade_tiny.encode_documents(texts)
    for text, vec in zip(texts, batch):
        [alone] = splade_tiny.encode_documents([text])
        torch.testing.assert_close(dense(vec, 30522), dense(alone, 30522), atol=1e-5, rtol=1e-5)


def test_builtin_peer_loads_and_round_trips(tmp_path):
    assert "echo-splade-bert-tiny" in BUILTIN_MODELS
    assert (BUILTIN_MODELS["echo-splade-bert-tiny"] / "README.md").is_file()  # the model card
    encoder = EchoSpladeEncoder.from_pretrained("echo-splade-bert-tiny", device="cpu")
    assert isinstance(encoder, MlmSpladeEncoder)
    assert encoder.source == "echo-splade-bert-tiny" and encoder.model_id == "splade-tiny"
    assert encoder.max_length == 512 and encoder.exclude == ["special", "whitespace", "punctuation"]
    encoder.save_pretrained(tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / "echo_splade.json").read_text())["model_id"] == "splade-tiny"
    again = EchoSpladeEncoder.from_pretrained(tmp_path / "copy")
    assert isinstance(again, MlmSpladeEncoder) and again.model_rev == encoder.model_rev
    for loaded, name in ((encoder, "echo-splade-bert-tiny"), (again, tmp_path / "copy")):  # weights-free, the same
        spec = EncoderSpec.resolve(name)
        assert spec.masked_lm and (spec.model_rev, spec.config) == (loaded.model_rev, loaded.config)
    with pytest.raises(ValueError, match="exceeds the model's 512 positions"):
        EchoSpladeEncoder.from_pretrained("splade-tiny", max_length=1024)
    with pytest.raises(ValueError, match="normalize must be 'none'"):
        EchoSpladeEncoder.from_pretrained("splade-tiny", normalize="log_softmax")
