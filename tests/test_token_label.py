"""Word pieces shown as the words they came from (explanations, demo)."""

from __future__ import annotations

import pytest

from echo_splade.connector import Explanation, piece_scheme, token_label
from echo_splade.encoder import load_tokenizer
from echo_splade.mappings import token_to_feature


def test_byte_level_bpe_pieces_show_their_word():
    assert token_label("ooking", ["How do I start cooking rice?"]) == "ooking <- cooking"
    assert token_label("Ġcooking", ["anything"]) == "cooking"
    assert token_label("ooking", ["no such word here"]) == "ooking"
    assert token_label("Ċ") == repr("\n")
    assert token_label("ĠcafÃ©") == "café"
    assert token_label("heart", ["heart attack"]) == "heart"  # the whole word, not a piece of a longer one


def test_sentencepiece_and_wordpiece():
    assert token_label("▁rice", ["x"]) == "rice"
    assert token_label("##ing", ["cooking is fun"], "wordpiece") == "ing <- cooking"
    assert token_label("heart", ["hearts"], "wordpiece") == "heart"  # word-initial in WordPiece
    with pytest.raises(ValueError, match="scheme must be"):
        token_label("x", [], "unigram")


def test_piece_scheme_of_real_tokenizers():
    assert piece_scheme(load_tokenizer("tiny-mistral")) == "bpe"
    assert piece_scheme(load_tokenizer("splade-tiny")) == "wordpiece"


def test_explanation_terms_carry_labels():
    query = {token_to_feature("ooking"): 1.5, token_to_feature("Ġrice"): 1.0}
    doc = {token_to_feature("ooking"): 2.0, token_to_feature("Ġrice"): 0.5, token_to_feature("Ġpot"): 1.0}
    explanation = Explanation.from_weights(query, doc, texts=["cooking rice", "Rice cooker", "Cooking rice in a pot"])
    labels = {t.token: t.label for t in explanation.terms}
    assert labels == {"ooking": "ooking <- cooking", "Ġrice": "rice"}
    assert explanation.to_dict()["terms"][0]["label"] == "ooking <- cooking"
