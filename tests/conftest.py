"""Shared fixtures. Tests about the cluster talk to the REAL node started by
``echo-splade cluster start`` (``.ci/run`` starts it); they fail, not skip, when it is down."""

from __future__ import annotations

import os
import uuid

import pytest

TEST_URL = os.environ.get("ECHO_SPLADE_TEST_URL", "http://127.0.0.1:9200")


@pytest.fixture(scope="session")
def connection():
    from echo_splade.client import ConnectionConfig

    return ConnectionConfig(urls=(TEST_URL,), timeout=60)


@pytest.fixture(scope="session")
def backend(connection):
    from echo_splade.client import ClusterError, connect

    try:
        b = connect(connection)
        b.health(wait_for_status="yellow", timeout="30s")
    except ClusterError as exc:
        pytest.fail(f"the test node at {TEST_URL} is not up (start it: `echo-splade cluster start`): {exc}")
    yield b
    b.close()


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
def index_name(backend, request):
    """A unique index/alias name for one test; every index starting with it is deleted afterwards."""
    yield from _unique_index(backend, request.node.name)


@pytest.fixture(scope="module")
def module_index_name(backend, request):
    """Like ``index_name``, shared by the tests of one module (an index that is expensive to build once)."""
    yield from _unique_index(backend, request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="session")
def tiny_model():
    """The ``tiny-mistral`` encoder (tiny random Mistral with the real 32,000-token tokenizer), CPU fp32."""
    from echo_splade.encoder import EchoSpladeEncoder

    return EchoSpladeEncoder.from_pretrained("tiny-mistral", device="cpu", dtype="float32")
