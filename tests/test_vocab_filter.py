"""The vocabulary filter: tokens the SPLADE head never emits (special, whitespace-only, punctuation-only, listed)."""

from __future__ import annotations

import json

import pytest
import torch

from echo_splade.encoder import DEFAULT_EXCLUDE, EchoSpladeEncoder, VocabFilter, load_tokenizer


@pytest.fixture(scope="module")
def mistral_tokenizer():
    return load_tokenizer("tiny-mistral")


def test_filter_validates_its_options():
    with pytest.raises(ValueError, match=r"unknown exclude categor.*'emoji'.*allowed"):
        VocabFilter(["special", "emoji"])
    with pytest.raises(ValueError, match="not a single string"):
        VocabFilter("special")
    with pytest.raises(ValueError, match="non-empty strings"):
        VocabFilter(tokens=[""])
    assert VocabFilter(["punctuation", "special"]).categories == ("special", "punctuation")  # canonical order
    assert VocabFilter([], ["b", "a", "a"]).to_config() == {"exclude": [], "exclude_tokens": ["a", "b"]}
    assert not VocabFilter([]).active and VocabFilter().categories == DEFAULT_EXCLUDE


def test_mask_on_the_mistral_vocabulary(mistral_tokenizer):
    tok = mistral_tokenizer
    vocab = tok.get_vocab()
    mask = VocabFilter().mask(tok, len(vocab))
    for token in ("<s>", "</s>", "<unk>", "<0x0A>", "▁", "▁.", ".", ",", "▁(", ")."):
        assert mask[vocab[token]], token
    for token in ("▁heart", "▁disease", "ing", "1", "▁Paris"):
        assert not mask[vocab[token]], token
    only_special = VocabFilter(["special"]).mask(tok, len(vocab))
    assert only_special[vocab["</s>"]] and not only_special[vocab["▁."]]
    listed = VocabFilter([], ["▁the"]).mask(tok, len(vocab))
    assert listed.sum() == 1 and listed[vocab["▁the"]]
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary.*no-such-token"):
        VocabFilter([], ["no-such-token"]).mask(tok, len(vocab))
    # an LM head wider than the tokenizer never emits the extra ids
    wide = VocabFilter(["special"]).mask(tok, len(vocab) + 5)
    assert wide[len(vocab) :].all()


def test_encoder_never_emits_excluded_tokens_and_records_the_filter(tiny_model, tmp_path):
    texts = ["Hello, world!\n\nIs this (really) the end?", "A second text; with: punctuation..."]
    vectors = tiny_model.encode_documents(texts) + tiny_model.encode_queries(texts)
    excluded = set(tiny_model.excluded.nonzero().flatten().tolist())
    assert all(excluded.isdisjoint(v.indices) for v in vectors)
    unfiltered = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", exclude=[])
    raw = unfiltered.encode_documents(texts)
    assert any(not excluded.isdisjoint(v.indices) for v in raw)  # the filter removed something real
    for filtered, plain in zip(tiny_model.encode_documents(texts), raw):  # and nothing else changed
        kept = {i: w for i, w in plain.to_dict().items() if i not in excluded}
        got = filtered.to_dict()
        assert got.keys() == kept.keys()
        assert all(abs(got[i] - w) < 1e-5 for i, w in kept.items())
    assert unfiltered.model_rev != tiny_model.model_rev

    # training: no gradient reaches an excluded column
    weights = tiny_model.forward(texts, "document")
    assert torch.count_nonzero(weights[:, tiny_model.excluded]) == 0

    custom = EchoSpladeEncoder(
        tiny_model.model, tiny_model.tokenizer, "tiny-mistral", exclude=["special"], exclude_tokens=["▁the"]
    )
    custom.save_pretrained(tmp_path / "custom")
    saved = json.loads((tmp_path / "custom" / "echo_splade.json").read_text())
    assert saved["exclude"] == ["special"] and saved["exclude_tokens"] == ["▁the"]
    reloaded = EchoSpladeEncoder.from_pretrained(tmp_path / "custom")
    assert reloaded.exclude == ["special"] and reloaded.model_rev == custom.model_rev


def test_folders_saved_before_the_filter_keep_every_token(tiny_model, tmp_path):
    unfiltered = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", exclude=[])
    unfiltered.save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "echo_splade.json"
    config = json.loads(config_file.read_text())
    del config["exclude"], config["exclude_tokens"]  # as written before the filter existed
    config_file.write_text(json.dumps(config))
    old = EchoSpladeEncoder.from_pretrained(tmp_path / "old")
    assert old.excluded is None and old.exclude == []
    assert old.model_rev == unfiltered.model_rev  # indexes written before keep matching their model


def test_builtin_models_exclude_noise_tokens():
    from echo_splade.encoder import BUILTIN_MODELS

    for name, folder in BUILTIN_MODELS.items():
        config = json.loads((folder / "echo_splade.json").read_text())
        assert config.get("exclude") == list(DEFAULT_EXCLUDE), name
