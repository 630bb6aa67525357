from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

__all__ = ["PieceScheme", "piece_scheme", "token_label"]

#: How a vocabulary marks word pieces: ``"bpe"`` marks word *starts* (``Ġ``/``▁``; byte-level BPE,
#: SentencePiece), ``"wordpiece"`` marks *continuations* (``##``; BERT).
PieceScheme = Literal["bpe", "wordpiece"]

_WORD = re.compile(r"\w+", re.UNICODE)
#: continuation marker of WordPiece (BERT)
_CONTINUATION = "##"


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of byte-level BPE's printable byte alphabet (``'Ġ'`` -> space, ``'Ċ'`` -> newline, ...)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def piece_scheme(tokenizer: Any) -> PieceScheme:
    """``"wordpiece"`` when the tokenizer's vocabulary has ``##`` continuation pieces, else ``"bpe"``."""
    vocab = tokenizer.get_vocab()
    return "wordpiece" if sum(1 for t in vocab if t.startswith(_CONTINUATION)) > 100 else "bpe"


def _readable(token: str, scheme: PieceScheme) -> tuple[str, bool]:
    """``(text of the token, whether it continues a word)``."""
    if scheme == "wordpiece":
        if token.startswith(_CONTINUATION) and len(token) > len(_CONTINUATION):
            return token[len(_CONTINUATION) :], True
        return " " + token, False
    if token.startswith("▁"):
        return " " + token[1:], False
    decoder = _byte_decoder()
    if all(ch in decoder for ch in token):
        try:
            text = bytes(decoder[ch] for ch in token).decode("utf-8")
        except UnicodeDecodeError:
            return token, False
        return text, not text[:1].isspace()
    return token, False


def token_label(token: str, texts: Sequence[str] = (), scheme: PieceScheme = "bpe") -> str:
    """A vocabulary token as a person reads it: the word it came from when it is a word piece.

    ``"Ġcooking"`` -> ``"cooking"``; a piece such as ``"ooking"`` (byte-level BPE) or ``"##ing"``
    (WordPiece) -> ``"ooking <- cooking"`` when one of ``texts`` (the query, the hit's title and
    text) has a word that contains it; else the piece alone. Whitespace-only tokens are shown
    with ``repr`` (``'\\n'``).

    Args:
        token: the vocabulary string (as in the index's feature names, after ``feature_to_token``).
        texts: where to look for the whole word.
        scheme: the vocabulary's piece markers (:func:`piece_scheme` tells from a tokenizer).
    """
    if scheme not in ("bpe", "wordpiece"):
        raise ValueError(f"scheme must be 'bpe' or 'wordpiece', got {scheme!r}")
    raw, continues = _readable(token, scheme)
    piece = raw.strip()
    if not piece:
        return repr(raw)
    if not continues or not piece[-1:].isalnum():
        return piece
    lowered = piece.lower()
    for text in texts:
        for match in _WORD.finditer(text or ""):
            word = match.group(0)
            if lowered in word.lower() and word.lower() != lowered:
                return f"{piece} <- {word}"
    return piece
