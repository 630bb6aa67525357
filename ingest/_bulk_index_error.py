from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["BulkIndexError"]


class BulkIndexError(Exception):
    """Some documents of a bulk request failed for good (after any retries).

    ``errors`` holds one bulk response item per failed document, e.g.
    ``{"index": {"_id": "7", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "..."}}}``.
    Picklable (it crosses Ray process boundaries with its ``errors``).
    """

    def __init__(self, message: str, errors: Sequence[Any] = ()) -> None:
        super().__init__(message, list(errors))
        self.message = message
        self.errors = list(errors)

    def __str__(self) -> str:
        return self.message
