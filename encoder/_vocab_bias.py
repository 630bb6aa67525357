from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ._splade_pooling import splade_activation

BIAS_FILE = "vocab_bias.safetensors"


class VocabBias(torch.nn.Module):
    """A learned per-vocabulary bias of the LM head, added to the logits before the SPLADE activation.

    SPLADE reads BERT's MLM head, which has one bias per vocabulary entry; the LM
    heads of decoders (Llama, Mistral, SmolLM2) have none, and their raw logits
    are positive for almost the whole vocabulary, so an untrained echo encoding
    weighs ~all 49k tokens. With a bias ``b``::

        w_v = max_p log(1 + relu(logit_{p,v} + b_v)) = log(1 + relu(max_p logit_{p,v} + b_v))

    (``b`` is constant over positions, so it commutes with the max). :meth:`calibrate`
    starts it from corpus statistics: ``b_v = -quantile_q(max logit of v over sample texts)``,
    so a token only gets weight where the model predicts it more strongly than in
    a ``q`` fraction of texts: an IDF-like, sparse start that training then refines.

    Args:
        vocab_size: number of vocabulary entries.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))  # [vocab]

    @property
    def vocab_size(self) -> int:
        return int(self.bias.shape[0])

    def forward(self, max_logits: torch.Tensor) -> torch.Tensor:
        """``[n, vocab]`` max-pooled logits -> ``[n, vocab]`` weights ``log1p(relu(max_logits + bias))``."""
        return splade_activation(max_logits, self.bias)

    @classmethod
    def calibrate(cls, max_logits: torch.Tensor, quantile: float = 0.9) -> VocabBias:
        """A bias from the ``[n, vocab]`` max-pooled logits of sample texts: ``b_v = -quantile_q(max_logits[:, v])``.

        Args:
            max_logits: ``[n, vocab]`` pre-activation pooled logits (:meth:`EchoSpladeEncoder.max_logits`).
            quantile: in ``(0, 1]``; higher is sparser (each token then fires in at most ~``1 - q`` of
                texts like the samples).
        """
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        if max_logits.dim() != 2 or max_logits.shape[0] < 1:
            raise ValueError(f"max_logits must be [n >= 1, vocab], got shape {tuple(max_logits.shape)}")
        k = max(1, min(max_logits.shape[0], round(quantile * max_logits.shape[0])))
        values = max_logits.float().kthvalue(k, dim=0).values  # [vocab]
        values = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
        head = cls(max_logits.shape[1])
        with torch.no_grad():
            head.bias.copy_(-values.cpu())
        return head

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``vocab_bias.safetensors`` into ``directory``; return its path."""
        path = Path(directory) / BIAS_FILE
        save_file({"bias": self.bias.detach().to("cpu", torch.float32).contiguous()}, str(path))
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> VocabBias | None:
        """The bias saved in ``directory`` (frozen: ``requires_grad`` off), or None when it holds none."""
        path = Path(directory) / BIAS_FILE
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        if "bias" not in tensors or tensors["bias"].dim() != 1:
            raise ValueError(f"{path} is not a vocabulary bias file (expected one 1-D tensor named 'bias')")
        head = cls(int(tensors["bias"].shape[0]))
        with torch.no_grad():
            head.bias.copy_(tensors["bias"])
        return head.requires_grad_(False)
