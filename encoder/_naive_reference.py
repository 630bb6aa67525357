"""The straightforward SPLADE computation, kept as a reference for tests and the benchmark.

It is what :class:`SpladePooling` avoids: full ``batch x seq x vocab`` logits.
"""

from __future__ import annotations

from typing import Any

import torch


def naive_splade_weights(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor
) -> torch.Tensor:
    """``model(ids).logits`` over the whole padded batch, then log1p/relu/max over the pooled positions.

    Args:
        model: a causal LM.
        input_ids: ``[batch, seq]`` right-padded ids.
        attention_mask: ``[batch, seq]`` 1 for real tokens.
        pool_mask: ``[batch, seq]`` bool, True at the positions to pool.

    Returns:
        ``[batch, vocab]`` float32 weights.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()  # [batch, seq, vocab]
    activated = torch.log1p(torch.relu(logits))
    activated = activated.masked_fill(~pool_mask.unsqueeze(-1), 0.0)
    return activated.max(dim=1).values
