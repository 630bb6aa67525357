"""BulkWriter against the real node: bounded chunks, _id overwrite, per-document rejections, unreachable cluster."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from echo_splade.client import ClusterError, wrap_client
from echo_splade.ingest import Backoff, BulkIndexError, BulkWriter


def _docs(n: int, pad: int = 0) -> list[dict]:
    return [{"_id": f"d{i}", "_source": {"n": i, "s": "x" * pad, "nested": {"tags": ["a"]}}} for i in range(n)]


def test_chunks_close_on_docs_or_bytes_and_ids_overwrite(backend, index_name):
    backend.request("PUT", f"/{index_name}", body={"settings": {"number_of_replicas": 0}})
    actions = _docs(50)
    before = copy.deepcopy(actions)
    writer = BulkWriter(backend, index_name, max_chunk_docs=7)
    results = list(writer.streaming_bulk(actions))
    assert len(results) == 50 and all(ok for ok, _ in results)
    assert [item["index"]["_id"] for _, item in results] == [f"d{i}" for i in range(50)]
    assert writer.stats["requests"] == 8  # ceil(50 / 7)
    assert actions == before  # the caller's documents are never modified

    # bytes: each action is ~ 100 + pad bytes; a 1 KB limit holds a few of them; an oversize doc goes alone
    line_bytes = sum(
        len(json.dumps(x).encode())
        for x in ({"index": {"_index": index_name, "_id": "d0"}}, {"n": 0, "s": "x" * 300, "nested": {"tags": ["a"]}})
    )
    sized = BulkWriter(backend, index_name, max_chunk_docs=1000, max_chunk_bytes=1024)
    big = {"_id": "big", "_source": {"s": "y" * 5000}}
    indexed, failed = sized.bulk(_docs(20, pad=300) + [big])
    assert (indexed, failed) == (21, [])
    per_chunk = 1024 // (line_bytes + 2)
    assert sized.stats["requests"] == -(-20 // per_chunk) + 1

    backend.refresh(index_name)
    assert backend.count(index_name) == 51  # d0..d49 and big: re-sent ids overwrote, nothing duplicated
    hit = backend.request("GET", f"/{index_name}/_doc/d3")
    assert hit["_source"]["s"] == "x" * 300  # the second write won


def test_pre_serialised_sources_and_other_op_types(backend, index_name):
    writer = BulkWriter(backend, index_name)
    ok = list(
        writer.streaming_bulk(
            [
                {"_id": "1", "_source": json.dumps({"title": "pre-serialised"})},
                {"_id": "2", "title": "plain keys"},
                {"_op_type": "create", "_id": "3", "_source": {"title": "created"}},
            ]
        )
    )
    assert all(o for o, _ in ok)
    second = list(
        writer.streaming_bulk(
            [
                {"_op_type": "update", "_id": "2", "_source": {"title": "updated"}},
                {"_op_type": "delete", "_id": "3"},
                {"_op_type": "create", "_id": "1", "_source": {"title": "conflict"}},
            ]
        )
    )
    assert [o for o, _ in second] == [True, True, False]
    assert second[2][1]["create"]["status"] == 409
    backend.refresh(index_name)
    assert backend.request("GET", f"/{index_name}/_doc/2")["_source"]["title"] == "updated"
    assert backend.count(index_name) == 2
    with pytest.raises(ValueError, match="_op_type must be one of"):
        list(writer.streaming_bulk([{"_op_type": "upsert", "_id": "x"}]))


def test_per_document_rejections_carry_the_clusters_reason(backend, index_name):
    backend.request("PUT", f"/{index_name}", body={"mappings": {"properties": {"n": {"type": "integer"}}}})
    actions = [{"_id": "good", "_source": {"n": 1}}, {"_id": "bad", "_source": {"n": "not a number"}}]
    results = dict(
        (item["index"]["_id"], (ok, item)) for ok, item in BulkWriter(backend, index_name).streaming_bulk(actions)
    )
    assert results["good"][0] is True
    ok, item = results["bad"]
    assert ok is False and item["index"]["status"] == 400
    assert item["index"]["error"]["type"] in ("mapper_parsing_exception", "document_parsing_exception")

    strict = BulkWriter(backend, index_name, raise_on_error=True)
    with pytest.raises(BulkIndexError, match="1 document") as info:
        list(strict.streaming_bulk(actions))
    assert [e["index"]["_id"] for e in info.value.errors] == ["bad"]
    assert pickle.loads(pickle.dumps(info.value)).errors == info.value.errors


def test_unreachable_cluster_is_retried_then_reported():
    from opensearchpy import OpenSearch

    dead = wrap_client(OpenSearch(hosts=["http://127.0.0.1:9"], max_retries=0, timeout=2))
    slept: list[float] = []
    writer = BulkWriter(dead, "x", max_retries=3, initial_backoff=0.1, max_backoff=0.2, sleep=slept.append, seed=1)
    with pytest.raises(ClusterError, match=r"stayed unreachable through 4 bulk request attempts") as info:
        list(writer.streaming_bulk(_docs(3)))
    assert info.value.unreachable and info.value.retryable
    assert len(slept) == 3 and writer.stats["request_retries"] == 3 and writer.stats["requests"] == 4
    # exponential, capped, jittered into [0.5, 1] x delay
    assert 0.05 <= slept[0] <= 0.1 and 0.1 <= slept[1] <= 0.2 and 0.1 <= slept[2] <= 0.2


def test_backoff_is_capped_exponential_with_jitter_and_validates():
    backoff = Backoff(max_retries=10, initial=1.0, cap=8.0, seed=3)
    delays = [backoff.delay(n) for n in range(6)]
    for n, d in enumerate(delays):
        base = min(8.0, 2.0**n)
        assert base / 2 <= d <= base
    assert len(set(delays)) == len(delays)  # jittered
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        Backoff(max_retries=-1)
    with pytest.raises(ValueError, match="initial <= cap"):
        Backoff(initial=5, cap=1)
    with pytest.raises(ValueError, match="max_chunk_docs must be >= 1"):
        BulkWriter(None, max_chunk_docs=0)
