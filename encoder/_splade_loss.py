from __future__ import annotations

import torch
import torch.nn.functional as F

from ._flops_scheduler import FlopsScheduler


def flops(weights: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser ``sum_v (mean_i w_iv)^2`` of ``[batch, vocab]`` weights (a scalar)."""
    return weights.mean(dim=0).pow(2).sum()


class SpladeLoss:
    """InfoNCE over dot-product scores with in-batch (and hard) negatives, plus FLOPS regularisation.

    ``loss = CE(q @ d.T / temperature, diagonal) + lambda_q(step) * flops(q) + lambda_d(step) * flops(d)``

    where the documents ``d`` are the positives of every query in the batch
    followed by any hard negatives, so query ``i``'s positive is column ``i``.

    Args:
        lambda_q: FLOPS weight of queries (reached after ``ramp_steps``).
        lambda_d: FLOPS weight of documents.
        ramp_steps: quadratic warm-up of both lambdas, in optimizer steps.
        temperature: scores are divided by it before the softmax.
    """

    def __init__(
        self, lambda_q: float = 5e-4, lambda_d: float = 5e-4, ramp_steps: int = 100, temperature: float = 1.0
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.lambda_q = FlopsScheduler(lambda_q, ramp_steps)
        self.lambda_d = FlopsScheduler(lambda_d, ramp_steps)
        self.temperature = float(temperature)

    def __call__(
        self,
        queries: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor | None = None,
        step: int = 0,
        ignore: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the loss.

        Args:
            queries: ``[batch, vocab]`` query weights.
            positives: ``[batch, vocab]`` weights of each query's relevant document.
            negatives: ``[n, vocab]`` hard-negative document weights (shared by all queries), or None.
            step: optimizer step (for the lambda ramp).
            ignore: ``[batch, batch + n]`` bool, True where a document is also relevant to a query
                without being its labelled positive (e.g. the same query twice in a batch); such
                pairs are left out of the softmax instead of counted as negatives.

        Returns:
            ``{"loss", "ranking", "flops_q", "flops_d", "lambda_q", "lambda_d"}``; ``loss`` is what to backpropagate.
        """
        documents = positives if negatives is None or negatives.numel() == 0 else torch.cat([positives, negatives])
        scores = queries @ documents.T / self.temperature  # [batch, batch + n]
        if ignore is not None:
            scores = scores.masked_fill(ignore.to(scores.device), float("-inf"))
        labels = torch.arange(queries.shape[0], device=scores.device)
        ranking = F.cross_entropy(scores, labels)
        flops_q, flops_d = flops(queries), flops(documents)
        lambda_q, lambda_d = self.lambda_q(step), self.lambda_d(step)
        loss = ranking + lambda_q * flops_q + lambda_d * flops_d
        as_tensor = lambda x: torch.tensor(x, device=scores.device)  # noqa: E731
        return {
            "loss": loss,
            "ranking": ranking.detach(),
            "flops_q": flops_q.detach(),
            "flops_d": flops_d.detach(),
            "lambda_q": as_tensor(lambda_q),
            "lambda_d": as_tensor(lambda_d),
        }
