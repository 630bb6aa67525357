"""Bulk-load index settings (refresh off, no replicas) that are always put back.

The previous values are saved in the index ``_meta`` (key :data:`BULK_LOAD_META_KEY`)
BEFORE anything is changed, so a job that was killed outright (``kill -9``, a
lost machine) leaves a record that the next :func:`bulk_load_settings` or an
explicit :func:`restore_settings` (the CLI's ``provision --restore-settings``)
uses to put the exact previous values back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from echo_splade.client import Backend

from ._index_meta import physical_meta, put_physical_meta

logger = logging.getLogger(__name__)

__all__ = ["BULK_LOAD_META_KEY", "bulk_load_settings", "restore_settings", "saved_bulk_load_settings"]

BULK_LOAD_META_KEY = "echo_splade_bulk_load"
_KEYS = ("index.refresh_interval", "index.number_of_replicas")


def _physical_settings(backend: Backend, index: str) -> dict[str, dict]:
    """Flat settings of every physical index behind ``index`` (an index or an alias)."""
    return {name: body["settings"] for name, body in backend.get_settings(index).items()}


def saved_bulk_load_settings(backend: Backend, index: str) -> dict[str, dict]:
    """``{physical_index: {"index.refresh_interval": ..., "index.number_of_replicas": ...}}``
    for every index behind ``index`` that holds saved (not yet restored) values."""
    saved = {}
    for physical in _physical_settings(backend, index):
        record = physical_meta(backend, physical).get(BULK_LOAD_META_KEY)
        if record:
            saved[physical] = {k: record.get(k) for k in _KEYS}
    return saved


def _apply(backend: Backend, index: str, refresh_interval: str, replicas: int) -> dict[str, dict]:
    previous = {}
    for physical, settings in _physical_settings(backend, index).items():
        meta = physical_meta(backend, physical)
        record = meta.get(BULK_LOAD_META_KEY)
        if record:
            logger.warning(
                "index %s still holds bulk-load settings saved at %s by a run that did not restore them; "
                "they are kept and restored at the end of this run",
                physical,
                record.get("saved_at"),
            )
        else:
            record = {k: settings.get(k) for k in _KEYS}
            record["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            put_physical_meta(backend, physical, {**meta, BULK_LOAD_META_KEY: record})
        previous[physical] = {k: record.get(k) for k in _KEYS}
        backend.put_settings(physical, {"refresh_interval": refresh_interval, "number_of_replicas": replicas})
        logger.info(
            "bulk-load settings on %s: refresh_interval=%s, replicas=%s (were %s)",
            physical,
            refresh_interval,
            replicas,
            previous[physical],
        )
    return previous


def restore_settings(backend: Backend, index: str, refresh: bool = True) -> dict[str, dict]:
    """Put back the settings a bulk load saved for the indices behind ``index``; then refresh.

    Idempotent: indices without saved values are left alone. Returns what was
    restored, ``{physical_index: {setting: value}}`` (``None`` = the setting was unset
    and is reset to its default).
    """
    restored = {}
    for physical in _physical_settings(backend, index):
        meta = physical_meta(backend, physical)
        record = meta.pop(BULK_LOAD_META_KEY, None)
        if not record:
            continue
        values = {k: record.get(k) for k in _KEYS}
        backend.put_settings(physical, {k.split(".", 1)[1]: v for k, v in values.items()})
        put_physical_meta(backend, physical, meta)
        restored[physical] = values
        logger.info("restored settings of %s: %s", physical, values)
    if refresh:
        backend.refresh(index)
    return restored


@contextlib.contextmanager
def bulk_load_settings(
    backend: Backend, index: str, refresh_interval: str = "-1", replicas: int = 0
) -> Iterator[dict[str, dict]]:
    """Context manager: refresh off and no replicas on ``index`` (an index or alias) for a bulk load.

    Yields the previous values per physical index. On exit, also on any exception or
    ``KeyboardInterrupt``, the exact previous values are restored (an unset
    ``refresh_interval`` is unset again) and the index is refreshed. When the restore
    itself fails during an exception, the error is logged and the original exception
    propagates; the saved values stay in ``_meta`` for :func:`restore_settings`.
    """
    try:
        yield _apply(backend, index, refresh_interval, replicas)
    except BaseException:
        try:
            restore_settings(backend, index)
        except Exception as exc:  # keep the body's exception; the record in _meta survives
            logger.error(
                "could not restore the settings of %s (%s); they stay saved in its _meta: the next bulk load "
                "on it puts them back, or restore_settings() once the cluster is reachable",
                index,
                exc,
                extra={"hint_options": ("restore_settings",), "hint_context": {"index": index}},
            )
        raise
    restore_settings(backend, index)
