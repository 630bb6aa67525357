"""The native OpenSearch path on a real ML node: `echo-splade serve` as an ML Commons remote model.

Documents indexed through the `sparse_encoding` pipeline get the vectors `echo-splade ingest` writes, and a
`neural_sparse` query with the query model returns the ranking and scores of `SparseRetriever(mode="llm")`.
One encoder service (the bert-tiny peer) and one ingested index for the whole module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import pytest
from _serve_helpers import ML_TEST_URL, MODEL, free_port

from echo_splade.client import ClusterError, ConnectionConfig
from echo_splade.integration.service import MlCommonsSetup

CORPUS = Path(__file__).resolve().parents[1] / "integration" / "sample_corpus.jsonl"
QUERIES = Path(__file__).resolve().parents[1] / "integration" / "sample_queries.jsonl"
DOC_TOP_K = 40
#: rank_features keeps 9 significant bits of each weight
NINE_BITS = 2.0**-8


@pytest.fixture(scope="module")
def service(encoder_service):
    return encoder_service


@pytest.fixture(scope="module")
def ingested(ml_backend, module_ml_index, service, tmp_path_factory):
    """`echo-splade ingest` (IngestJob) of the sample corpus into the ML node, pruned to DOC_TOP_K terms."""
    from echo_splade.ingest import IngestJob

    started = time.perf_counter()
    report = IngestJob(
        str(CORPUS),
        module_ml_index,
        ConnectionConfig(urls=(ML_TEST_URL,)),
        model=MODEL,
        doc_top_k=DOC_TOP_K,
        actors=1,
        writers=1,
        torch_threads=1,
        batch_size=16,
        report_path=tmp_path_factory.mktemp("ingest") / "report.json",
    ).run()
    assert report.indexed == len(CORPUS.read_text().splitlines())
    print(f"ingest: {time.perf_counter() - started:.1f}s")
    return module_ml_index


@pytest.fixture(scope="module")
def module_ml_index(ml_backend, request):
    name = f"t-mlc-{int(time.time() * 1000) % 10**9}"
    yield name
    for row in ml_backend.request("GET", f"/_cat/indices/{name}*", params={"format": "json", "h": "index"}):
        ml_backend.request("DELETE", f"/{row['index']}")
    for path in (f"/_ingest/pipeline/{name}-sparse-encoding", f"/_search/pipeline/{name}-neural-sparse"):
        try:
            ml_backend.request("DELETE", path)
        except ClusterError:
            pass


@pytest.fixture(scope="module")
def wired(ml_backend, ingested, service):
    setup = MlCommonsSetup(service_url=service.url, index=ingested)
    started = time.perf_counter()
    result = setup.apply(ml_backend)
    print(f"provision --ml-commons: {time.perf_counter() - started:.1f}s")
    return setup, result


@pytest.fixture(scope="module")
def pipeline_index(ml_backend, ingested, wired):
    """The same corpus, indexed through the cluster's own `sparse_encoding` pipeline (title and text only)."""
    from echo_splade.encoder import EchoSpladeEncoder
    from echo_splade.mappings import IndexSpec, provision

    setup, _ = wired
    name = f"{ingested}-pipeline"
    provision(ml_backend, IndexSpec.from_encoder(name, EchoSpladeEncoder.from_pretrained(MODEL)))
    lines = []
    for line in CORPUS.read_text().splitlines():
        doc = json.loads(line)
        lines.append(json.dumps({"index": {"_index": name, "_id": doc["_id"]}}))
        lines.append(json.dumps({"doc_id": doc["_id"], "title": doc.get("title", ""), "text": doc["text"]}))
    response = ml_backend.request(
        "POST",
        "/_bulk",
        body="\n".join(lines) + "\n",
        params={"pipeline": setup.pipeline_name(), "refresh": "true"},
        ndjson=True,
    )
    assert not response["errors"], [i for i in response["items"] if "error" in i["index"]][:2]
    return name


def _sources(backend, index) -> dict[str, dict]:
    hits = backend.request("POST", f"/{index}/_search", body={"size": 1000, "query": {"match_all": {}}})
    return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}


def test_pruning_follows_the_ingest_run_and_a_rerun_is_a_no_op(ml_backend, wired):
    setup, result = wired
    assert result["pruning"]["top_k"] == DOC_TOP_K
    processor = ml_backend.request("GET", f"/_ingest/pipeline/{setup.pipeline_name()}")[setup.pipeline_name()]
    encoding = processor["processors"][1]["sparse_encoding"]
    assert encoding["prune_type"] == "top_k" and encoding["prune_ratio"] == DOC_TOP_K
    assert encoding["model_id"] == result["document_model_id"]
    assert encoding["batch_size"] == setup.batch_size == 8  # <= the service's max_texts (8 in these tests)
    again = setup.apply(ml_backend)
    assert again["changed"] == []
    assert again["document_model_id"] == result["document_model_id"]
    assert again["query_model_id"] == result["query_model_id"]
    for model_id in (result["document_model_id"], result["query_model_id"]):
        assert ml_backend.request("GET", f"/_plugins/_ml/models/{model_id}")["model_state"] == "DEPLOYED"


