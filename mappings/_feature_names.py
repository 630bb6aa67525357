"""Feature-name scheme: vocabulary token strings <-> ``rank_features`` keys.

Why a scheme at all: a ``rank_features`` key becomes part of a field path
(``sparse.<key>`` in a ``rank_feature`` query). Elasticsearch rejects dots in
feature names; OpenSearch accepts them at index time, but its ``rank_feature``
query splits the field path at the LAST dot, finds no ``rank_features`` parent
and silently matches nothing. Other characters are legal but hazardous in the
places a field name travels: ``*``/``?`` are wildcards in field patterns,
``,`` separates field lists in URL parameters, ``^`` is the boost suffix of
``multi_match``/``query_string`` field names, ``:`` and ``#`` are query or URL
syntax, whitespace-only names are rejected, control characters and lone
surrogates cannot travel as UTF-8 JSON, and a key is a Lucene term (at most
32,766 UTF-8 bytes).

Scheme version 1 (:data:`FEATURE_SCHEME_VERSION`), frozen:

* SAFE characters pass through unchanged: ASCII letters and digits, the ASCII
  punctuation ``_ - ' ! $ ( ) < > @ [ ] { } | ;`` and the fixed, explicitly
  listed non-ASCII ranges in :data:`SAFE_RANGES` (Latin-1 printable letters and
  signs, Latin Extended-A/B, which hold the GPT-2 byte-level alphabet such as
  ``Ġ`` U+0120 and ``Ċ`` U+010A; Greek; Cyrillic; SentencePiece's ``▁``
  U+2581; Hiragana/Katakana; CJK Unified Ideographs; Hangul syllables). The
  ranges are code-point intervals, not Unicode categories, so the scheme does
  not change with the Python/Unicode version. None of them holds a dot,
  whitespace, a control or a format character.
* Every other character, the escape character ``~`` included, becomes its
  UTF-8 bytes (``surrogatepass``, so even a lone surrogate round-trips), each
  written as ``~`` + two UPPERCASE hex digits (percent-encoding with ``~``):
  ``.`` -> ``~2E``, ``~`` -> ``~7E``, space -> ``~20``, ``é`` stays ``é``,
  ``😀`` -> ``~F0~9F~98~80``.
* The empty token maps to the key ``~`` (a lone ``~`` is otherwise never
  produced), so keys are never empty.

So most keys equal their token (``▁the`` -> ``▁the``, ``Ġthe`` -> ``Ġthe``,
``<s>`` -> ``<s>``), and ``feature_to_token`` accepts only canonical keys: the
mapping is a bijection between all strings (up to the length limit) and
canonical keys, hence collision-free over any vocabulary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = [
    "FEATURE_SCHEME_VERSION",
    "FLOAT_MIN_NORMAL",
    "FLOAT_MAX",
    "MAX_FEATURE_BYTES",
    "SAFE_RANGES",
    "token_to_feature",
    "feature_to_token",
    "sparse_to_features",
    "features_to_sparse",
]

FEATURE_SCHEME_VERSION = 1
"""Version of the token -> key scheme; recorded in every index's ``_meta``."""

FLOAT_MIN_NORMAL = 2.0**-126
"""Java's ``Float.MIN_NORMAL`` (1.1754944e-38): Lucene's ``FeatureField`` rejects smaller values."""

FLOAT_MAX = 3.4028234663852886e38
"""Java's ``Float.MAX_VALUE``: larger weights overflow to infinity on the cluster."""

MAX_FEATURE_BYTES = 32766
"""Lucene's term length limit; a key is stored as a term of the ``rank_features`` field."""

ESCAPE = "~"
EMPTY_KEY = ESCAPE

_SAFE_ASCII = "_-'!$()<>@[]{}|;"
SAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00A1, 0x00AC),  # Latin-1 printable (U+00A0 no-break space and U+00AD soft hyphen excluded)
    (0x00AE, 0x024F),  # Latin-1 letters, Latin Extended-A/B (GPT-2 byte-level alphabet: Ġ Ċ ĉ ...)
    (0x0370, 0x03FF),  # Greek and Coptic
    (0x0400, 0x052F),  # Cyrillic and Cyrillic Supplement
    (0x2581, 0x2581),  # ▁ SentencePiece word boundary
    (0x3041, 0x30FF),  # Hiragana, Katakana (U+3000 ideographic space excluded)
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
)
"""Non-ASCII code-point ranges that pass through unchanged (frozen for scheme version 1)."""


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = []
    for lo, hi in ranges:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "".join(parts)


