"""The error of a local Ray start that did not succeed."""

from __future__ import annotations

__all__ = ["RayStartError"]


class RayStartError(RuntimeError):
    """A local Ray cluster could not be started (Ray's own error is the cause)."""
