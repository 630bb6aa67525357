from __future__ import annotations

import sys
import time
from typing import Any, Optional

import click

#: Seconds between two progress lines when stderr is not a terminal (CI, nohup, a Ray job's log).
LINE_EVERY = 30.0


class Progress:
    """Live progress of a long command: a tqdm bar on a terminal, else one plain line on stderr every
    :data:`LINE_EVERY` seconds (and a last one at :meth:`close`), so logs show how far it is.

    Args:
        label: what is counted (``"ingest"``, ``"bm25"``, ...).
        total: the expected count, if known.
        unit: the unit of the count (singular; ``units``: its plural, default ``unit + "s"``).
        every: seconds between lines when not on a terminal.
    """

    def __init__(
        self,
        label: str,
        total: Optional[int] = None,
        unit: str = "doc",
        every: float = LINE_EVERY,
        units: Optional[str] = None,
    ) -> None:
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.units = units or f"{unit}s"
        self.started = self.last_line = time.monotonic()
        self.done = 0
        self.fields: dict[str, Any] = {}
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, desc=label, dynamic_ncols=True, smoothing=0.1, file=sys.stderr)

    def update(self, done: int, **fields: Any) -> None:
        """The count so far (absolute) and any figures to show beside it."""
        self.done, self.fields = done, fields
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if fields:
                self._bar.set_postfix(refresh=False, **fields)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every:
            self.last_line = now
            click.echo(self.line(now), err=True)

    def update_from_report(self, report: Any) -> None:
        """Feed an ingest job's live report."""
        self.update(report.read, indexed=report.indexed, skipped=report.skipped, dead=report.dead_lettered)

    def line(self, now: Optional[float] = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        of = f"/{self.total}" if self.total else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        extra = "".join(f", {k} {v}" for k, v in self.fields.items())
        return f"{self.label}: {self.done}{of} {self.units}{extra} ({elapsed:.0f}s, {rate:.2f} {self.units}/s)"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.done and time.monotonic() - self.started >= self.every:
            click.echo(self.line(), err=True)
