"""A request the service refuses: an HTTP status plus a JSON error body."""

from __future__ import annotations

from typing import Any


class RequestError(ValueError):
    """Bad input to the encoder service; ``body()`` is the JSON error it answers with.

    ``error_type`` is one of ``malformed_json``, ``invalid_request``, ``empty_input``, ``empty_text``,
    ``not_a_string``, ``too_many_texts``, ``text_too_long``, ``not_found``, ``encoding_failed``, ``internal``.
    """

    def __init__(self, status: int, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.status = int(status)
        self.error_type = error_type
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """``{"error": {"type", "reason"}, "status"}`` (the shape OpenSearch and Elasticsearch use)."""
        return {"error": {"type": self.error_type, "reason": self.reason}, "status": self.status}
