"""Blue/green provisioning of ``<name>-v<N>`` indices behind the alias ``<name>``."""

from __future__ import annotations

import logging
from typing import Any, Optional

from ._index_spec import IndexSpec
from ._provision_plan import ProvisionPlan

logger = logging.getLogger(__name__)

__all__ = ["IncompatibleIndexError", "provision", "plan_provision", "read_index_meta", "detect_analyzer"]


class IncompatibleIndexError(ValueError):
    """An existing index cannot hold the requested spec; ``differences`` lists why."""

    def __init__(self, index: str, differences: list[str]) -> None:
        self.index = index
        self.differences = list(differences)
        super().__init__(
            f"index {index} is incompatible with the requested spec: {'; '.join(differences)} "
            "(use --new-version to create a new index version)"
        )


def detect_analyzer(backend: Any) -> str:
    """``"english"`` when the node has the English analyzer (module analysis-common), else ``"standard"``."""
    from echo_splade.client import ClusterError

    try:
        backend.request("POST", "/_analyze", body={"analyzer": "english", "text": "running"})
        return "english"
    except ClusterError as exc:
        if exc.status == 400:
            logger.info("the node has no `english` analyzer (%s); using `standard`", exc.reason)
            return "standard"
        raise


def _check_engine(backend: Any, spec: IndexSpec) -> None:
    if spec.sparse_type != "sparse_vector":
        return
    if backend.engine != "elasticsearch":
        raise ValueError(
            "sparse type `sparse_vector` needs Elasticsearch >= 8.11; on OpenSearch use `rank_features`"
        )
    if tuple(backend.version[:2]) < (8, 11):
        raise ValueError(
            f"sparse type `sparse_vector` needs Elasticsearch >= 8.11, the cluster runs {backend.version_string}"
        )


def _versions(backend: Any, spec: IndexSpec) -> dict[int, str]:
    """Existing physical indices ``<name>-v<N>`` by version number."""
    found = backend.request(
        "GET", f"/{spec.name}-v*/_alias", params={"expand_wildcards": "all", "allow_no_indices": True}
    )
    versions = {}
    for index in found or {}:
        version = spec.parse_version(index)
        if version is not None:
            versions[version] = index
    return versions


def _live_index(backend: Any, spec: IndexSpec) -> Optional[str]:
    """The physical index behind the alias, ``None`` when there is no alias."""
    targets = sorted(backend.get_aliases(spec.name))
    if len(targets) > 1:
        raise ValueError(f"alias {spec.name} points at several indices ({', '.join(targets)}); fix it by hand")
    if targets:
        return targets[0]
    if backend.exists(spec.name):
        raise ValueError(
            f"{spec.name} is a concrete index, not an alias; provision manages `{spec.name}-v<N>` indices "
            f"behind the alias {spec.name}: choose another --index or reindex"
        )
    return None


def _existing(backend: Any, index: str) -> tuple[dict, dict]:
    mapping = backend.get_mapping(index)[index]["mappings"]
    settings = backend.get_settings(index)[index]["settings"]
    return mapping, settings


def plan_provision(
    backend: Any,
    spec: IndexSpec,
    *,
    new_version: bool = False,
    swap: bool = False,
    drop_old: bool = False,
) -> ProvisionPlan:
    """Work out the REST calls that make the cluster match ``spec``; sends only reads.

    * No alias yet: create ``<name>-v1`` with the alias in the same call (or alias the
      newest existing version when it is compatible).
    * Alias exists: a compatible live index is a no-op (missing model entries of
      ``_meta`` are filled in); an incompatible one raises :class:`IncompatibleIndexError`.
    * ``new_version``: create ``<name>-v<N+1>``; the alias stays unless ``swap``.
    * ``swap``: move the alias to the newest version in ONE ``_aliases`` call.
    * ``drop_old``: delete versions older than the index the alias points at afterwards.

    Raises:
        IncompatibleIndexError: the index to keep differs from ``spec`` (named differences).
        ValueError: ``sparse_vector`` on OpenSearch/old Elasticsearch, or an alias/index name clash.
    """
    _check_engine(backend, spec)
    live = _live_index(backend, spec)
    versions = _versions(backend, spec)
    newest = max(versions) if versions else 0
    analyzer = detect_analyzer(backend) if spec.analyzer == "auto" else spec.analyzer

    if new_version or not versions and live is None:
        target = spec.index_name(newest + 1)
        attach = live is None
        new_live = target if (attach or swap) else live
        plan = ProvisionPlan(alias=spec.name, target=target, live=new_live, analyzer=analyzer)
        plan.add("create", "PUT", f"/{target}", spec.create_body(analyzer, alias=attach))
        if swap and not attach:
            _move_alias(plan, spec.name, live, target)
    else:
        target = versions[newest] if versions and (live is None or swap) else live
        mapping, settings = _existing(backend, target)
        differences = spec.differences(mapping, settings)
        if differences:
            raise IncompatibleIndexError(target, differences)
        meta = mapping.get("_meta", {}) or {}
        plan = ProvisionPlan(alias=spec.name, target=target, live=target, analyzer=meta.get("analyzer", "standard"))
        if target != live:
            _move_alias(plan, spec.name, live, target)
        missing = spec.missing_meta(meta)
        if missing:
            plan.add("update-meta", "PUT", f"/{target}/_mapping", {"_meta": {**meta, **missing}})

    if drop_old:
        live_version = spec.parse_version(plan.live)
        for version, index in sorted(versions.items()):
            if index != plan.live and (live_version is None or version < live_version):
                plan.dropped.append(index)
                plan.add("drop", "DELETE", f"/{index}")
    return plan


def _move_alias(plan: ProvisionPlan, alias: str, old: Optional[str], new: str) -> None:
    actions: list[dict] = []
    if old is not None:
        actions.append({"remove": {"index": old, "alias": alias}})
    actions.append({"add": {"index": new, "alias": alias}})
    plan.add("swap" if old is not None else "alias", "POST", "/_aliases", {"actions": actions})


def provision(
    backend: Any,
    spec: IndexSpec,
    *,
    new_version: bool = False,
    swap: bool = False,
    drop_old: bool = False,
    dry_run: bool = False,
) -> ProvisionPlan:
    """Make the cluster match ``spec`` (see :func:`plan_provision`); return the plan it ran.

    With ``dry_run=True`` nothing is written: the returned plan holds the exact bodies.
    """
    plan = plan_provision(backend, spec, new_version=new_version, swap=swap, drop_old=drop_old)
    if dry_run:
        return plan
    for request in plan.requests:
        logger.info("%s %s", request.method, request.path)
        backend.request(request.method, request.path, body=request.body, params=request.params)
    plan.executed = True
    logger.info("%s", plan.summary())
    return plan


def read_index_meta(backend: Any, alias: str) -> dict:
    """The ``_meta`` of the index behind ``alias`` (model, model_rev, feature scheme, templates, analyzer).

    ``{}`` when the index has no ``_meta``. Raises ``ClusterError`` (404) when it does not exist and
    ``ValueError`` when ``alias`` points at several indices.
    """
    mappings = backend.get_mapping(alias)
    if len(mappings) != 1:
        raise ValueError(f"{alias} points at several indices ({', '.join(sorted(mappings))}); expected one")
    (body,) = mappings.values()
    return dict(body.get("mappings", {}).get("_meta", {}) or {})
