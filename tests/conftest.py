"""Shared fixtures. Tests about the cluster talk to the REAL nodes started by
``echo-splade cluster start [--engine elasticsearch]`` (``.ci/run`` starts both); they fail, not skip,
when a node is down.

* ``backend``: the OpenSearch node (``ECHO_SPLADE_TEST_URL``).
* ``engine_backend``: parametrized over BOTH engines, OpenSearch and the Elasticsearch node
  (``ECHO_SPLADE_ES_TEST_URL``); tests of the backend contract (provisioning, scoring, the
  connector, ingest) use it and run once per engine. ``engine_connection`` is its ``ConnectionConfig``.
* ``index_name``/``module_index_name``: unique names cleaned up on the backend the test uses.

Markers follow from the fixtures a test uses (:func:`pytest_collection_modifyitems`), so they cannot
drift: a test using any of :data:`NODE_FIXTURES` is marked ``cluster`` (``-m "not cluster"`` runs
everything else, with no node up), and its Elasticsearch variant is marked ``elasticsearch`` as well.
"""

from __future__ import annotations

import os
import uuid

import pytest

TEST_URL = os.environ.get("ECHO_SPLADE_TEST_URL", "http://127.0.0.1:9200")
ES_TEST_URL = os.environ.get("ECHO_SPLADE_ES_TEST_URL", "http://127.0.0.1:9201")
#: The OpenSearch node with the ML plugins (`echo-splade cluster start --ml --port 9203`).
ML_TEST_URL = os.environ.get("ECHO_SPLADE_ML_TEST_URL", "http://127.0.0.1:9203")  # also in _serve_helpers
ENGINE_URLS = {"opensearch": TEST_URL, "elasticsearch": ES_TEST_URL}

#: Fixtures that need a real node: the shared test nodes (here), or one a test starts itself
#: (``own_home`` in test_local_node.py, ``tiny_queue_node`` in test_ingest_job.py).
NODE_FIXTURES = frozenset(
    {
        "backend",
        "connection",
        "engine_backend",
        "engine_connection",
        "index_name",
        "module_index_name",
        "engine_module_index_name",
        "es_backend",
        "own_home",
        "tiny_queue_node",
        "secure_es",
        "ml_backend",
        "three_nodes",
    }
)
#: Of those, the ones on the Elasticsearch node whatever the test's parameters.
ES_FIXTURES = frozenset({"es_backend"})


def pytest_collection_modifyitems(config, items):
    """``cluster`` on every test that uses a node fixture; ``elasticsearch`` too when that node is Elasticsearch."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if not used & NODE_FIXTURES:
            continue
        item.add_marker(pytest.mark.cluster)
        callspec = getattr(item, "callspec", None)
        on_es = (
            callspec is not None
            and callspec.params.get("engine") == "elasticsearch"
            and bool(used & {"engine_backend", "engine_connection"})
        )
        if on_es or used & ES_FIXTURES:
            item.add_marker(pytest.mark.elasticsearch)


def _config(url: str):
    from echo_splade.client import ConnectionConfig

    return ConnectionConfig(urls=(url,), timeout=60)


def _connect(config, engine: str):
    """A Backend on the node of ``engine`` at ``config``; fails the test (never skips) when it is down."""
    from echo_splade.client import ClusterError, connect

    url = config.urls[0]
    start = "echo-splade cluster start" + (" --engine elasticsearch" if engine == "elasticsearch" else "")
    try:
        b = connect(config)
        b.health(wait_for_status="yellow", timeout="30s")
    except ClusterError as exc:
        pytest.fail(f"the {engine} test node at {url} is not up (start it: `{start}`): {exc}")
    if b.engine != engine:
        b.close()
        pytest.fail(f"the node at {url} runs {b.engine}, expected {engine} (start it: `{start}`)")
    return b


@pytest.fixture(scope="session")
def connection():
    return _config(TEST_URL)


@pytest.fixture(scope="session")
def backend(connection):
    b = _connect(connection, "opensearch")
    yield b
    b.close()


@pytest.fixture(scope="session")
def ml_backend():
    """The OpenSearch node with ML Commons and neural-search (``ECHO_SPLADE_ML_TEST_URL``); fails when down."""
    b = _connect(_config(ML_TEST_URL), "opensearch")
    plugins = {p.get("component") for p in b.request("GET", "/_cat/plugins", params={"format": "json"})}
    if not {"opensearch-ml", "opensearch-neural-search"} <= plugins:
        b.close()
        pytest.fail(
            f"the node at {ML_TEST_URL} lacks the ML plugins (start it: `echo-splade cluster start --ml --port 9203`)"
        )
    yield b
    b.close()


@pytest.fixture(scope="session")
def encoder_service():
    """One `echo-splade serve` (Ray Serve, the bert-tiny peer, batches of up to 16 texts, at most 8 texts and
    5000 characters per request) for the whole session: Ray Serve takes tens of seconds to start. Its last
    user, test_serve.py's `test_zz_stop_lets_in_flight_requests_finish`, stops it."""
    from _serve_helpers import start_service

    service = start_service(max_batch_size=16, batch_wait_ms=20, max_texts=8, max_chars=5000)
    yield service
    service.stop()


