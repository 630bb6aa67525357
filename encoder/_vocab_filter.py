from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch

__all__ = ["DEFAULT_EXCLUDE", "ExcludeCategory", "VocabFilter"]

ExcludeCategory = Literal["special", "whitespace", "punctuation"]
#: What a new encoder keeps out of its vectors unless told otherwise.
DEFAULT_EXCLUDE: tuple[ExcludeCategory, ...] = ("special", "whitespace", "punctuation")
_PUNCTUATION = frozenset(string.punctuation)
#: Reserved vocabulary slots of BERT-style vocabularies (plain entries, not registered as special tokens).
_RESERVED = re.compile(r"^\[unused\d+\]$")


class VocabFilter:
    """Which vocabulary entries the SPLADE head may never emit: noise removed inside the head.

    A token is excluded when it falls in one of ``categories``:

    - ``"special"``: the tokenizer's special and added control tokens (``<|im_end|>``, ``</s>``,
      ``[CLS]``, ``[SEP]``, ...) and reserved ``[unusedN]`` slots;
    - ``"whitespace"``: tokens whose text is empty or only whitespace (``'\\n'``, ``'  '``);
    - ``"punctuation"``: tokens whose text (stripped) is only punctuation or ASCII symbols
      (``'.'``, ``'),'``, ``'--'``; digits and letters are kept);

    or when its token string is listed in ``tokens`` (exact vocabulary strings, e.g. ``"ĠThe"``).

    The mask is applied to the pooled ``[rows, vocab]`` logits, column by column, so it is the same
    as masking every position before the max-pool, for documents and queries, in training (no
    gradient reaches an excluded column) and at inference. It is part of the encoder's config
    (``echo_splade.json``), hence of ``model_rev``.

    Args:
        categories: any of ``"special"``, ``"whitespace"``, ``"punctuation"``.
        tokens: extra vocabulary strings to exclude.
    """

    def __init__(self, categories: Sequence[ExcludeCategory] = DEFAULT_EXCLUDE, tokens: Sequence[str] = ()) -> None:
        if isinstance(categories, str) or isinstance(tokens, str):
            raise ValueError("categories and tokens must be lists of strings, not a single string")
        allowed = get_args(ExcludeCategory)
        unknown = [c for c in categories if c not in allowed]
        if unknown:
            raise ValueError(f"unknown exclude categor(ies) {unknown}; allowed: {list(allowed)}")
        bad = [t for t in tokens if not isinstance(t, str) or not t]
        if bad:
            raise ValueError(f"exclude tokens must be non-empty strings, got {bad[:5]}")
        # canonical order, so equal filters give equal configs (and model_rev)
        self.categories: tuple[ExcludeCategory, ...] = tuple(c for c in allowed if c in categories)
        self.tokens: tuple[str, ...] = tuple(sorted(set(tokens)))

    @property
    def active(self) -> bool:
        return bool(self.categories or self.tokens)

    def mask(self, tokenizer: Any, vocab_size: int) -> torch.Tensor:
        """``[vocab_size]`` bool, True where the token is excluded (ids past the tokenizer's vocabulary too).

        Raises:
            ValueError: a listed token is not in the tokenizer's vocabulary.
        """
        excluded = torch.zeros(vocab_size, dtype=torch.bool)
        if not self.active:
            return excluded
        vocab: dict[str, int] = tokenizer.get_vocab()
        missing = [t for t in self.tokens if t not in vocab]
        if missing:
            raise ValueError(f"exclude tokens not in the tokenizer's vocabulary: {missing[:10]}")
        for token in self.tokens:
            if vocab[token] < vocab_size:
                excluded[vocab[token]] = True
        if "special" in self.categories:
            specials = set(getattr(tokenizer, "all_special_ids", []) or [])
            decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
            specials.update(i for i, added in decoder.items() if getattr(added, "special", True))
            specials.update(i for t, i in vocab.items() if _RESERVED.match(t))
            for i in specials:
                if 0 <= i < vocab_size:
                    excluded[i] = True
        if "whitespace" in self.categories or "punctuation" in self.categories:
            ids = [i for i in range(min(vocab_size, len(vocab))) if not excluded[i]]
            texts = tokenizer.batch_decode(
                [[i] for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            for i, text in zip(ids, texts):
                stripped = text.strip()
                if "whitespace" in self.categories and not stripped:
                    excluded[i] = True
                elif "punctuation" in self.categories and stripped and all(_is_punctuation(ch) for ch in stripped):
                    excluded[i] = True
        # LM heads padded past the tokenizer (e.g. to a multiple of 64) never name a real token
        excluded[len(vocab) :] = True
        return excluded

    def to_config(self) -> dict[str, list[str]]:
        """``{"exclude": [...], "exclude_tokens": [...]}``, the encoder config keys that :meth:`from_config` reads."""
        return {"exclude": list(self.categories), "exclude_tokens": list(self.tokens)}

    @classmethod
    def from_config(
        cls, exclude: Sequence[ExcludeCategory] | None, exclude_tokens: Sequence[str] | None
    ) -> VocabFilter:
        return cls(list(exclude or ()), list(exclude_tokens or ()))

    def __repr__(self) -> str:
        return f"VocabFilter(categories={list(self.categories)}, tokens={list(self.tokens)})"


def _is_punctuation(ch: str) -> bool:
    return ch in _PUNCTUATION or unicodedata.category(ch).startswith("P")