_SAFE_CLASS = "A-Za-z0-9" + re.escape(_SAFE_ASCII) + _char_class(SAFE_RANGES)
_UNSAFE_RUN = re.compile(f"[^{_SAFE_CLASS}]+")
_ESCAPE_RUN = re.compile(r"(?:~[0-9A-F]{2})+")
_CANONICAL = re.compile(f"(?:[{_SAFE_CLASS}]|~[0-9A-F]{{2}})+")


def _escape_run(match: re.Match) -> str:
    data = match.group().encode("utf-8", "surrogatepass")
    return "".join(f"~{b:02X}" for b in data)


def token_to_feature(token: str) -> str:
    """The ``rank_features`` key of a vocabulary token (scheme version 1, see the module docs).

    Raises:
        ValueError: ``token`` is not a string, or its key would exceed
            :data:`MAX_FEATURE_BYTES` UTF-8 bytes.
    """
    if not isinstance(token, str):
        raise ValueError(f"a token must be a string, got {type(token).__name__}: {token!r}")
    if not token:
        return EMPTY_KEY
    key = _UNSAFE_RUN.sub(_escape_run, token)
    if len(key) * 3 > MAX_FEATURE_BYTES and len(key.encode("utf-8")) > MAX_FEATURE_BYTES:
        raise ValueError(
            f"token {token[:40]!r}... is too long: its feature key exceeds Lucene's {MAX_FEATURE_BYTES}-byte term limit"
        )
    return key


def _unescape_run(match: re.Match) -> str:
    data = bytes(int(match.group()[i + 1 : i + 3], 16) for i in range(0, len(match.group()), 3))
    return data.decode("utf-8", "surrogatepass")


def feature_to_token(key: str) -> str:
    """The token string of a ``rank_features`` key made by :func:`token_to_feature`.

    Raises:
        ValueError: ``key`` is not a canonical scheme-1 key (a character that
            should have been escaped, a malformed or lowercase ``~XX`` escape,
            invalid UTF-8 inside escapes, or an escape of a safe character).
    """
    if not isinstance(key, str):
        raise ValueError(f"a feature key must be a string, got {type(key).__name__}: {key!r}")
    if key == EMPTY_KEY:
        return ""
    if not _CANONICAL.fullmatch(key):
        raise ValueError(f"not a feature key of scheme version {FEATURE_SCHEME_VERSION}: {key!r}")
    try:
        token = _ESCAPE_RUN.sub(_unescape_run, key)
    except UnicodeDecodeError as exc:
        raise ValueError(f"feature key {key!r} escapes bytes that are not UTF-8: {exc.reason}") from None
    if token_to_feature(token) != key:
        raise ValueError(f"feature key {key!r} is not canonical (expected {token_to_feature(token)!r})")
    return token


def _checked_weight(token: str, weight: object) -> float:
    if isinstance(weight, (bool, str, bytes)):
        raise ValueError(f"weight of token {token!r} must be a number, got {type(weight).__name__}: {weight!r}")
    try:
        value = float(weight)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f"weight of token {token!r} must be a number, got {type(weight).__name__}: {weight!r}"
        ) from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"weight of token {token!r} must be finite, got {value!r}")
    if value < 0:
        raise ValueError(f"weight of token {token!r} must not be negative, got {value!r}")
    if value > FLOAT_MAX:
        raise ValueError(f"weight of token {token!r} overflows a 32-bit float: {value!r} > {FLOAT_MAX!r}")
    return value


def sparse_to_features(token_weights: Mapping[str, float]) -> dict[str, float]:
    """Map ``{token: weight}`` to a ``rank_features`` source object ``{key: weight}``.

    Weights below :data:`FLOAT_MIN_NORMAL` (zero and denormal values) are DROPPED:
    they carry no score and Lucene refuses them. Anything else that Lucene would
    refuse is an error raised here, before anything is sent.

    Raises:
        ValueError: a weight is NaN, infinite, negative, larger than a 32-bit
            float or not a number (the message names the token), or a token
            is not a string.
    """
    features: dict[str, float] = {}
    for token, weight in token_weights.items():
        value = _checked_weight(token, weight)
        if value < FLOAT_MIN_NORMAL:
            continue
        features[token_to_feature(token)] = value
    return features


def features_to_sparse(features: Mapping[str, float]) -> dict[str, float]:
    """Inverse of :func:`sparse_to_features`: ``{key: weight}`` -> ``{token: weight}``.

    Raises:
        ValueError: a key is not a canonical scheme-1 key.
    """
    return {feature_to_token(key): float(weight) for key, weight in features.items()}