@pytest.fixture(scope="session", params=["opensearch", "elasticsearch"])
def engine(request):
    """The engine a contract test runs on: each test using it runs once per engine."""
    return request.param


@pytest.fixture(scope="session")
def engine_connection(engine):
    """``ConnectionConfig`` of the real node of ``engine``."""
    return _config(ENGINE_URLS[engine])


@pytest.fixture(scope="session")
def engine_backend(engine, engine_connection):
    """A Backend on each engine's real node in turn: the test runs once on OpenSearch, once on Elasticsearch."""
    b = _connect(engine_connection, engine)
    yield b
    b.close()


def _test_backend(request):
    """The backend a test talks to: ``engine_backend`` when it runs per engine, else ``backend``."""
    return request.getfixturevalue("engine_backend" if "engine" in request.fixturenames else "backend")


def _unique_index(backend, label: str):
    """Yield a unique index/alias name built from ``label``; delete every index starting with it afterwards."""
    name = f"t-{label.lower()[:40].strip('_-')}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    yield name
    # Delete by explicit names: Elasticsearch 8+ refuses wildcard deletes by default.
    try:
        found = backend.request("GET", f"/_cat/indices/{name}*", params={"format": "json", "h": "index"})
        for row in found:
            backend.request("DELETE", f"/{row['index']}", params={"ignore_unavailable": True})
    except Exception:
        pass


@pytest.fixture
def index_name(request):
    """A unique index/alias name for one test; every index starting with it is deleted afterwards
    (on ``engine_backend``'s node when the test uses it, else on ``backend``'s)."""
    yield from _unique_index(_test_backend(request), request.node.name)


