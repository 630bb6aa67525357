from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EchoInput:
    """One model input built by :class:`EchoTemplate`.

    Attributes:
        input_ids: the full token sequence fed to the backbone.
        pool_start: first position whose output is pooled (the second copy of the text).
        pool_end: one past the last pooled position.
    """

    input_ids: list[int]
    pool_start: int
    pool_end: int


class EchoTemplate:
    """Builds echo inputs ``[BOS] + tok(prefix) + T + tok(separator) + T`` and says which positions to pool.

    Every piece is tokenized on its own with ``add_special_tokens=False`` and the
    ids are concatenated, so the text tokens ``T`` are identical in both copies
    and identical to ``tok(text)``. BOS is prepended only when the tokenizer
    defines one. Only the positions of the SECOND copy of ``T`` are pooled: in a
    causal model these are the positions that have seen the whole text.

    With ``echo=False`` (ablation) the input is ``[BOS] + T`` and all of ``T`` is pooled.

    Args:
        tokenizer: a Hugging Face tokenizer.
        prefix: text before the first copy, e.g. ``"Document:"``.
        separator: text between the two copies, e.g. ``"\\nDocument again:"``.
        echo: repeat the text (``True``) or encode it once (``False``).
    """

    def __init__(self, tokenizer: Any, prefix: str, separator: str, echo: bool = True) -> None:
        if not isinstance(prefix, str) or not isinstance(separator, str):
            raise ValueError("EchoTemplate prefix and separator must be strings")
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.separator = separator
        self.echo = bool(echo)
        bos = getattr(tokenizer, "bos_token_id", None)
        self._bos: list[int] = [bos] if bos is not None else []
        self._prefix_ids = self.tokenize(prefix) if (echo and prefix) else []
        self._separator_ids = self.tokenize(separator) if (echo and separator) else []

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def overhead(self) -> int:
        """Number of template tokens (BOS, prefix, separator) around the text."""
        return len(self._bos) + len(self._prefix_ids) + len(self._separator_ids)

    def max_text_tokens(self, max_length: int) -> int:
        """How many text tokens fit one input of ``max_length`` tokens (both copies counted)."""
        copies = 2 if self.echo else 1
        return (max_length - self.overhead) // copies

    def build(self, text_ids: Sequence[int]) -> EchoInput:
        """The echo input for already tokenized text ``text_ids``."""
        text_ids = list(text_ids)
        if not self.echo:
            start = len(self._bos)
            return EchoInput(self._bos + text_ids, start, start + len(text_ids))
        ids = self._bos + self._prefix_ids + text_ids + self._separator_ids + text_ids
        return EchoInput(ids, len(ids) - len(text_ids), len(ids))

    def windows(
        self, text_ids: Sequence[int], max_length: int, stride: int | None = None, truncate: bool = False
    ) -> list[EchoInput]:
        """Split ``text_ids`` into windows that each fit ``max_length`` once echoed.

        Args:
            text_ids: token ids of the text.
            max_length: the model input length limit, template included.
            stride: text tokens between window starts; ``None`` = the window size (no overlap).
            truncate: keep only the first window instead of covering the whole text.

        Returns:
            one :class:`EchoInput` per window (a single one for short texts).
        """
        size = self.max_text_tokens(max_length)
        if size < 1:
            raise ValueError(
                f"max_length={max_length} leaves no room for text: the template alone takes {self.overhead} tokens"
            )
        step = size if stride is None else stride
        if not 1 <= step <= size:
            raise ValueError(f"window stride must be between 1 and the window size {size}, got {stride}")
        text_ids = list(text_ids)
        if len(text_ids) <= size or truncate:
            return [self.build(text_ids[:size])]
        starts = list(range(0, len(text_ids) - size, step)) + [len(text_ids) - size]
        return [self.build(text_ids[s : s + size]) for s in starts]

    def get_config_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "separator": self.separator, "echo": self.echo}

    def __repr__(self) -> str:
        return f"EchoTemplate(prefix={self.prefix!r}, separator={self.separator!r}, echo={self.echo})"
