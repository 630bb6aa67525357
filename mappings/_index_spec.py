from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal, Optional

from ._document import KEYWORD_FIELDS, MODEL_FIELD, MODEL_REV_FIELD, SPARSE_FIELD, TEXT_FIELDS, model_name
from ._feature_names import FEATURE_SCHEME_VERSION

__all__ = ["IndexSpec", "SPARSE_TYPES", "ANALYZERS", "META_FORMAT", "default_sparse_type"]

SparseType = Literal["auto", "rank_features", "sparse_vector"]
Analyzer = Literal["auto", "english", "standard"]
SPARSE_TYPES = ("auto", "rank_features", "sparse_vector")
CONCRETE_SPARSE_TYPES = ("rank_features", "sparse_vector")
SPARSE_VECTOR_SINCE = (8, 11)
"""First Elasticsearch version with the ``sparse_vector`` field type (OpenSearch has none)."""
ANALYZERS = ("auto", "english", "standard")
META_FORMAT = 1
"""Version of the ``_meta`` layout written by :class:`IndexSpec` (key ``echo_splade``)."""


# OpenSearch/Elasticsearch index and alias name rules (lowercase, no separators or wildcards).
_BAD_NAME_CHARS = re.compile(r'[\\/*?"<>| ,#:A-Z]')
_MAX_NAME_BYTES = 255 - len("-v999999")


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    """What an echo-splade index looks like: the alias name, the model it holds, and its settings.

    The physical index is ``<name>-v<N>`` behind the alias ``<name>``. Documents
    (written by ingest) have the source ``{"doc_id", "title", "text", "sparse":
    {feature: weight}, "model", "model_rev"}`` (:func:`document_source`).

    Args:
        name: alias name (lowercase index-name rules; the versioned suffix is added).
        model: the name that reloads the encoder the sparse vectors come from (:func:`model_name`;
            ``None``: not recorded yet).
        model_rev: the encoder's stable revision hash (``None``: not recorded yet).
        echo_templates: the encoder's echo templates (recorded in ``_meta``; empty: not recorded).
        shards: primary shards (fixed once created).
        replicas: replica shards.
        sparse_type: ``"rank_features"`` (OpenSearch, and Elasticsearch with mapper-extras),
            ``"sparse_vector"`` (Elasticsearch >= 8.11 only), or ``"auto"``: the engine's own
            choice when an index is created (:func:`default_sparse_type`; :meth:`resolved`),
            and either type when an existing index is checked.
        analyzer: analyzer of the BM25 fields ``title`` and ``text``: ``"english"``,
            ``"standard"``, or ``"auto"`` (``english`` when the node has it, else ``standard``).
    """

    name: str
    model: Optional[str] = None
    model_rev: Optional[str] = None
    echo_templates: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    shards: int = 1
    replicas: int = 0
    sparse_type: SparseType = "auto"
    analyzer: Analyzer = "auto"

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise ValueError("index name must be a non-empty string")
        if _BAD_NAME_CHARS.search(name) or name[0] in "_-+" or name in (".", ".."):
            raise ValueError(
                f"invalid index name {name!r}: use lowercase letters, digits, '-', '_' or '.', "
                "not starting with '_', '-' or '+'"
            )
        if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
            raise ValueError(f"index name {name[:30]!r}... is too long (at most {_MAX_NAME_BYTES} bytes)")
        if self.sparse_type not in SPARSE_TYPES:
            raise ValueError(f"sparse_type must be one of {SPARSE_TYPES}, got {self.sparse_type!r}")
        if self.analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {ANALYZERS}, got {self.analyzer!r}")
        for label, value, low in (("shards", self.shards, 1), ("replicas", self.replicas, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
        for label, given in (("model", self.model), ("model_rev", self.model_rev)):
            if given is not None and (not isinstance(given, str) or not given):
                raise ValueError(f"{label} must be a non-empty string or None, got {given!r}")
        if not isinstance(self.echo_templates, Mapping):
            raise ValueError(f"echo_templates must be a mapping, got {type(self.echo_templates).__name__}")
        object.__setattr__(self, "echo_templates", dict(self.echo_templates))

    @classmethod
    def from_encoder(cls, name: str, encoder: Any, **kwargs: Any) -> IndexSpec:
        """The spec for an index holding ``encoder``'s vectors (:func:`model_name`, ``model_rev``, templates)."""
        return cls.for_model(
            name,
            model_name(encoder),
            getattr(encoder, "model_rev", None),
            getattr(encoder, "config", None) or {},
            **kwargs,
        )

    @classmethod
    def for_model(
        cls,
        name: str,
        model: Optional[str],
        model_rev: Optional[str],
        config: Mapping[str, Any],
        **kwargs: Any,
    ) -> IndexSpec:
        """The spec for an index of the encoder ``model`` (the name that reloads it), ``model_rev`` and ``config``."""
        return cls(name=name, model=model, model_rev=model_rev, echo_templates=echo_templates_of(config), **kwargs)

    def resolved(self, engine: str, version: tuple) -> IndexSpec:
        """This spec with ``sparse_type="auto"`` replaced by the engine's choice (:func:`default_sparse_type`)."""
        if self.sparse_type != "auto":
            return self
        return dataclasses.replace(self, sparse_type=default_sparse_type(engine, version))

    # -- names ------------------------------------------------------------------
    def index_name(self, version: int) -> str:
        """Physical index name of ``version`` (``<name>-v<version>``)."""
        return f"{self.name}-v{int(version)}"

    def parse_version(self, index: str) -> Optional[int]:
        """The version number of a physical index of this alias, or ``None`` when it is not one."""
        match = re.fullmatch(re.escape(self.name) + r"-v([1-9][0-9]*)", index)
        return int(match.group(1)) if match else None

    # -- bodies -----------------------------------------------------------------
    def meta(self, analyzer: str) -> dict:
        """The index ``_meta`` (keys with ``None`` values are left out)."""
        meta: dict[str, Any] = {
            "echo_splade": META_FORMAT,
            "feature_scheme_version": FEATURE_SCHEME_VERSION,
            "sparse_field": SPARSE_FIELD,
            "sparse_type": self.sparse_type,
            "analyzer": analyzer,
        }
        if self.model is not None:
            meta[MODEL_FIELD] = self.model
        if self.model_rev is not None:
            meta[MODEL_REV_FIELD] = self.model_rev
        if self.echo_templates:
            meta["echo_templates"] = dict(self.echo_templates)
        return meta

    def properties(self, analyzer: str) -> dict:
        if self.sparse_type == "auto":
            raise ValueError(
                "sparse_type 'auto' has no mapping of its own: resolve it for the cluster first "
                "(IndexSpec.resolved(backend.engine, backend.version))"
            )
        props: dict[str, Any] = {f: {"type": "text", "analyzer": analyzer} for f in TEXT_FIELDS}
        props[SPARSE_FIELD] = {"type": self.sparse_type}
        props.update({f: {"type": "keyword"} for f in KEYWORD_FIELDS})
        return props

    def create_body(self, analyzer: str, alias: bool = False) -> dict:
        """The ``PUT /<index>`` body; ``alias=True`` attaches the alias in the same call.

        ``dynamic: false``: fields outside the format stay in ``_source`` but are not indexed.
        """
        body: dict[str, Any] = {
            "settings": {"index": {"number_of_shards": self.shards, "number_of_replicas": self.replicas}},
            "mappings": {"dynamic": False, "_meta": self.meta(analyzer), "properties": self.properties(analyzer)},
        }
        if alias:
            body["aliases"] = {self.name: {}}
        return body

    # -- comparison with an existing index -------------------------------------------
    def differences(self, mapping: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
        """Why an existing index (its ``mappings`` object and flat settings) cannot hold this spec.

        Empty when compatible. ``None`` spec fields and ``analyzer="auto"`` match anything,
        ``sparse_type="auto"`` matches either sparse type; replicas are not compared (a dynamic setting).
        """
        diffs: list[str] = []
        props = mapping.get("properties", {}) or {}
        meta = mapping.get("_meta", {}) or {}
        want_analyzer = None if self.analyzer == "auto" else self.analyzer
        any_sparse = self.sparse_type == "auto"
        spec = dataclasses.replace(self, sparse_type="rank_features") if any_sparse else self
        for field, want in spec.properties(want_analyzer or "standard").items():
            allowed = CONCRETE_SPARSE_TYPES if any_sparse and field == SPARSE_FIELD else (want["type"],)
            expected = " or ".join(f"`{t}`" for t in allowed)
            have = props.get(field)
            if have is None:
                diffs.append(f"field `{field}` is missing, expected {expected}")
                continue
            have_type = have.get("type", "object")
            if have_type not in allowed:
                diffs.append(f"field `{field}` is `{have_type}`, expected {expected}")
            elif want["type"] == "text" and want_analyzer is not None:
                have_analyzer = have.get("analyzer", "standard")
                if have_analyzer != want_analyzer:
                    diffs.append(f"field `{field}` uses analyzer `{have_analyzer}`, expected `{want_analyzer}`")
        scheme = meta.get("feature_scheme_version")
        if scheme != FEATURE_SCHEME_VERSION:
            diffs.append(f"_meta.feature_scheme_version is {scheme!r}, expected {FEATURE_SCHEME_VERSION}")
        for key, want in (
            ("model", self.model),
            ("model_rev", self.model_rev),
            ("echo_templates", self.echo_templates or None),
        ):
            have = meta.get(key)
            if want is not None and have is not None and have != want:
                diffs.append(f"_meta.{key} is {have!r}, expected {want!r}")
        shards = settings.get("index.number_of_shards")
        if shards is not None and int(shards) != self.shards:
            diffs.append(f"number_of_shards is {shards}, expected {self.shards}")
        return diffs

    def missing_meta(self, meta: Mapping[str, Any]) -> dict:
        """Spec ``_meta`` entries an existing compatible index does not record yet."""
        wanted = {
            MODEL_FIELD: self.model,
            MODEL_REV_FIELD: self.model_rev,
            "echo_templates": self.echo_templates or None,
        }
        return {k: v for k, v in wanted.items() if v is not None and meta.get(k) is None}


def default_sparse_type(engine: str, version: tuple) -> SparseType:
    """The sparse field type ``sparse_type="auto"`` creates: ``sparse_vector`` on Elasticsearch >= 8.11
    (its native SPLADE field, in the server itself), ``rank_features`` on OpenSearch and older Elasticsearch."""
    if engine == "elasticsearch" and tuple(version[:2]) >= SPARSE_VECTOR_SINCE:
        return "sparse_vector"
    return "rank_features"


def echo_templates_of(config: Mapping[str, Any]) -> dict:
    """The echo-template entries of an encoder ``config`` dict: ``echo``, ``*_prefix``, ``*_separator``
    (and any ``*template*`` key)."""
    if isinstance(config.get("echo_templates"), Mapping):
        return dict(config["echo_templates"])
    return {
        k: v
        for k, v in config.items()
        if "template" in k or k.startswith("echo") or k.endswith(("_prefix", "_separator"))
    }
