"""Shared by the encoder-service tests: a free loopback port and a running service per test module."""

from __future__ import annotations

import os
import socket

#: the OpenSearch node with the ML plugins (conftest's ``ml_backend`` connects to it)
ML_TEST_URL = os.environ.get("ECHO_SPLADE_ML_TEST_URL", "http://127.0.0.1:9203")
MODEL = "echo-splade-bert-tiny"  # the fast MLM peer: a real trained encoder that loads in seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(**options):
    """A started ``EncoderService`` for ``MODEL`` on a free port (the caller stops it)."""
    from echo_splade.integration.service import EncoderService, ServiceConfig

    service = EncoderService(ServiceConfig(model=MODEL, port=free_port(), **options))
    service.start(timeout=300)
    return service


def extract_path(data, path: str) -> list:
    """Elasticsearch's ``MapPathExtractor`` for the paths the custom service uses: ``$.a[*].b[*].c`` gives one
    list per element of the first ``[*]`` (a list of lists), as its sparse_embedding parser reads them."""
    if not path.startswith("$."):
        raise ValueError(path)

    def walk(node, parts):
        if not parts:
            return node
        part, rest = parts[0], parts[1:]
        if part.endswith("[*]"):
            items = node[part[:-3]]
            if not isinstance(items, list):
                raise ValueError(f"{part[:-3]} is not a list")
            return [walk(item, rest) for item in items]
        return walk(node[part], rest)

    return walk(data, path[2:].split("."))
