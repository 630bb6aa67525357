"""Query text, cleaned once per query before any encoder or BM25 clause sees it."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["clean_query_text"]

# C0/C1 control characters except tab, newline, carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_query_text(query: Any) -> str:
    """Validate query text: a ``str`` with something to search for.

    Control characters become spaces and lone surrogates ``?`` (neither can
    travel as UTF-8 JSON); tabs, newlines, emoji and any script are kept.

    Raises:
        ValueError: ``query`` is not a string, or it is empty/whitespace-only.
    """
    if not isinstance(query, str):
        raise ValueError(
            f"the query must be a string of text in this mode, got {type(query).__name__} "
            "(pass {token: weight} dicts with mode='tokens')"
        )
    # lone surrogates cannot be sent as UTF-8; control characters become spaces
    text = _CONTROL.sub(" ", query.encode("utf-8", "replace").decode("utf-8"))
    if not text.strip():
        raise ValueError("the query is empty or whitespace/control characters only; give some text to search for")
    return text
