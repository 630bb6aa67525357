from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._echo_template import EchoInput, EchoTemplate

__all__ = ["MlmTemplate"]


class MlmTemplate(EchoTemplate):
    """Inputs of a masked-LM SPLADE model (BERT-style): ``[CLS] + T + [SEP]``, every position pooled.

    No echo: a bidirectional encoder already sees the whole text at every position. Windows of
    long texts are cut like :class:`EchoTemplate`'s (``max_length`` counts ``[CLS]`` and ``[SEP]``).

    Args:
        tokenizer: a Hugging Face tokenizer with ``cls_token_id`` and ``sep_token_id`` (or neither).
    """

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer, "", "", echo=False)
        cls_id = getattr(tokenizer, "cls_token_id", None)
        sep_id = getattr(tokenizer, "sep_token_id", None)
        self._bos = [cls_id] if cls_id is not None else []
        self._eos: list[int] = [sep_id] if sep_id is not None else []

    @property
    def overhead(self) -> int:
        return len(self._bos) + len(self._eos)

    def max_text_tokens(self, max_length: int) -> int:
        return max_length - self.overhead

    def build(self, text_ids: Sequence[int]) -> EchoInput:
        ids = self._bos + list(text_ids) + self._eos
        return EchoInput(ids, 0, len(ids))

    def get_config_dict(self) -> dict[str, Any]:
        return {"prefix": "", "separator": "", "echo": False, "format": "[CLS] text [SEP]"}

    def __repr__(self) -> str:
        return "MlmTemplate([CLS] text [SEP])"
