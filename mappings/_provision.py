"""Blue/green provisioning of ``<name>-v<N>`` indices behind the alias ``<name>``."""

from __future__ import annotations

import logging
from typing import Optional

from echo_splade.client import Backend, ClusterError, ClusterStateError, ConfigurationError

from ._document import SPARSE_FIELD
from ._incompatible_index_error import IncompatibleIndexError
from ._index_spec import SPARSE_VECTOR_SINCE, IndexSpec
from ._provision_plan import PlannedRequest, ProvisionPlan

logger = logging.getLogger(__name__)

__all__ = ["provision", "plan_provision", "detect_analyzer"]


def detect_analyzer(backend: Backend) -> str:
    """``"english"`` when the node has the English analyzer (module analysis-common), else ``"standard"``."""
    try:
        backend.request("POST", "/_analyze", body={"analyzer": "english", "text": "running"})
        return "english"
    except ClusterError as exc:
        if exc.status == 400:
            logger.info("the node has no `english` analyzer (%s); using `standard`", exc.reason)
            return "standard"
        if exc.status == 403:
            # the cluster-level _analyze probe needs the cluster privilege `manage`: a least-privilege
            # provisioner names the analyzer instead
            raise type(exc)(
                f"{exc} -- cannot detect whether the cluster has the `english` analyzer; "
                f"name the analyzer (english or standard)",
                status=exc.status,
                error_type=exc.error_type,
                reason=exc.reason,
                option="analyzer",
                context={"choices": ("english", "standard")},
            ) from None
        raise


def _check_engine(backend: Backend, spec: IndexSpec) -> None:
    if spec.sparse_type != "sparse_vector":
        return
    if backend.engine != "elasticsearch":
        raise ConfigurationError(
            "sparse type `sparse_vector` needs Elasticsearch >= 8.11; on OpenSearch use `rank_features`",
            option="sparse_type",
        )
    if tuple(backend.version[:2]) < SPARSE_VECTOR_SINCE:
        raise ConfigurationError(
            f"sparse type `sparse_vector` needs Elasticsearch >= 8.11, the cluster runs {backend.version_string}",
            option="sparse_type",
        )


def _versions(backend: Backend, spec: IndexSpec) -> dict[int, str]:
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


def _live_index(backend: Backend, spec: IndexSpec) -> tuple[Optional[str], bool]:
    """``(physical index behind the alias or None, whether spec.name is a concrete index instead)``."""
    targets = sorted(backend.get_aliases(spec.name))
    if len(targets) > 1:
        raise ValueError(f"alias {spec.name} points at several indices ({', '.join(targets)}); fix it by hand")
    if targets:
        return targets[0], False
    if backend.exists(spec.name):
        return spec.name, True
    return None, False


def _existing(backend: Backend, index: str) -> tuple[dict, dict]:
    mapping = backend.get_mapping(index)[index]["mappings"]
    settings = backend.get_settings(index)[index]["settings"]
    return mapping, settings


