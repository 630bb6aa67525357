"""`echo-splade serve` over real HTTP: the session's Ray Serve service (conftest `encoder_service`, the
bert-tiny peer); the last test stops it gracefully."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest
from _serve_helpers import MODEL, extract_path

from echo_splade.mappings import FLOAT_MIN_NORMAL, sparse_to_features

MAX_TEXTS = 8  # the limits of conftest's encoder_service
MAX_CHARS = 5000


@pytest.fixture(scope="module")
def service(encoder_service):
    return encoder_service


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def encoder():
    from echo_splade.encoder import EchoSpladeEncoder

    return EchoSpladeEncoder.from_pretrained(MODEL)


def _reference(encoder, texts, kind, top_k=None):
    """What `echo-splade ingest` (EncodeBatch) / SparseRetriever compute for these texts in-process."""
    vectors = encoder.encode(texts, kind, top_k=top_k, min_weight=FLOAT_MIN_NORMAL)
    return [sparse_to_features(encoder.tokens(v)) for v in vectors]


def _close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, w in want.items():
        # the service encodes each text in a batch with other requests' texts: padding to the batch's longest text
        # moves fp32 results by ~1e-4 relative (seen: 0.0040370 vs 0.0040374); what users get is stored with 9
        # significant bits (rank_features / sparse_vector), so that is the precision the service must match
        assert got[key] == pytest.approx(w, rel=2**-9), key


def test_health_info_and_openapi(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["model"] == MODEL
    info = client.get("/info").json()
    assert info["max_texts"] == MAX_TEXTS and info["feature_scheme"] == 1
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/encode"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"texts", "kind", "top_k", "min_weight"}
    assert {"/health", "/metrics", "/info"} <= set(spec["paths"])


@pytest.mark.parametrize("kind", ["document", "query"])
def test_encode_gives_the_ingest_feature_names_and_weights(client, encoder, kind):
    texts = ["Vitamin D supplements and bone fractures.", "what causes heart disease"]
    r = client.post("/encode", json={"texts": texts, "kind": kind})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["kind"] == kind and data["model_rev"] == encoder.model_rev
    for got, want in zip(data["response"], _reference(encoder, texts, kind)):
        _close(got, want)
    # the Elasticsearch layout carries the same vectors
    tokens = extract_path(data, "$.embeddings[*].embedding[*].token")
    weights = extract_path(data, "$.embeddings[*].embedding[*].weight")
    assert [dict(zip(t, w)) for t, w in zip(tokens, weights)] == data["response"]


def test_query_top_k_and_min_weight(client, encoder):
    r = client.post("/encode", json={"texts": ["does vitamin d prevent fractures"], "kind": "query", "top_k": 5})
    _close(r.json()["response"][0], _reference(encoder, ["does vitamin d prevent fractures"], "query", top_k=5)[0])
    assert len(r.json()["response"][0]) == 5
    r = client.post("/encode", json={"texts": ["bone density"], "min_weight": 1.0})
    assert r.json()["response"][0] and min(r.json()["response"][0].values()) >= 1.0


def test_bare_list_body_is_a_document_request(client, encoder):
    r = client.post("/encode", content=json.dumps(["heart attack symptoms"]))
    assert r.status_code == 200
    _close(r.json()["response"][0], _reference(encoder, ["heart attack symptoms"], "document")[0])


def test_long_text_is_windowed_like_ingest(client, encoder):
    text = " ".join(["the patient received vitamin d and calcium for bone health"] * 60)  # > 512 tokens
    assert len(encoder.tokenizer(text)["input_ids"]) > 512
    r = client.post("/encode", json={"texts": [text]})
    assert r.status_code == 200
    _close(r.json()["response"][0], _reference(encoder, [text], "document")[0])


@pytest.mark.parametrize(
    ("body", "status", "error_type", "says"),
    [
        ('{"texts": []}', 400, "empty_input", "empty"),
        ('{"texts": ["ok", "   "]}', 400, "empty_text", "texts[1]"),
        ('{"texts": ["ok", 3]}', 400, "not_a_string", "texts[1]"),
        ('{"texts": "x", "kind": "passage"}', 400, "invalid_request", "kind"),
        ('{"text": ["x"]}', 400, "invalid_request", "text"),
        ('{"texts": ["a"], "top_k": 0}', 400, "invalid_request", "top_k"),
        ('{"texts": ["a"', 400, "malformed_json", "JSON"),
        ("42", 400, "invalid_request", "object"),
        (json.dumps({"texts": ["t"] * (MAX_TEXTS + 1)}), 413, "too_many_texts", str(MAX_TEXTS)),
        (json.dumps({"texts": ["x" * (MAX_CHARS + 1)]}), 413, "text_too_long", str(MAX_CHARS)),
    ],
)
def test_bad_input_is_a_json_error_and_the_server_keeps_serving(client, body, status, error_type, says):
    r = client.post("/encode", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()
    assert error["status"] == status and error["error"]["type"] == error_type
    assert says in error["error"]["reason"]
    assert client.post("/encode", json={"texts": ["still serving"]}).status_code == 200


def test_unknown_route_is_a_json_404(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_are_batched_and_counted(client, service, encoder):
    before = client.get("/metrics").text
    texts = [f"query number {i} about bone fractures" for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool, httpx.Client(base_url=service.url, timeout=60) as c:
        answers = list(pool.map(lambda t: c.post("/encode", json={"texts": [t], "kind": "query"}), texts))
    assert all(a.status_code == 200 for a in answers)
    for answer, want in zip(answers, _reference(encoder, texts, "query")):
        _close(answer.json()["response"][0], want)
    after = client.get("/metrics").text
    calls = _metric(after, "echo_splade_batch_size_count") - _metric(before, "echo_splade_batch_size_count")
    batched = _metric(after, "echo_splade_batch_size_sum") - _metric(before, "echo_splade_batch_size_sum")
    assert batched == 24
    assert calls < 24, "24 concurrent single-text requests should share model calls"
    ok = 'echo_splade_requests_total{route="/encode",status="200"}'
    assert _metric(after, ok) - _metric(before, ok) == 24
    assert _metric(after, "echo_splade_request_latency_seconds_count") > _metric(
        before, "echo_splade_request_latency_seconds_count"
    )
    assert client.post("/encode", json={"texts": []}).status_code == 400
    errors = 'echo_splade_errors_total{type="empty_input"}'
    assert _metric(client.get("/metrics").text, errors) == _metric(after, errors) + 1


@pytest.mark.parametrize("kind", ["document", "query"])
def test_elasticsearch_custom_service_contract(client, service, encoder, kind):
    """What Elasticsearch's `custom` service does with the README's endpoint body: substitute ${input} with the
    JSON list of texts, POST it to the url, read tokens and weights with the json_parser paths (one list per
    text, equal lengths, numbers): the result is the vector ingest stores. (The integ-test Elasticsearch node
    has no inference module, so the cluster side cannot run here.)"""
    from echo_splade.integration.service import elasticsearch_inference_body

    body = elasticsearch_inference_body(service.url, kind)
    settings = body["service_settings"]
    assert body["service"] == "custom" and settings["url"] == service.url + "/encode"
    texts = ["heart attack warning signs", "Bone density and vitamin D."]
    request = settings["request"].replace("${input}", json.dumps(texts))
    answer = httpx.post(settings["url"], content=request, headers=settings["headers"], timeout=60)
    assert answer.status_code == 200, answer.text
    parser = settings["response"]["json_parser"]
    tokens = extract_path(answer.json(), parser["token_path"])
    weights = extract_path(answer.json(), parser["weight_path"])
    assert len(tokens) == len(weights) == len(texts)
    for toks, ws, want in zip(tokens, weights, _reference(encoder, texts, kind)):
        assert len(toks) == len(ws) and all(isinstance(w, float) for w in ws)
        _close(dict(zip(toks, ws)), want)


def test_zz_stop_lets_in_flight_requests_finish(service):
    """Last in the module: stopping the service (what SIGTERM does) drains requests already accepted."""
    texts = [" ".join([f"long document {i} about vitamins and bones"] * 110)[:MAX_CHARS] for i in range(16)]

    def post(client, text):
        response = client.post("/encode", json={"texts": [text]})
        return response.status_code, time.perf_counter()

    with concurrent.futures.ThreadPoolExecutor(16) as pool, httpx.Client(base_url=service.url, timeout=120) as c:
        futures = [pool.submit(post, c, t) for t in texts]
        time.sleep(0.5)  # the requests are in the service
        stop_called = time.perf_counter()
        service.stop()
        results = [f.result() for f in futures]
    assert [status for status, _ in results] == [200] * len(texts)
    finished_after_stop = sum(done > stop_called for _, done in results)
    assert finished_after_stop > 0, "no request was still in flight when stop() began: make the work longer"
    print(f"{finished_after_stop} of {len(texts)} requests finished after stop() began")
    with pytest.raises(httpx.TransportError):
        httpx.get(service.url + "/health", timeout=5)
