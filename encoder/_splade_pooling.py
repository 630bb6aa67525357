from __future__ import annotations

import torch


class SpladePooling:
    """SPLADE max pooling through the LM head, without ever holding ``batch x seq x vocab`` logits.

    For every row ``b`` and vocabulary entry ``v``::

        w[b, v] = max over pooled positions p of row b of log(1 + relu(logit[b, p, v]))

    Because ``log1p(relu(.))`` is monotone, the max is taken over raw logits and
    the activation applied once at the end (same result, exactly). Only the pooled
    positions go through the LM head, ``chunk_size`` positions at a time; each
    chunk's ``chunk_size x vocab`` logits are folded into a running ``rows x vocab``
    max. Works with autograd (training) as well as under ``torch.inference_mode``.

    Args:
        chunk_size: pooled positions per LM-head call (bounds peak memory to
            ``chunk_size x vocab`` logits).
    """

    def __init__(self, chunk_size: int = 256) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size

    def __call__(self, hidden: torch.Tensor, pool_mask: torch.Tensor, lm_head: torch.nn.Module,
                 num_rows: int | None = None, row_index: torch.Tensor | None = None) -> torch.Tensor:
        """Pool.

        Args:
            hidden: ``[batch, seq, hidden]`` final hidden states of the backbone.
            pool_mask: ``[batch, seq]`` bool, True at the positions to pool.
            lm_head: maps ``[n, hidden]`` to ``[n, vocab]`` logits.
            num_rows: rows of the output; defaults to ``batch``.
            row_index: ``[batch]`` long, output row of each input row (several windows of one
                text share a row and are max-pooled together); defaults to ``arange(batch)``.

        Returns:
            ``[num_rows, vocab]`` float32 weights >= 0 (rows with nothing pooled are all zero).
        """
        batch_idx, pos_idx = pool_mask.nonzero(as_tuple=True)
        rows = batch_idx if row_index is None else row_index.to(batch_idx.device)[batch_idx]
        selected = hidden[batch_idx, pos_idx]  # [n, hidden]
        n_rows = hidden.shape[0] if num_rows is None else num_rows
        running: torch.Tensor | None = None
        vocab = 0
        for start in range(0, max(selected.shape[0], 1), self.chunk_size):
            chunk = selected[start:start + self.chunk_size]
            logits = lm_head(chunk).float()  # [chunk, vocab]
            if running is None:
                vocab = logits.shape[-1]
                running = torch.full((n_rows, vocab), float("-inf"), device=logits.device)
            index = rows[start:start + self.chunk_size].unsqueeze(1).expand(-1, vocab)
            if torch.is_grad_enabled():
                running = running.scatter_reduce(0, index, logits, reduce="amax", include_self=True)
            else:
                running.scatter_reduce_(0, index, logits, reduce="amax", include_self=True)
        return torch.log1p(torch.relu(running))