def plan_provision(
    backend: Backend,
    spec: IndexSpec,
    *,
    new_version: bool = False,
    swap: bool = False,
    drop_old: bool = False,
) -> ProvisionPlan:
    """Work out the REST calls that make the cluster match ``spec``; sends only reads.

    * No alias yet: create ``<name>-v1`` with the alias in the same call (or alias the
      newest existing version when it is compatible).
    * ``spec.name`` is a concrete index (e.g. ``<alias>-v2`` during a blue/green load): it is
      checked like a live index (no-op or refusal); versions and swaps need the alias name.
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
    live, is_concrete = _live_index(backend, spec)
    if is_concrete:
        if new_version or swap or drop_old:
            raise ClusterStateError(
                f"{spec.name} is a concrete index, not an alias: new versions, swaps and dropping old versions "
                f"manage `NAME-v<N>` indices behind an alias NAME; give the alias name",
                option="index",
            )
        return _check_existing(backend, spec, spec.name)
    versions = _versions(backend, spec)
    newest = max(versions) if versions else 0

    if new_version or not versions and live is None:
        analyzer = detect_analyzer(backend) if spec.analyzer == "auto" else spec.analyzer
        concrete = spec.resolved(backend.engine, backend.version)
        target = spec.index_name(newest + 1)
        attach = live is None
        new_live = target if (attach or swap) else live
        plan = ProvisionPlan(
            alias=spec.name, target=target, live=str(new_live), analyzer=analyzer, sparse_type=concrete.sparse_type
        )
        plan.add("create", "PUT", f"/{target}", concrete.create_body(analyzer, alias=attach))
        if swap and not attach:
            _move_alias(plan, spec.name, live, target)
    else:
        target = versions[newest] if versions and (live is None or swap) else str(live)
        hint = None
        live_version = spec.parse_version(target)
        if live_version is not None and newest > live_version:
            hint = f"{versions[newest]} is newer: swapping moves the alias {spec.name} to it"
        plan = _check_existing(backend, spec, target, hint)
        if target != live:
            plan.actions.insert(0, "swap" if live is not None else "alias")
            plan.requests.insert(0, _alias_request(spec.name, live, target))

    if drop_old:
        live_version = spec.parse_version(plan.live)
        for version, index in sorted(versions.items()):
            if index != plan.live and (live_version is None or version < live_version):
                plan.dropped.append(index)
                plan.add("drop", "DELETE", f"/{index}")
    return plan


def _check_existing(backend: Backend, spec: IndexSpec, target: str, hint: Optional[str] = None) -> ProvisionPlan:
    """A plan that keeps ``target`` (filling in missing model ``_meta``), or the differences as an error."""
    mapping, settings = _existing(backend, target)
    differences = spec.differences(mapping, settings)
    if differences:
        raise IncompatibleIndexError(target, differences, *([hint, "swap"] if hint else []))
    meta = mapping.get("_meta", {}) or {}
    sparse = (mapping.get("properties", {}) or {}).get(SPARSE_FIELD, {}).get("type")
    plan = ProvisionPlan(
        alias=spec.name, target=target, live=target, analyzer=meta.get("analyzer", "standard"), sparse_type=sparse
    )
    missing = spec.missing_meta(meta)
    if missing:
        plan.add("update-meta", "PUT", f"/{target}/_mapping", {"_meta": {**meta, **missing}})
    return plan


def _alias_request(alias: str, old: Optional[str], new: str) -> PlannedRequest:
    """ONE ``_aliases`` call: remove from the old index and add to the new one atomically."""
    actions: list[dict] = []
    if old is not None:
        actions.append({"remove": {"index": old, "alias": alias}})
    actions.append({"add": {"index": new, "alias": alias}})
    return PlannedRequest("POST", "/_aliases", {"actions": actions})


def _move_alias(plan: ProvisionPlan, alias: str, old: Optional[str], new: str) -> None:
    request = _alias_request(alias, old, new)
    plan.add("swap" if old is not None else "alias", request.method, request.path, request.body)


def provision(
    backend: Backend,
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
        try:
            backend.request(request.method, request.path, body=request.body, params=request.params)
        except ClusterError as exc:
            sparse_type = plan.sparse_type or spec.sparse_type
            if exc.error_type == "mapper_parsing_exception" and sparse_type in str(exc.reason):
                other = "sparse_vector" if sparse_type == "rank_features" else "rank_features"
                raise ClusterError(
                    f"{exc} (the node lacks the `{sparse_type}` field type: it comes with the mapper-extras "
                    f"module; try the sparse type {other} where the engine supports it)",
                    status=exc.status,
                    error_type=exc.error_type,
                    reason=exc.reason,
                    body=exc.body,
                    option="sparse_type",
                    context={"value": other},
                ) from None
            raise
    plan.executed = True
    logger.info("%s", plan.summary())
    return plan