def test_pipeline_vectors_equal_ingest_vectors(ml_backend, ingested, pipeline_index):
    ingest_docs, pipeline_docs = _sources(ml_backend, ingested), _sources(ml_backend, pipeline_index)
    assert ingest_docs.keys() == pipeline_docs.keys() and len(ingest_docs) > 40
    for doc_id, ingest_doc in ingest_docs.items():
        want, got = ingest_doc["sparse"], pipeline_docs[doc_id]["sparse"]
        assert got.keys() == want.keys(), doc_id
        assert len(got) <= DOC_TOP_K
        for key, w in want.items():
            assert math.isclose(got[key], w, rel_tol=NINE_BITS), (doc_id, key, got[key], w)
        assert "_echo_splade_input" not in pipeline_docs[doc_id]


def _queries() -> list[str]:
    return [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()]


def _neural(backend, index, query, model_id=None, params=None) -> list[tuple[str, float]]:
    clause = {"query_text": query, **({"model_id": model_id} if model_id else {})}
    body = {"size": 10, "query": {"neural_sparse": {"sparse": clause}}, "_source": False}
    hits = backend.request("POST", f"/{index}/_search", body=body, params=params)["hits"]["hits"]
    return [(h["_id"], h["_score"]) for h in hits]


def _same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert len(got) == len(want) and want
    for (gid, gscore), (wid, wscore) in zip(got, want):
        assert math.isclose(gscore, wscore, rel_tol=NINE_BITS), (gid, gscore, wid, wscore)
        if gid != wid:  # only equal scores may swap places
            assert math.isclose(dict(got)[wid], wscore, rel_tol=NINE_BITS)


def test_neural_sparse_matches_sparse_retriever(ml_backend, ingested, wired):
    from echo_splade.connector import SparseRetriever

    _, result = wired
    # neural_sparse scores every query term: compare with the exhaustive search (not the two-phase default, an
    # approximation that may miss documents matching only the lighter terms)
    retriever = SparseRetriever(ml_backend.raw, ingested, encoder=MODEL, mode="llm", two_phase=None)
    for query in _queries():
        want = [(h.id, h.score) for h in retriever.search(query, k=10)]
        _same_ranking(_neural(ml_backend, ingested, query, result["query_model_id"]), want)
        # the search pipeline supplies the query model: no model_id in the query
        enriched = _neural(ml_backend, ingested, query, params={"search_pipeline": f"{ingested}-neural-sparse"})
        _same_ranking(enriched, want)


def test_dry_run_prints_every_body_without_sending(ml_backend, ingested, wired):
    setup, _ = wired
    fresh = MlCommonsSetup(service_url="http://127.0.0.1:1", index=ingested)
    plan = fresh.dry_run(ml_backend)
    paths = [p.path for p in plan]
    assert paths[0] == "/_cluster/settings" and "/_plugins/_ml/connectors/_create" in paths
    rendered = "\n".join(p.render() for p in plan)
    assert '"prune_type": "top_k"' in rendered and "http://127.0.0.1:1/encode" in rendered
    connectors = ml_backend.request(
        "POST", "/_plugins/_ml/connectors/_search", body={"query": {"match_all": {}}, "size": 100}
    )
    assert not [h for h in connectors["hits"]["hits"] if "127.0.0.1:1/" in json.dumps(h["_source"])]


def test_service_down_gives_the_cluster_error(ml_backend, ingested, pipeline_index):
    """A model whose service does not answer (nothing listens on its port): indexing through its pipeline and
    neural_sparse with it fail with the cluster's error naming the refused connection."""
    down = MlCommonsSetup(service_url=f"http://127.0.0.1:{free_port()}", index=ingested)
    setup = dataclasses.replace(down, index=f"{ingested}-down")  # its own pipeline names
    result = setup.apply(ml_backend)
    with pytest.raises(ClusterError) as indexing:
        ml_backend.request(
            "PUT",
            f"/{pipeline_index}/_doc/down",
            body={"title": "t", "text": "the service is down"},
            params={"pipeline": setup.pipeline_name()},
        )
    with pytest.raises(ClusterError) as searching:
        _neural(ml_backend, ingested, "is anyone there", result["query_model_id"])
    for error in (indexing.value, searching.value):
        print(f"service down -> HTTP {error.status}: {error}")
        assert error.status == 500
        assert "Error communicating with remote model: Connection refused" in str(error)
    for path in (f"/_ingest/pipeline/{setup.pipeline_name()}", f"/_search/pipeline/{setup.search_pipeline_name()}"):
        ml_backend.request("DELETE", path)
