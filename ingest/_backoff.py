from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Optional, TypeVar

from echo_splade.client import ClusterError

logger = logging.getLogger(__name__)

__all__ = ["Backoff"]

T = TypeVar("T")


class Backoff:
    """Capped exponential backoff with jitter: attempt ``n`` waits ``min(cap, initial * 2**n) * U(0.5, 1)`` seconds.

    Args:
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts in all).
        initial: the first delay before jitter, seconds.
        cap: the largest delay before jitter, seconds.
        sleep: the sleep function (tests pass a fake one).
        seed: seed of the jitter's random generator.
    """

    def __init__(
        self,
        max_retries: int = 8,
        initial: float = 0.5,
        cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: Optional[int] = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if initial < 0 or cap < initial:
            raise ValueError(f"need 0 <= initial <= cap, got initial={initial} and cap={cap}")
        self.max_retries = max_retries
        self.initial = initial
        self.cap = cap
        self._sleep = sleep
        self._random = random.Random(seed)
        #: Retries made so far by :meth:`call` (all calls together).
        self.retries = 0

    def __repr__(self) -> str:
        return f"Backoff(max_retries={self.max_retries}, initial={self.initial}, cap={self.cap})"

    def delay(self, attempt: int) -> float:
        """The jittered delay after failed attempt number ``attempt`` (0-based)."""
        return min(self.cap, self.initial * (2**attempt)) * self._random.uniform(0.5, 1.0)

    def wait(self, attempt: int) -> float:
        """Sleep for :meth:`delay` of ``attempt``; return the seconds slept."""
        seconds = self.delay(attempt)
        self._sleep(seconds)
        return seconds

    def call(self, fn: Callable[[], T], what: str = "request") -> T:
        """Call ``fn``, retrying on a retryable :class:`ClusterError` (429/502/503/504/unreachable).

        After the last retry it raises a :class:`ClusterError` saying how many attempts failed over how long.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn()
            except ClusterError as exc:
                if not exc.retryable:
                    raise
                if attempt >= self.max_retries:
                    state = "unreachable" if exc.unreachable else f"overloaded (HTTP {exc.status})"
                    raise ClusterError(
                        f"the cluster stayed {state} through {attempt + 1} {what} attempts over "
                        f"{time.monotonic() - started:.0f}s: {exc}",
                        status=exc.status,
                        error_type=exc.error_type,
                        reason=exc.reason,
                        body=exc.body,
                    ) from None
                seconds = self.delay(attempt)
                logger.warning(
                    "%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt + 1, self.max_retries, seconds
                )
                self._sleep(seconds)
                self.retries += 1
                attempt += 1
