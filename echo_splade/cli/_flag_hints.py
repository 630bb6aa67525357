"""The CLI's flag hints on the library's log lines: a record logged with ``extra={"hint_options": (...)}``
(library parameter names) gets the matching command-line flags appended, as typed errors do."""

from __future__ import annotations

import logging

from ._options import library_log_hint

__all__ = ["FlagHints", "install_flag_hints"]


class FlagHints(logging.Filter):
    """A handler filter that appends the flags of the options a library log record names (once per record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        options = getattr(record, "hint_options", None)
        if options and not getattr(record, "hint_added", False):
            hint = library_log_hint(tuple(options), dict(getattr(record, "hint_context", None) or {}))
            record.msg = f"{record.msg}{hint.replace('%', '%%') if record.args else hint}"
            record.hint_added = True
        return True


def install_flag_hints() -> None:
    """Add :class:`FlagHints` to the root logger's handlers (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, FlagHints) for f in handler.filters):
            handler.addFilter(FlagHints())
