from __future__ import annotations


class FlopsScheduler:
    """The FLOPS regularisation weight ramped up quadratically, as SPLADE does.

    ``lambda(step) = target * min(1, (step / ramp_steps)) ** 2``; ``ramp_steps=0`` means no ramp.

    Args:
        target: the final lambda.
        ramp_steps: optimizer steps until ``target`` is reached.
    """

    def __init__(self, target: float, ramp_steps: int = 0) -> None:
        if target < 0:
            raise ValueError(f"FLOPS lambda must be >= 0, got {target}")
        if ramp_steps < 0:
            raise ValueError(f"ramp_steps must be >= 0, got {ramp_steps}")
        self.target = float(target)
        self.ramp_steps = int(ramp_steps)

    def __call__(self, step: int) -> float:
        if self.ramp_steps == 0 or step >= self.ramp_steps:
            return self.target
        return self.target * (max(step, 0) / self.ramp_steps) ** 2

    def __repr__(self) -> str:
        return f"FlopsScheduler(target={self.target}, ramp_steps={self.ramp_steps})"
