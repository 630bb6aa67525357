from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

__all__ = ["IngestReport"]

IngestStatus = Literal["running", "completed", "interrupted", "failed"]


@dataclasses.dataclass
class IngestReport:
    """What an ingest run did; written as JSON by :meth:`write` (``--report``), also when the run failed.

    ``read``: records read from the corpus (good and bad); ``encoded``: documents
    encoded; ``indexed``: documents the cluster acknowledged; ``skipped``:
    documents already in the index with the same ``model_rev`` (``--resume``);
    ``dead_lettered``: records written to the dead-letter file (by reason in
    ``dead_letter_reasons``); ``docs_per_s``: ``indexed / seconds``.
    """

    index: str
    corpus: str
    model: Optional[str] = None
    model_rev: Optional[str] = None
    status: IngestStatus = "running"
    read: int = 0
    encoded: int = 0
    indexed: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    dead_letter_path: Optional[str] = None
    error: Optional[str] = None

    @property
    def docs_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["docs_per_s"] = round(self.docs_per_s, 2)
        return data

    def write(self, path: Union[str, os.PathLike]) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def summary(self) -> str:
        """One human-readable line."""
        return (
            f"{self.status}: read {self.read}, encoded {self.encoded}, indexed {self.indexed}, "
            f"skipped {self.skipped}, dead-lettered {self.dead_lettered} in {self.seconds:.1f}s "
            f"({self.docs_per_s:.1f} docs/s)"
        )
