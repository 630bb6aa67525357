"""Wire a running encoder service into OpenSearch ML Commons / neural-search, idempotently.

What :meth:`MlCommonsSetup.apply` creates (each only when missing or different; a re-run is a no-op):

1. cluster settings ML Commons needs for a loopback HTTP model (see :data:`ML_SETTINGS` and the README):
   the service URL in ``plugins.ml_commons.trusted_connector_endpoints_regex``, private IPs allowed for
   connectors, models allowed on a node without the ``ml`` role, the memory circuit breakers relaxed;
2. a model group ``echo-splade``;
3. two HTTP connectors and two remote models, deployed: one encodes **documents** (the ``sparse_encoding``
   ingest processor calls it), one encodes **queries** (``neural_sparse`` calls it): echo-splade encodes the
   two with different echo templates, and ML Commons calls a model the same way for both;
4. the ingest pipeline ``<index>-sparse-encoding``: a ``script`` processor builds the text ingest encodes
   (``document_text``: title and text on two lines), ``sparse_encoding`` writes the ``sparse`` field
   (``prune_type``/``prune_ratio`` from the index's recorded doc pruning), the helper field is removed;
5. the search pipeline ``<index>-neural-sparse`` (``neural_query_enricher``: ``neural_sparse`` on ``sparse``
   without a ``model_id`` uses the query model).

Names carry a digest of what defines them (service URL, kind, pruning), so a changed service gets a new
connector/model and the pipelines move to it, while the same call twice finds everything in place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any, Optional

from echo_splade.client import ClusterError
from echo_splade.mappings import DOC_PRUNING_META_KEY, PlannedRequest, read_index_meta

logger = logging.getLogger(__name__)

MODEL_GROUP = "echo-splade"
SPARSE_FIELD = "sparse"
INPUT_FIELD = "_echo_splade_input"

#: Persistent cluster settings (besides the trusted-endpoint regex, which is merged with what is there).
ML_SETTINGS: dict[str, Any] = {
    # a loopback/private service address is refused by default (SSRF protection, 2.15+)
    "plugins.ml_commons.connector.private_ip_enabled": True,
    # a single local node has no dedicated `ml` role
    "plugins.ml_commons.only_run_on_ml_node": False,
    # the circuit breakers measure the whole (shared) machine and refuse deploys on a busy one;
    # remote models hold no weights in the node
    "plugins.ml_commons.native_memory_threshold": 100,
    "plugins.ml_commons.jvm_heap_memory_threshold": 100,
}
TRUSTED_ENDPOINTS = "plugins.ml_commons.trusted_connector_endpoints_regex"

#: The text ``echo-splade ingest`` encodes (``encoder.document_text``): title and text stripped, on two lines.
#: Painless has no ``String.strip()``; ``sp`` is Python's ``str.isspace`` for the BMP (Java whitespace, space
#: separators such as U+00A0, and U+0085).
DOCUMENT_TEXT_SCRIPT = (
    "boolean sp(char c) { return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == (char) 0x85; } "
    "String strip(def v) { if (v == null) { return ''; } String s = v.toString(); int a = 0; int b = s.length(); "
    "while (a < b && sp(s.charAt(a))) { a++; } while (b > a && sp(s.charAt(b - 1))) { b--; } "
    "return s.substring(a, b); } "
    "String t = strip(ctx['title']); String x = strip(ctx['text']); String nl = String.valueOf((char) 10); "
    "ctx['" + INPUT_FIELD + "'] = t.isEmpty() ? x : (x.isEmpty() ? t : t + nl + x);"
)


@dataclasses.dataclass(frozen=True)
class MlCommonsSetup:
    """The ML Commons objects for one index and one running service.

    Args:
        service_url: the encoder service as the cluster reaches it, e.g. ``http://127.0.0.1:8600``.
        index: the index (alias) the ingest pipeline writes ``sparse`` for; its ``_meta`` doc pruning sets
            the processor's ``prune_type``/``prune_ratio`` unless ``doc_top_k``/``min_weight`` are given.
        query_top_k: query terms kept (``SparseRetriever``'s default 64), sent to the service by the query model.
        doc_top_k, min_weight: document pruning; ``None``: read from the index ``_meta`` (none when absent).
        batch_size: documents of one ``_bulk`` request that the ``sparse_encoding`` processor sends to the
            service in one call (at most the service's ``max_texts``). With 1, a bulk of N documents opens N
            concurrent connections and ML Commons' HTTP client refuses those past its pool
            (``client_config.max_connection``) once the service is slow: batches keep the calls few and
            let the service encode several texts per model call.
        timeout: seconds to wait for a model to deploy.
    """

    service_url: str
    index: str
    query_top_k: Optional[int] = 64
    doc_top_k: Optional[int] = None
    min_weight: Optional[float] = None
    batch_size: int = 8
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if not self.service_url.startswith(("http://", "https://")):
            raise ValueError(f"service_url must start with http:// or https://, got {self.service_url!r}")
        if not self.index or any(c in self.index for c in ' ,/*?"<>|#'):
            raise ValueError(f"invalid index name {self.index!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    # ---------------------------------------------------------------- bodies
    @property
    def base_url(self) -> str:
        return self.service_url.rstrip("/")

    def trusted_regex(self) -> str:
        escaped = "".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in self.base_url)
        return f"^{escaped}/.*$"

    def connector_body(self, kind: str, pruning: dict) -> dict:
        request: dict[str, Any] = {"texts": "${parameters.input}", "kind": kind}
        if kind == "query" and self.query_top_k:
            request["top_k"] = self.query_top_k
        if kind == "document" and pruning.get("min_weight"):
            request["min_weight"] = pruning["min_weight"]
        # ${parameters.input} is already a JSON list (default pre-process function): unquote it
        request_body = json.dumps(request).replace('"${parameters.input}"', "${parameters.input}")
        body = {
            "name": "",
            "description": f"echo-splade {kind} encoder at {self.base_url} (echo-splade serve)",
            "version": "1",
            "protocol": "http",
            "parameters": {"service": self.base_url, "kind": kind},
            # ML Commons requires a credential map on every connector; the service needs none
            "credential": {"unused": "none"},
            "client_config": {"max_connection": 32, "connection_timeout": 5000, "read_timeout": 60000},
            "actions": [
                {
                    "action_type": "predict",
                    "method": "POST",
                    "url": f"{self.base_url}/encode",
                    "headers": {"content-type": "application/json"},
                    "request_body": request_body,
                    "pre_process_function": "connector.pre_process.default.embedding",
                }
            ],
        }
        body["name"] = f"echo-splade-{kind}-{_digest(body)}"
        return body

    def model_body(self, connector: dict, connector_id: str, group_id: str) -> dict:
        return {
            "name": connector["name"],
            "function_name": "remote",
            "model_group_id": group_id,
            "connector_id": connector_id,
            "description": connector["description"],
        }

    def pipeline_name(self) -> str:
        return f"{self.index}-sparse-encoding"

    def search_pipeline_name(self) -> str:
        return f"{self.index}-neural-sparse"

    def ingest_pipeline_body(self, model_id: str, pruning: dict) -> dict:
        processor: dict[str, Any] = {"model_id": model_id, "field_map": {INPUT_FIELD: SPARSE_FIELD}}
        if self.batch_size > 1:
            processor["batch_size"] = self.batch_size
        if pruning.get("top_k"):
            processor.update(prune_type="top_k", prune_ratio=float(pruning["top_k"]))
        elif pruning.get("min_weight"):
            processor.update(prune_type="abs_value", prune_ratio=float(pruning["min_weight"]))
        return {
            "description": "echo-splade: sparse vectors from the encoder service, as `echo-splade ingest` writes them",
            "processors": [
                {"script": {"lang": "painless", "source": DOCUMENT_TEXT_SCRIPT}},
                {"sparse_encoding": processor},
                {"remove": {"field": INPUT_FIELD}},
            ],
        }

    def search_pipeline_body(self, query_model_id: str) -> dict:
        return {
            "description": "echo-splade: neural_sparse on `sparse` uses the echo-splade query model",
            "request_processors": [
                {"neural_query_enricher": {"neural_field_default_id": {SPARSE_FIELD: query_model_id}}}
            ],
        }

    # ------------------------------------------------------------------ plan
    def pruning(self, backend: Any) -> dict:
        """``{"top_k", "min_weight"}``: the given values, else the index ``_meta`` doc pruning."""
        if self.doc_top_k is not None or self.min_weight is not None:
            return {"top_k": self.doc_top_k, "min_weight": self.min_weight}
        try:
            meta = read_index_meta(backend, self.index)
        except ClusterError as exc:
            if exc.status != 404:
                raise
            return {"top_k": None, "min_weight": None}
        recorded = meta.get(DOC_PRUNING_META_KEY) or {}
        return {"top_k": recorded.get("top_k"), "min_weight": recorded.get("min_weight")}

    def dry_run(self, backend: Any) -> list[PlannedRequest]:
        """Every request :meth:`apply` may send, with placeholders for ids it would learn on the way."""
        pruning = self.pruning(backend)
        out = [PlannedRequest("PUT", "/_cluster/settings", self.settings_body([]))]
        out.append(PlannedRequest("POST", "/_plugins/_ml/model_groups/_register", self.model_group_body()))
        for kind in ("document", "query"):
            connector = self.connector_body(kind, pruning)
            out.append(PlannedRequest("POST", "/_plugins/_ml/connectors/_create", connector))
            out.append(
                PlannedRequest(
                    "POST",
                    "/_plugins/_ml/models/_register",
                    self.model_body(connector, f"<{kind}_connector_id>", "<model_group_id>"),
                )
            )
            out.append(PlannedRequest("POST", f"/_plugins/_ml/models/<{kind}_model_id>/_deploy", None))
        out.append(
            PlannedRequest(
                "PUT",
                f"/_ingest/pipeline/{self.pipeline_name()}",
                self.ingest_pipeline_body("<document_model_id>", pruning),
            )
        )
        out.append(
            PlannedRequest(
                "PUT", f"/_search/pipeline/{self.search_pipeline_name()}", self.search_pipeline_body("<query_model_id>")
            )
        )
        return out

    def settings_body(self, existing: list[str]) -> dict:
        regexes = list(dict.fromkeys([*existing, self.trusted_regex()]))
        return {"persistent": {**ML_SETTINGS, TRUSTED_ENDPOINTS: regexes}}

    @staticmethod
    def model_group_body() -> dict:
        return {"name": MODEL_GROUP, "description": "echo-splade encoder service models"}

    # ----------------------------------------------------------------- apply
    def apply(self, backend: Any) -> dict[str, Any]:
        """Create what is missing; return ``{"document_model_id", "query_model_id", "model_group_id",
        "ingest_pipeline", "search_pipeline", "changed": [what was created or updated]}``."""
        changed: list[str] = []
        pruning = self.pruning(backend)
        self._ensure_settings(backend, changed)
        group_id = self._ensure_model_group(backend, changed)
        model_ids = {}
        for kind in ("document", "query"):
            connector = self.connector_body(kind, pruning)
            connector_id = self._ensure_connector(backend, connector, changed)
            model_ids[kind] = self._ensure_model(backend, self.model_body(connector, connector_id, group_id), changed)
        self._ensure_put(
            backend,
            f"/_ingest/pipeline/{self.pipeline_name()}",
            self.ingest_pipeline_body(model_ids["document"], pruning),
            changed,
        )
        self._ensure_put(
            backend,
            f"/_search/pipeline/{self.search_pipeline_name()}",
            self.search_pipeline_body(model_ids["query"]),
            changed,
        )
        return {
            "document_model_id": model_ids["document"],
            "query_model_id": model_ids["query"],
            "model_group_id": group_id,
            "ingest_pipeline": self.pipeline_name(),
            "search_pipeline": self.search_pipeline_name(),
            "pruning": pruning,
            "changed": changed,
        }

    def _ensure_settings(self, backend: Any, changed: list[str]) -> None:
        current = backend.request("GET", "/_cluster/settings", params={"flat_settings": "true"})
        persistent = current.get("persistent") or {}
        existing = persistent.get(TRUSTED_ENDPOINTS) or []
        if isinstance(existing, str):
            existing = [existing]
        body = self.settings_body(existing)
        wanted = body["persistent"]
        if all(_same_setting(persistent.get(k), v) for k, v in wanted.items()):
            return
        backend.request("PUT", "/_cluster/settings", body=body)
        changed.append("cluster settings")

    def _search_one(self, backend: Any, path: str, name: str) -> Optional[dict]:
        query = {"query": {"term": {"name.keyword": name}}, "size": 10}
        try:
            hits = backend.request("POST", path, body=query).get("hits", {}).get("hits", [])
        except ClusterError as exc:
            if exc.status == 404:  # the system index does not exist yet
                return None
            raise
        # model search also returns model chunks; remote models have none
        hits = [h for h in hits if (h.get("_source") or {}).get("name") == name]
        return hits[0] if hits else None

    def _ensure_model_group(self, backend: Any, changed: list[str]) -> str:
        hit = self._search_one(backend, "/_plugins/_ml/model_groups/_search", MODEL_GROUP)
        if hit:
            return hit["_id"]
        response = backend.request("POST", "/_plugins/_ml/model_groups/_register", body=self.model_group_body())
        changed.append(f"model group {MODEL_GROUP}")
        return response["model_group_id"]

    def _ensure_connector(self, backend: Any, body: dict, changed: list[str]) -> str:
        hit = self._search_one(backend, "/_plugins/_ml/connectors/_search", body["name"])
        if hit:
            return hit["_id"]
        response = backend.request("POST", "/_plugins/_ml/connectors/_create", body=body)
        changed.append(f"connector {body['name']}")
        return response["connector_id"]

    def _ensure_model(self, backend: Any, body: dict, changed: list[str]) -> str:
        hit = self._search_one(backend, "/_plugins/_ml/models/_search", body["name"])
        if hit:
            model_id = hit["_id"]
            # the search hit can lag behind; the model API has the current state
            state = backend.request("GET", f"/_plugins/_ml/models/{model_id}").get("model_state")
        else:
            response = backend.request("POST", "/_plugins/_ml/models/_register", body=body)
            model_id = response.get("model_id") or self._wait_task(backend, response["task_id"])["model_id"]
            changed.append(f"model {body['name']}")
            state = None
        if state != "DEPLOYED":
            self._deploy(backend, model_id)
            changed.append(f"deployed {model_id}")
        return model_id

    def _deploy(self, backend: Any, model_id: str, attempts: int = 4) -> None:
        """Deploy and wait. A failed deploy is undeployed and retried: on a fresh cluster the first deploy can
        fail ("Fetching master key timed out": the connector-secret key is created on first use), after which
        ML Commons refuses a plain re-deploy as a "Duplicate deploy model task" until the model is undeployed."""
        deadline = time.monotonic() + self.timeout
        state = None
        for attempt in range(attempts):
            if attempt:
                logger.info("model %s: %s; undeploying and deploying again", model_id, state)
                backend.request("POST", f"/_plugins/_ml/models/{model_id}/_undeploy")
                time.sleep(1.0)
            backend.request("POST", f"/_plugins/_ml/models/{model_id}/_deploy")
            while time.monotonic() < deadline:
                state = backend.request("GET", f"/_plugins/_ml/models/{model_id}").get("model_state")
                if state == "DEPLOYED":
                    return
                if state == "DEPLOY_FAILED":
                    break
                time.sleep(0.5)
            if time.monotonic() >= deadline:
                break
        raise ClusterError(
            f"model {model_id} did not deploy (state {state}); see the node log for the ML Commons error",
            status=None,
        )

    def _wait_task(self, backend: Any, task_id: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            task = backend.request("GET", f"/_plugins/_ml/tasks/{task_id}")
            if task.get("state") == "COMPLETED":
                return task
            if task.get("state") == "FAILED":
                raise ClusterError(f"ML Commons task {task_id} failed: {task.get('error')}", status=None)
            time.sleep(0.5)
        raise ClusterError(f"ML Commons task {task_id} not completed after {self.timeout:.0f}s", status=None)

    def _ensure_put(self, backend: Any, path: str, body: dict, changed: list[str]) -> None:
        try:
            current = backend.request("GET", path)
        except ClusterError as exc:
            if exc.status != 404:
                raise
            current = {}
        name = path.rsplit("/", 1)[-1]
        if current.get(name) == body:
            return
        backend.request("PUT", path, body=body)
        changed.append(path)


def _digest(body: dict) -> str:
    return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]


def _same_setting(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, list):
        return isinstance(current, list) and current == wanted
    return str(current).lower() == str(wanted).lower()