@pytest.fixture(scope="module")
def module_index_name(backend, request):
    """Like ``index_name``, shared by the tests of one module (an index that is expensive to build once)."""
    yield from _unique_index(backend, request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def engine_module_index_name(engine_backend, request):
    """``module_index_name`` per engine: one shared index name for each engine's node."""
    yield from _unique_index(engine_backend, f"{request.module.__name__.rsplit('.', 1)[-1]}-{engine_backend.engine}")


@pytest.fixture(scope="session")
def ray_session():
    """One lean local Ray for the whole test run (``_ingest_helpers.start_test_ray``): every ingest job the tests
    run in this process (``IngestJob``, the ``ingest``/``eval``/``demo`` commands through ``CliRunner``, the
    encoder service) joins it instead of starting and stopping a Ray of its own (tens of seconds each on a busy
    2-core machine). The commands run as subprocesses (test_secure_cluster.py) still start their own."""
    from _ingest_helpers import start_test_ray

    runtime = start_test_ray()
    yield runtime
    runtime.shutdown()


@pytest.fixture(scope="session")
def tiny_model():
    """The ``tiny-mistral`` encoder (tiny random Mistral with the real 32,000-token tokenizer), CPU fp32."""
    from echo_splade.encoder import EchoSpladeEncoder

    return EchoSpladeEncoder.from_pretrained("tiny-mistral", device="cpu", dtype="float32")


# -- the secured Elasticsearch node (`echo-splade cluster start --engine elasticsearch --secure`) -------------
SECURE_ES_URL = os.environ.get("ECHO_SPLADE_SECURE_ES_URL", "https://127.0.0.1:9202")


class SecureNode:
    """The secured node's URL, CA file and ``elastic`` password, and a Backend connected as ``elastic``."""

    def __init__(self, url: str, ca_certs: str, elastic_password: str, backend) -> None:
        self.url = url
        self.ca_certs = ca_certs
        self.elastic_password = elastic_password
        self.backend = backend

    def __repr__(self) -> str:
        return f"SecureNode(url={self.url!r}, ca_certs={self.ca_certs!r})"


@pytest.fixture(scope="session")
def secure_es():
    """The REAL secured Elasticsearch node at ``ECHO_SPLADE_SECURE_ES_URL`` (default https://127.0.0.1:9202).

    Its CA and ``elastic`` password are read from the node folder under ``$ECHO_SPLADE_HOME`` (or from
    ``ECHO_SPLADE_SECURE_ES_CA`` / ``ECHO_SPLADE_SECURE_ES_PASSWORD_FILE``). Fails, never skips, when it is down.
    """
    from urllib.parse import urlsplit

    from echo_splade.client import ClusterError, ConnectionConfig, connect
    from echo_splade.integration import LocalNode

    port = urlsplit(SECURE_ES_URL).port or 9202
    start = f"echo-splade cluster start --engine elasticsearch --secure --port {port}"
    security = LocalNode(engine="elasticsearch", port=port, secure=True).security
    ca = os.environ.get("ECHO_SPLADE_SECURE_ES_CA") or str(security.ca_cert)
    password_file = os.environ.get("ECHO_SPLADE_SECURE_ES_PASSWORD_FILE") or str(security.password_file)
    try:
        password = open(password_file).read().strip()
    except OSError as exc:
        pytest.fail(f"the secured Elasticsearch node's password file is missing ({exc}); start it: `{start}`")
    if not os.path.isfile(ca):
        pytest.fail(f"the secured Elasticsearch node's CA {ca} is missing; start it: `{start}`")
    config = ConnectionConfig(urls=(SECURE_ES_URL,), user="elastic", password=password, ca_certs=ca, timeout=60)
    try:
        backend = connect(config)
        backend.health(wait_for_status="yellow", timeout="30s")
    except ClusterError as exc:
        pytest.fail(f"the secured Elasticsearch node at {SECURE_ES_URL} is not up (start it: `{start}`): {exc}")
    if backend.engine != "elasticsearch":
        pytest.fail(f"the node at {SECURE_ES_URL} runs {backend.engine}, expected a secured Elasticsearch")
    yield SecureNode(SECURE_ES_URL, ca, password, backend)
    backend.close()


# -- the proxy's and the search page's tests (issue 16) ----------------------------------------------------
@pytest.fixture(scope="session")
def bert_tiny():
    """The ``echo-splade-bert-tiny`` encoder (4.4 M parameters, CPU): fast real expansions."""
    from echo_splade.encoder import EchoSpladeEncoder

    return EchoSpladeEncoder.from_pretrained("echo-splade-bert-tiny", device="cpu")


@pytest.fixture(scope="session")
def sample_vectors(bert_tiny):
    """``integration/sample_corpus.jsonl`` and its stored features under ``bert_tiny``, encoded once."""
    from _sample_index import encode_sample, sample_docs

    docs = sample_docs()
    return docs, encode_sample(bert_tiny, docs)
