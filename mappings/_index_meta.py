"""Reading and updating the ``_meta`` object of an index (or of every index behind an alias)."""

from __future__ import annotations

from echo_splade.client import Backend, ClusterStateError

__all__ = ["DOC_PRECISION_META_KEY", "DOC_PRUNING_META_KEY", "read_index_meta", "update_index_meta"]

DOC_PRUNING_META_KEY = "doc_pruning"
"""``_meta`` key where an ingest job records its document pruning, ``{"top_k": k, "min_weight": w, "mass": m}``."""

DOC_PRECISION_META_KEY = "doc_precision"
"""``_meta`` key where an ingest job records how its encoder computed, ``{"dtype": d, "quantize": q, "smooth": alpha}``
(``{"dtype": "float32", "quantize": None, "smooth": None}``: the CPU reference)."""


def read_index_meta(backend: Backend, alias: str) -> dict:
    """The ``_meta`` of the index behind ``alias`` (model, model_rev, feature scheme, templates, analyzer).

    ``{}`` when the index has no ``_meta``. Raises ``ClusterError`` (404) when it does not exist and
    ``ClusterStateError`` (a ``ValueError``) when ``alias`` points at several indices.
    """
    mappings = backend.get_mapping(alias)
    if len(mappings) != 1:
        raise ClusterStateError(f"{alias} points at several indices ({', '.join(sorted(mappings))}); expected one")
    (body,) = mappings.values()
    return _meta_of(body)


def physical_meta(backend: Backend, physical: str) -> dict:
    """The ``_meta`` of one physical index (``{}`` when it has none)."""
    return _meta_of(backend.get_mapping(physical)[physical])


def _meta_of(body: dict) -> dict:
    """A copy of the ``_meta`` in one index's ``GET _mapping`` entry (``{}`` when it has none)."""
    return dict(body.get("mappings", {}).get("_meta", {}) or {})


def put_physical_meta(backend: Backend, physical: str, meta: dict) -> None:
    """Replace the ``_meta`` of one physical index (a mapping update replaces the whole object)."""
    backend.request("PUT", f"/{physical}/_mapping", body={"_meta": meta})


def update_index_meta(backend: Backend, index: str, entries: dict) -> dict[str, dict]:
    """Set the top-level keys of ``entries`` in the ``_meta`` of every index behind ``index``.

    Other keys are kept. Returns the replaced values per physical index,
    ``{physical: {key: previous value or None}}``.
    """
    previous = {}
    for physical, body in sorted(backend.get_mapping(index).items()):
        meta = _meta_of(body)
        previous[physical] = {key: meta.get(key) for key in entries}
        if any(meta.get(key) != value for key, value in entries.items()):
            put_physical_meta(backend, physical, {**meta, **entries})
    return previous
