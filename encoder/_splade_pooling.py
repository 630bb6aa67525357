from __future__ import annotations

from typing import Literal, get_args

import torch

Normalize = Literal["none", "log_softmax"]


def splade_activation(max_logits: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``log1p(relu(max_logits + bias))``: ``[n, vocab]`` pooled logits -> weights >= 0 (``bias``: ``[vocab]``)."""
    if bias is not None:
        max_logits = max_logits + bias.to(max_logits.device, max_logits.dtype)
    return torch.log1p(torch.relu(max_logits))


class SpladePooling:
    """SPLADE max pooling through the LM head, without ever holding ``batch x seq x vocab`` logits.

    For every row ``b`` and vocabulary entry ``v``::

        w[b, v] = max over pooled positions p of row b of log(1 + relu(logit[b, p, v]))

    Because ``log1p(relu(.))`` is monotone, the max is taken over raw logits and
    the activation applied once at the end (same result, exactly). Only the pooled
    positions go through the LM head, ``chunk_size`` positions at a time; each
    chunk's ``chunk_size x vocab`` logits are folded into a running ``rows x vocab``
    max. Works with autograd (training) as well as under ``torch.inference_mode``.

    With ``normalize="log_softmax"`` each position's logits are replaced by its
    log-probabilities (``logit - logsumexp(logit)``) before the max: a per-position
    shift that makes positions comparable. Raw logits of an untrained decoder are
    large and positive over almost the whole vocabulary (~all 49k tokens get weight);
    log-probabilities are near 0 only for what the model actually predicts (in the
    echo's second copy: the text's own next tokens and their likely alternatives), so
    with a :class:`VocabBias` as threshold the vectors are sparse and lexical from the start.

    Args:
        chunk_size: pooled positions per LM-head call (bounds peak memory to
            ``chunk_size x vocab`` logits).
        normalize: ``"none"`` (the paper's formula on raw logits) or ``"log_softmax"``.
    """

    def __init__(self, chunk_size: int = 256, normalize: Normalize = "none") -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if normalize not in get_args(Normalize):
            raise ValueError(f"normalize must be one of {list(get_args(Normalize))}, got {normalize!r}")
        self.chunk_size = chunk_size
        self.normalize = normalize

    def __call__(
        self,
        hidden: torch.Tensor,
        pool_mask: torch.Tensor,
        lm_head: torch.nn.Module,
        num_rows: int | None = None,
        row_index: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pool: ``log1p(relu(max_logits(...) + bias))``.

        Args:
            hidden, pool_mask, lm_head, num_rows, row_index: as for :meth:`max_logits`.
            bias: ``[vocab]`` per-vocabulary bias of the LM head (see :class:`VocabBias`), or None.
                A bias constant over positions commutes with the max, so it is added once after it.

        Returns:
            ``[num_rows, vocab]`` float32 weights >= 0 (rows with nothing pooled are all zero).
        """
        return splade_activation(
            self.max_logits(hidden, pool_mask, lm_head, num_rows=num_rows, row_index=row_index), bias
        )

    def max_logits(
        self,
        hidden: torch.Tensor,
        pool_mask: torch.Tensor,
        lm_head: torch.nn.Module,
        num_rows: int | None = None,
        row_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The running max of the LM-head logits (log-probabilities if normalized) over the pooled positions.

        Args:
            hidden: ``[batch, seq, hidden]`` final hidden states of the backbone.
            pool_mask: ``[batch, seq]`` bool, True at the positions to pool.
            lm_head: maps ``[n, hidden]`` to ``[n, vocab]`` logits.
            num_rows: rows of the output; defaults to ``batch``.
            row_index: ``[batch]`` long, output row of each input row (several windows of one
                text share a row and are max-pooled together); defaults to ``arange(batch)``.

        Returns:
            ``[num_rows, vocab]`` float32 max logits (``-inf`` in rows with nothing pooled).
        """
        batch_idx, pos_idx = pool_mask.nonzero(as_tuple=True)
        rows = batch_idx if row_index is None else row_index.to(batch_idx.device)[batch_idx]
        selected = hidden[batch_idx, pos_idx]  # [n, hidden]
        n_rows = hidden.shape[0] if num_rows is None else num_rows
        running: torch.Tensor | None = None
        vocab = 0
        for start in range(0, max(selected.shape[0], 1), self.chunk_size):
            chunk = selected[start : start + self.chunk_size]
            logits = lm_head(chunk).float()  # [chunk, vocab]
            if self.normalize == "log_softmax":
                logits = torch.log_softmax(logits, dim=-1)
            if running is None:
                vocab = logits.shape[-1]
                running = torch.full((n_rows, vocab), float("-inf"), device=logits.device)
            index = rows[start : start + self.chunk_size].unsqueeze(1).expand(-1, vocab)
            if torch.is_grad_enabled():
                running = running.scatter_reduce(0, index, logits, reduce="amax", include_self=True)
            else:
                running.scatter_reduce_(0, index, logits, reduce="amax", include_self=True)
        if running is None:  # unreachable: the loop runs at least once
            raise RuntimeError("SpladePooling: nothing was pooled")
        return running
