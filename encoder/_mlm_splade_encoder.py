from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._echo_splade_encoder import EXCLUDED_LOGIT, EchoSpladeEncoder
from ._echo_template import EchoInput
from ._encoder_spec import MASKED_LM_OPTIONS
from ._mlm_template import MlmTemplate

__all__ = ["MlmSpladeEncoder"]


class MlmSpladeEncoder(EchoSpladeEncoder):
    """SPLADE on a masked-LM encoder (BERT-style, ``AutoModelForMaskedLM``): the peer of the echo model.

    ``w_v = max_p log(1 + relu(logit_{p,v}))`` over all positions of ``[CLS] + T + [SEP]``
    (:class:`MlmTemplate`): the original SPLADE recipe, no echo, no causal mask. Everything else
    (windows of long texts max-pooled, pruning, the vocabulary filter, ``model_rev``, the
    ``echo_splade.json`` config) is :class:`EchoSpladeEncoder`'s, so ingest, the connector and
    eval use it unchanged. :meth:`EchoSpladeEncoder.from_pretrained` builds one when the model's
    ``config.json`` names a ``*ForMaskedLM`` architecture.

    Args:
        model: a Hugging Face masked LM.
        tokenizer, model_id, **options: as for :class:`EchoSpladeEncoder` (``echo`` is always False; the
            echo template options are ignored; ``normalize`` must stay ``"none"``, SPLADE's raw logits).
    """

    architecture = "masked-lm"

    _int8_head_supported = False  # its head is model.cls (transform + decoder), not get_output_embeddings()

    def __init__(self, model: Any, tokenizer: Any, model_id: str, **options: Any) -> None:
        options.update(MASKED_LM_OPTIONS)
        if options.get("normalize", "none") != "none":
            raise ValueError(
                f"a masked-LM SPLADE model pools raw logits: normalize must be 'none', got {options['normalize']!r}"
            )
        super().__init__(model, tokenizer, model_id, **options)
        self.templates = {"document": MlmTemplate(tokenizer), "query": MlmTemplate(tokenizer)}
        limit = int(getattr(model.config, "max_position_embeddings", self.max_length))
        if self.max_length > limit:
            raise ValueError(f"max_length {self.max_length} exceeds the model's {limit} positions")
        for template in self.templates.values():
            template.windows([], self.max_length, self.window_stride)

    @property
    def backbone(self) -> torch.nn.Module:
        """The encoder stack without the MLM head."""
        return self.model.base_model

    def _head(self) -> torch.nn.Module:
        """Hidden states -> vocabulary logits: the MLM prediction head (transform + decoder)."""
        head = getattr(self.model, "cls", None)  # BERT-family: BertOnlyMLMHead
        if head is None:
            raise ValueError(
                f"{type(self.model).__name__} has no BERT-style MLM head (model.cls); "
                "supported: BertForMaskedLM and its relatives"
            )
        return head

    def forward_inputs(
        self, inputs: Sequence[EchoInput], rows: Sequence[int], num_rows: int, raw: bool = False
    ) -> torch.Tensor:
        """Run one right-padded batch through the encoder and the MLM head, max-pooled per row.

        Returns:
            ``[num_rows, vocab]`` float32 weights (or max logits when ``raw``).
        """
        device = self.device
        input_ids, attention_mask = self.padded(inputs)
        hidden = self.backbone(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
        ).last_hidden_state  # [batch, seq, hidden]
        row_index = torch.tensor(list(rows), dtype=torch.long)
        pool_mask = attention_mask.bool().to(device)
        head = self._head()
        if raw:
            pooled = self.pooling.max_logits(hidden, pool_mask, head, num_rows=num_rows, row_index=row_index)
            return pooled if self.excluded is None else pooled.masked_fill(self.excluded, EXCLUDED_LOGIT)
        weights = self.pooling(hidden, pool_mask, head, num_rows=num_rows, row_index=row_index)
        return weights if self.excluded is None else weights.masked_fill(self.excluded, 0.0)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    def __repr__(self) -> str:
        return (
            f"MlmSpladeEncoder(source={self.source!r}, model_id={self.model_id!r}, "
            f"max_length={self.max_length}, device={self.device}"
            + (f", quantized={self.quantized!r})" if self.quantized else ")")
        )
