"""`echo-splade proxy` against the REAL nodes, driven by clients nobody here wrote (opensearch-py,
elasticsearch-py, the official JavaScript client run with node): searches on configured aliases come back
sparse (or hybrid), exactly as the connector's own rewrite would search; everything else (other indices,
bulk, get, cat, HEAD, errors, large responses) is byte for byte what the node answers; failures map to
the engine's error format. The byte-preserving splice is checked without a node."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from _sample_index import build_sample_index
from _servers import ProxyProcess, ServerThread, free_port

from echo_splade.connector import Hybrid, SparseRetriever
from echo_splade.connector.proxy import (
    AliasRule,
    BodyRewriter,
    JsonSplice,
    MalformedJson,
    ProxyConfig,
    RewriteTarget,
    RewritingProxy,
)

JS_DIR = Path(__file__).resolve().parents[1] / "examples" / "js"
QUERY = "how much sleep do adults need"
APP_BODY = {
    "size": 5,
    "_source": ["title"],
    "query": {"bool": {"must": [{"multi_match": {"query": QUERY, "fields": ["title", "text"]}}]}},
}


def _ids_scores(resp) -> list[tuple[str, float]]:
    body = resp.body if hasattr(resp, "body") and not isinstance(resp, dict) else resp
    return [(h["_id"], round(float(h["_score"]), 4)) for h in body["hits"]["hits"]]


# -- no node: the splice keeps every byte it does not rewrite --------------------------------------------------
def test_splice_changes_only_the_replaced_clause():
    text = '{ "size" :10.50,\n  "query": {"bool": {"must": [ {"match": {"text": "caf\\u00e9 \\"x\\""}} ],\n "filter": [{"range": {"n": {"gte": 1e2}}}]}},\n "aggs": {"t": {"terms": {"field": "tag"}}} }'
    splice = JsonSplice(text)
    new = copy.deepcopy(splice.value)
    new["query"]["bool"]["must"][0] = {"rank_feature": {"field": "sparse.x", "boost": 1.5, "linear": {}}}
    out = splice.apply(new)
    assert json.loads(out) == new
    start = text.index('{"match"')
    end = text.index("} ],") + 1
    assert (
        out[:start] == text[:start] and out[-len(text[end:]) :] == text[end:]
    )  # '10.50', '1e2', escapes, spacing kept
    assert splice.apply(splice.value) == text


@pytest.mark.parametrize("text", ['{"query": ', "[1, 2", '{"a": tru}', "", "\x00"])
def test_splice_refuses_malformed_json(text):
    with pytest.raises(MalformedJson):
        JsonSplice(text)


def test_config_errors_name_the_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="mode of alias 'docs' must be one of"):
        AliasRule("docs", mode="tokens")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sparse_weight"):
        AliasRule("docs", sparse_weight=1.5)
    with pytest.raises(ValueError, match="on_encoder_error must be one of"):
        ProxyConfig(upstreams=("http://127.0.0.1:9200",), on_encoder_error="retry")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one upstream"):
        ProxyConfig(upstreams=())
    cfg = tmp_path / "proxy.toml"
    cfg.write_text(
        'upstream = "http://127.0.0.1:9200"\n[defaults]\nmode = "inference-free"\n[alias.docs]\nhybrid = true\nsparse_weigth = 0.3\n'
    )
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sparse_weigth'\] for alias 'docs'"):
        ProxyConfig.read_file(cfg)
    cfg.write_text(
        'upstream = "http://127.0.0.1:9200"\non_encoder_error = "passthrough"\n[defaults]\nmode = "inference-free"\n[alias.docs]\nhybrid = true\n[alias.faq]\n'
    )
    values = ProxyConfig.read_file(cfg)
    config = ProxyConfig(**values)
    assert config.upstreams == ("http://127.0.0.1:9200",) and config.on_encoder_error == "passthrough"
    assert [(a.name, a.mode, a.hybrid) for a in config.aliases] == [
        ("docs", "inference-free", True),
        ("faq", "inference-free", False),
    ]


# -- the real OpenSearch node ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proxy_started(backend, module_index_name, tmp_path_factory):
    """`echo-splade proxy -vv` (a subprocess) on the OpenSearch node: NAME sparse, NAME-hybrid hybrid, both
    inference-free, configured by a file plus flags. Started first: its start-up overlaps building the index."""
    from conftest import TEST_URL

    tmp = tmp_path_factory.mktemp("proxy")
    config = tmp / "proxy.toml"
    name = module_index_name
    config.write_text(
        f'[defaults]\nmode = "inference-free"\nfields = ["text"]\n[alias."{name}-hybrid"]\nhybrid = true\n'
    )
    p = ProxyProcess(
        ["-vv", "proxy", "--upstream", TEST_URL, "--config", str(config), "--alias", name, "--mode", "inference-free"],
        tmp / "proxy.log",
    )
    yield p
    p.stop()


@pytest.fixture(scope="module")
def sample(backend, proxy_started, bert_tiny, sample_vectors, module_index_name):
    """The sample corpus under ``bert_tiny`` behind the alias ``NAME`` and a second alias ``NAME-hybrid``; an
    unrelated BM25 index ``NAME-other``."""
    docs, features = sample_vectors
    build_sample_index(backend, module_index_name, bert_tiny, docs, features)
    backend.update_aliases([{"add": {"index": f"{module_index_name}-v1", "alias": f"{module_index_name}-hybrid"}}])
    other = f"{module_index_name}-other"
    lines = []
    for d in docs[:10]:
        lines += [
            json.dumps({"index": {"_index": other, "_id": d["_id"]}}),
            json.dumps({"title": d["title"], "text": d["text"]}),
        ]
    backend.bulk(lines, refresh="true")
    return module_index_name


@pytest.fixture(scope="module")
def proxy(sample, proxy_started):
    return proxy_started.wait()


@pytest.fixture(scope="module")
def direct_client():
    from conftest import TEST_URL
    from opensearchpy import OpenSearch

    return OpenSearch(TEST_URL, timeout=60)


@pytest.fixture(scope="module")
def proxied_client(proxy):
    from opensearchpy import OpenSearch

    return OpenSearch(proxy.url, timeout=60)


def _expected(backend, alias, body, hybrid=False, encoder=None, mode="inference-free", search_alias=None):
    """What the connector's own rewrite finds, searched directly on the node."""
    r = SparseRetriever(backend, alias, encoder=encoder, mode=mode)
    rewritten = r.rewrite(body, field="text", hybrid=Hybrid() if hybrid else False)
    return backend.search(search_alias or alias, rewritten)


def test_opensearch_py_app_code_gets_sparse_and_hybrid_results(backend, sample, direct_client, proxied_client):
    # the app's code, unchanged: the same call against the node and against the proxy
    def app(client, index):
        return client.search(index=index, body=copy.deepcopy(APP_BODY))

    bm25 = _ids_scores(app(direct_client, sample))
    sparse = _ids_scores(app(proxied_client, sample))
    hybrid = _ids_scores(app(proxied_client, f"{sample}-hybrid"))
    assert sparse == _ids_scores(_expected(backend, sample, APP_BODY))
    assert hybrid == _ids_scores(_expected(backend, sample, APP_BODY, hybrid=True, search_alias=f"{sample}-hybrid"))
    assert sparse != bm25 and hybrid != bm25 and hybrid != sparse
    assert sparse[0][0] == "health-sleep"
    # not a configured alias: BM25, exactly as without the proxy
    assert _ids_scores(app(proxied_client, f"{sample}-v1")) == _ids_scores(app(direct_client, f"{sample}-v1"))


def test_rewrite_header_msearch_and_count(backend, sample, proxy):
    with httpx.Client(base_url=proxy.url, timeout=60) as c:
        resp = c.post(f"/{sample}/_search", json=APP_BODY)
        assert resp.headers["x-echo-splade-rewrite"] == "rewritten"
        other = c.post(f"/{sample}-other/_search", json=APP_BODY)
        assert "x-echo-splade-rewrite" not in other.headers
        lines = [{"index": sample}, APP_BODY, {"index": f"{sample}-other"}, APP_BODY, {}, APP_BODY]
        nd = "".join(json.dumps(x) + "\n" for x in lines)
        ms = c.post(f"/{sample}-hybrid/_msearch", content=nd, headers={"content-type": "application/x-ndjson"})
        assert ms.status_code == 200 and ms.headers["x-echo-splade-rewrite"] == "rewritten"
        got = [_ids_scores(r) for r in ms.json()["responses"]]
        count_body = {"query": {"match": {"text": QUERY}}}
        count = c.post(f"/{sample}/_count", json=count_body).json()["count"]
    assert got[0] == _ids_scores(_expected(backend, sample, APP_BODY))
    assert got[1] == _ids_scores(backend.search(f"{sample}-other", APP_BODY))
    assert got[2] == _ids_scores(_expected(backend, sample, APP_BODY, hybrid=True))  # default index of the path
    direct_count = backend.count(sample, _expected_body(backend, sample, count_body)["query"])
    assert count == direct_count and count != backend.count(sample, count_body["query"])


def _expected_body(backend, alias, body):
    return SparseRetriever(backend, alias, mode="inference-free").rewrite(body, field="text")


def test_other_apis_behave_exactly_as_without_the_proxy(backend, sample, proxy, direct_client, proxied_client):
    """bulk, get, mget, cat, HEAD, 404 and a large (streamed, gzip-compressed) response: the same bytes."""
    from opensearchpy import NotFoundError

    for client, name in ((direct_client, f"{sample}-w-direct"), (proxied_client, f"{sample}-w-proxy")):
        ops = [{"index": {"_index": name, "_id": "a"}}, {"t": "x"}, {"index": {"_index": name, "_id": "b"}}, {"t": "y"}]
        resp = client.bulk(body=ops, refresh="true")
        assert not resp["errors"] and [i["index"]["result"] for i in resp["items"]] == ["created", "created"]
        assert client.get(index=name, id="b")["_source"] == {"t": "y"}
        assert client.indices.exists(index=name) is True and client.indices.exists(index=name + "-nope") is False
        with pytest.raises(NotFoundError):
            client.get(index=name, id="zzz")
        assert [r["docs.count"] for r in client.cat.indices(index=name, format="json")] == ["2"]
    ids = [d for d, _ in _ids_scores(backend.search(sample, {"size": 52, "query": {"match_all": {}}}))]
    body = json.dumps({"ids": ids})
    for accept in ("identity", "gzip"):
        headers = {"accept-encoding": accept, "content-type": "application/json"}
        direct_headers, direct_raw = _raw_post(f"{backend_url()}/{sample}/_mget", body, headers)
        proxied_headers, proxied_raw = _raw_post(f"{proxy.url}/{sample}/_mget", body, headers)
        assert proxied_headers == direct_headers
        if accept == "gzip":
            assert proxied_headers.get("content-encoding") == "gzip"
            assert gzip.decompress(proxied_raw) == gzip.decompress(direct_raw)
        else:
            assert proxied_raw == direct_raw and len(proxied_raw) > 100_000  # every stored sparse vector
    bad = '{"query": {"match": {"text": "x"}'  # malformed: the node's own parse error, as without the proxy
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    direct_headers, direct_raw = _raw_post(f"{backend_url()}/{sample}/_search", bad, headers)
    proxied_headers, proxied_raw = _raw_post(f"{proxy.url}/{sample}/_search", bad, headers)
    assert direct_headers["status"] == 400 and proxied_raw == direct_raw
    assert proxied_headers.pop("x-echo-splade-rewrite") == "passthrough; malformed body"
    assert proxied_headers == direct_headers


def _raw_post(url, body, headers) -> tuple[dict, bytes]:
    """Status and headers (as a dict) and the body exactly as it came (not decompressed)."""
    with httpx.stream("POST", url, content=body, headers=headers, timeout=60) as r:
        return {"status": r.status_code, **r.headers}, b"".join(r.iter_raw())


def backend_url() -> str:
    from conftest import TEST_URL

    return TEST_URL.rstrip("/")


def test_credentials_pass_through_and_are_never_logged(sample, proxy, tmp_path):
    secret_user, secret = "proxy-user-7c1f", "Pr0xy-S3cret-d41d8cd9"
    api_key = "QXBpS2V5LTk5MWQ0YjJh"
    with httpx.Client(base_url=proxy.url, timeout=60) as c:
        r1 = c.post(f"/{sample}/_search", json=APP_BODY, auth=(secret_user, secret))
        r2 = c.get("/_cat/health", headers={"authorization": f"ApiKey {api_key}"})
    assert r1.status_code == 200 and r2.status_code == 200  # the unsecured node ignores credentials
    log = proxy.log.read_text(errors="replace")
    assert "echo-splade proxy on" in log
    for s in (secret, api_key, secret_user):
        assert s not in log


def _pass_through(*upstreams, **config):
    proxy = RewritingProxy(ProxyConfig(upstreams=upstreams, **config), BodyRewriter(None, []))
    return ServerThread(proxy.app, **proxy.server_options())


def test_upstream_down_is_a_502_in_the_engines_format(backend):
    """``backend``: the second upstream is the real test node (and the fixture marks the test ``cluster``)."""
    from conftest import TEST_URL

    dead = f"http://127.0.0.1:{free_port()}"
    with _pass_through(dead) as alone, _pass_through(dead, TEST_URL) as both:
        r = httpx.get(alone.url + "/_cluster/health", timeout=30)
        assert r.status_code == 502
        err = r.json()
        assert err["status"] == 502 and err["error"]["type"] == "connect_exception"
        assert err["error"]["root_cause"][0]["type"] == "connect_exception" and dead in err["error"]["reason"]
        # with a second upstream the request goes there (each upstream in turn)
        assert all(httpx.get(both.url + "/_cluster/health", timeout=30).status_code == 200 for _ in range(3))


class _BrokenEncoder:
    """An encoder service that is down: what a remote encoder client raises when it cannot reach it."""

    model_rev = "unreachable"

    def encode_queries(self, texts, top_k=None, min_weight=None):
        raise ConnectionError("encoder service at http://127.0.0.1:1 refused the connection")

    def tokens(self, vector):
        raise ConnectionError("unreachable")


@pytest.mark.parametrize("policy", ["fail", "passthrough"])
def test_encoder_down(backend, sample, direct_client, policy):
    from conftest import TEST_URL
    from opensearchpy import OpenSearch, TransportError

    config = ProxyConfig(
        upstreams=(TEST_URL,), aliases=(AliasRule(sample, mode="llm", model="remote"),), on_encoder_error=policy
    )
    rewriter = BodyRewriter(backend, config.aliases, encoder_factory=lambda name: _BrokenEncoder())
    proxy = RewritingProxy(config, rewriter)
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        r = httpx.post(f"{server.url}/{sample}/_search", json=APP_BODY, timeout=60)
        if policy == "fail":
            assert r.status_code == 503
            assert r.json()["error"]["type"] == "echo_splade_encoder_unavailable" and r.json()["status"] == 503
            with pytest.raises(TransportError) as info:
                OpenSearch(server.url).search(index=sample, body=APP_BODY)
            assert info.value.status_code == 503
        else:
            assert r.status_code == 200 and r.headers["x-echo-splade-rewrite"] == "passthrough; encoder unavailable"
            assert _ids_scores(r.json()) == _ids_scores(direct_client.search(index=sample, body=APP_BODY))


def test_llm_mode_with_the_in_process_encoder(backend, sample, bert_tiny):
    """llm mode: the encoder loaded once in the proxy's process; the proxied app search equals the
    connector's rewrite encoded with the same model."""
    from conftest import TEST_URL
    from opensearchpy import OpenSearch

    config = ProxyConfig(upstreams=(TEST_URL,), aliases=(AliasRule(sample, mode="llm"),))
    loaded = []
    rewriter = BodyRewriter(backend, config.aliases, encoder_factory=lambda name: loaded.append(name) or bert_tiny)
    proxy = RewritingProxy(config, rewriter)
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        client = OpenSearch(server.url, timeout=60)
        got = [_ids_scores(client.search(index=sample, body=APP_BODY)) for _ in range(2)]
    assert loaded == ["echo-splade-bert-tiny"]  # the model named in the index _meta, loaded once
    assert got[0] == got[1] == _ids_scores(_expected(backend, sample, APP_BODY, encoder=bert_tiny, mode="llm"))


def test_rewritten_body_keeps_every_other_byte(backend, sample):
    rewriter = BodyRewriter(backend, [AliasRule(sample, mode="inference-free")])
    raw = (
        '{"from":0 , "size": 3,"_source": {"includes": ["title"]},\n'
        '"query": {"bool": {"must": [{"match": {"text": {"query": "'
        + QUERY
        + '"}}}], "filter": [{"match": {"text": "sleep"}}]}},\n'
        '"aggs": {"n": {"value_count": {"field": "_id"}}}, "highlight": {"fields": {"text": {}}}}'
    ).encode()
    out = rewriter.rewrite(RewriteTarget("search", sample), raw)
    assert out.status == "rewritten"
    start, end = raw.index(b'{"match": {"text": {"query"'), raw.index(b'}}}], "filter"') + 3
    assert out.body[:start] == raw[:start] and out.body.endswith(raw[end:])  # the filter match stays lexical
    assert json.loads(out.body) == _expected_body(backend, sample, json.loads(raw))
    # not a JSON object: sent as it came
    assert rewriter.rewrite(RewriteTarget("search", sample), b"[1]").body == b"[1]"


def test_listening_on_tls(backend, sample, tmp_path):
    from conftest import TEST_URL
    from opensearchpy import OpenSearch

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    cert, key = tmp_path / "proxy.crt", tmp_path / "proxy.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    rules = (AliasRule(sample, mode="inference-free"),)
    proxy = RewritingProxy(
        ProxyConfig(upstreams=(TEST_URL,), aliases=rules, certfile=str(cert), keyfile=str(key)),
        BodyRewriter(backend, rules),
    )
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        assert server.url.startswith("https://")
        client = OpenSearch(server.url, ca_certs=str(cert), timeout=60)
        assert _ids_scores(client.search(index=sample, body=APP_BODY)) == _ids_scores(
            _expected(backend, sample, APP_BODY)
        )
        assert client.info()["version"]["distribution"] == "opensearch"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url)  # a client without the proxy's CA refuses it


# -- the official JavaScript client, run with node -------------------------------------------------------------
def _node(script_args, url, index=None):
    if shutil.which("node") is None or not (JS_DIR / "node_modules" / "@opensearch-project" / "opensearch").is_dir():
        pytest.fail("node and the JavaScript client are needed: run `bash scripts/setup.sh` (npm ci in examples/js)")
    env = {"PATH": __import__("os").environ["PATH"], "SEARCH_URL": url, **({"SEARCH_INDEX": index} if index else {})}
    out = subprocess.run(
        ["node", "search_app.mjs", *script_args], cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_javascript_client_through_the_proxy(backend, sample, proxy, proxied_client):
    via_proxy = _node(["search", QUERY], proxy.url, sample)
    direct = _node(["search", QUERY], backend_url(), sample)
    assert via_proxy["rewrite"] == "rewritten" and direct["rewrite"] is None
    expected = _ids_scores(_expected(backend, sample, APP_BODY))
    assert [(h["id"], round(h["score"], 4)) for h in via_proxy["hits"]] == expected
    assert [h["id"] for h in direct["hits"]] != [h["id"] for h in via_proxy["hits"]]
    assert _node(["other", f"{sample}-js"], proxy.url) == _node(["other", f"{sample}-js"], backend_url())


# -- elasticsearch-py on the real Elasticsearch node (sparse_vector field) --------------------------------------
@pytest.fixture(scope="module")
def es_backend():
    """The real Elasticsearch node (``ECHO_SPLADE_ES_TEST_URL``); fails, never skips, when it is down."""
    from conftest import ES_TEST_URL

    from echo_splade.client import ClusterError, ConnectionConfig, connect

    try:
        b = connect(ConnectionConfig(urls=(ES_TEST_URL,), timeout=60))
        b.health(wait_for_status="yellow", timeout="30s")
    except ClusterError as exc:
        pytest.fail(
            f"the Elasticsearch test node at {ES_TEST_URL} is not up (`echo-splade cluster start --engine elasticsearch`): {exc}"
        )
    yield b
    b.close()


@pytest.fixture(scope="module")
def es_sample(es_backend, bert_tiny, sample_vectors):
    name = f"t-proxy-es-{uuid.uuid4().hex[:8]}"
    docs, features = sample_vectors
    build_sample_index(es_backend, name, bert_tiny, docs, features)
    yield name
    for row in es_backend.request("GET", f"/_cat/indices/{name}*", params={"format": "json", "h": "index"}):
        es_backend.request("DELETE", f"/{row['index']}", params={"ignore_unavailable": True})


def test_elasticsearch_py_through_the_proxy(es_backend, es_sample):
    from conftest import ES_TEST_URL
    from elasticsearch import Elasticsearch, NotFoundError

    rules = (
        AliasRule(es_sample, mode="inference-free"),
        AliasRule(f"{es_sample}-hybrid", mode="inference-free", hybrid=True),
    )
    es_backend.update_aliases([{"add": {"index": f"{es_sample}-v1", "alias": f"{es_sample}-hybrid"}}])
    proxy = RewritingProxy(ProxyConfig(upstreams=(ES_TEST_URL,), aliases=rules), BodyRewriter(es_backend, rules))
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        direct, proxied = Elasticsearch(ES_TEST_URL, request_timeout=60), Elasticsearch(server.url, request_timeout=60)
        query = copy.deepcopy(APP_BODY["query"])
        bm25 = _ids_scores(direct.search(index=es_sample, query=query, size=5))
        sparse = _ids_scores(proxied.search(index=es_sample, query=query, size=5))
        hybrid = _ids_scores(proxied.search(index=f"{es_sample}-hybrid", query=query, size=5))
        assert sparse == _ids_scores(_expected(es_backend, es_sample, {"query": query, "size": 5}))
        assert hybrid == _ids_scores(_expected(es_backend, es_sample, {"query": query, "size": 5}, hybrid=True))
        assert sparse != bm25 and hybrid != bm25 and sparse[0][0] == "health-sleep"
        assert "sparse_vector" in json.dumps(_expected_body(es_backend, es_sample, APP_BODY))  # the engine's own query
        for client, name in ((direct, f"{es_sample}-w-direct"), (proxied, f"{es_sample}-w-proxy")):
            ops = [
                {"index": {"_index": name, "_id": "a"}},
                {"t": "x"},
                {"index": {"_index": name, "_id": "b"}},
                {"t": "y"},
            ]
            assert not client.bulk(operations=ops, refresh=True)["errors"]
            assert client.get(index=name, id="b")["_source"] == {"t": "y"}
            assert client.indices.exists(index=name) and not client.indices.exists(index=name + "-nope")
            with pytest.raises(NotFoundError):
                client.get(index=name, id="zzz")
            assert [r["docs.count"] for r in client.cat.indices(index=name, format="json")] == ["2"]
            assert client.count(index=name, query={"match": {"t": "x"}})["count"] == 1
        ms = proxied.msearch(
            searches=[
                {"index": es_sample},
                {"query": query, "size": 5},
                {"index": f"{es_sample}-w-proxy"},
                {"query": {"match_all": {}}},
            ]
        )
        assert _ids_scores(ms["responses"][0]) == sparse and len(ms["responses"][1]["hits"]["hits"]) == 2
    # two phases on Elasticsearch: a rescore of sparse_vector queries, the exhaustive hits and scores
    es_backend.update_aliases([{"add": {"index": f"{es_sample}-v1", "alias": f"{es_sample}-2p"}}])
    rule = AliasRule(f"{es_sample}-2p", mode="inference-free", two_phase={"prune_ratio": 0.6})
    proxy = RewritingProxy(ProxyConfig(upstreams=(ES_TEST_URL,), aliases=(rule,)), BodyRewriter(es_backend, [rule]))
    body = {"query": query, "size": 2}
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        r = httpx.post(f"{server.url}/{es_sample}-2p/_search", json=body, timeout=60)
    assert r.status_code == 200 and r.headers["x-echo-splade-rewrite"] == "rewritten; two-phase"
    assert _ids_scores(r.json()) == _ids_scores(_expected(es_backend, es_sample, body))


@pytest.mark.secure
def test_credentials_and_tls_to_a_secured_upstream(secure_es, caplog):
    """The secured Elasticsearch node behind the proxy (TLS upstream with --ca-certs): the client's own
    credentials decide, exactly as without the proxy; no secret reaches a log record."""
    import logging

    from elasticsearch import AuthenticationException, Elasticsearch

    caplog.set_level(logging.DEBUG)
    proxy = RewritingProxy(ProxyConfig(upstreams=(secure_es.url,), ca_certs=secure_es.ca_certs), BodyRewriter(None, []))
    wrong = "Wr0ng-Pr0xy-Pa55word-e3b0c442"
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        good = Elasticsearch(server.url, basic_auth=("elastic", secure_es.elastic_password), request_timeout=60)
        assert (
            good.info()["version"]["number"]
            == Elasticsearch(
                secure_es.url, basic_auth=("elastic", secure_es.elastic_password), ca_certs=secure_es.ca_certs
            ).info()["version"]["number"]
        )
        assert good.security.authenticate()["username"] == "elastic"
        for client in (
            Elasticsearch(server.url, basic_auth=("elastic", wrong), request_timeout=60),
            Elasticsearch(server.url, request_timeout=60),
        ):
            with pytest.raises(AuthenticationException) as info:
                client.info()
            assert info.value.meta.status == 401
    records = "\n".join(r.getMessage() for r in caplog.records)
    assert secure_es.elastic_password not in records and wrong not in records


def test_gzip_compressed_request_bodies_are_rewritten_too(backend, sample, proxy):
    """opensearch-py's ``http_compress=True`` sends gzip-compressed bodies: rewritten all the same."""
    from opensearchpy import OpenSearch

    client = OpenSearch(proxy.url, http_compress=True, timeout=60)
    assert _ids_scores(client.search(index=sample, body=copy.deepcopy(APP_BODY))) == _ids_scores(
        _expected(backend, sample, APP_BODY)
    )
    r = httpx.post(
        f"{proxy.url}/{sample}/_search",
        content=gzip.compress(json.dumps(APP_BODY).encode()),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["x-echo-splade-rewrite"] == "rewritten"


# -- two-phase searches through the proxy ----------------------------------------------------------------------
def _terms(query) -> int:
    """How many sparse query terms (``rank_feature`` clauses: the OpenSearch node) a query holds."""
    return json.dumps(query).count('"rank_feature"')


def test_two_phase_bodies_only_where_the_hits_stay_those_of_exhaustive_scoring(backend, sample, bert_tiny):
    """An ``llm`` alias searches in two phases by default: phase 1 with the heavy terms, a rescore of the window
    with the whole exhaustive query; bodies that sort, aggregate, collapse, rescore or page by scroll, size 0,
    ``_count`` and ``two_phase = false`` stay exhaustive."""
    rules = [AliasRule(sample, mode="llm", model="echo-splade-bert-tiny")]
    rewriter = BodyRewriter(backend, rules, encoder_factory=lambda name: bert_tiny)
    body = {
        "size": 3,
        "from": 1,
        "query": {"bool": {"must": [{"match": {"text": QUERY}}], "filter": [{"match_all": {}}]}},
    }
    raw = json.dumps(body).encode()
    out = rewriter.rewrite(RewriteTarget("search", sample), raw)
    exhaustive = SparseRetriever(backend, sample, encoder=bert_tiny).rewrite(body, field="text")
    assert out.status == "rewritten; two-phase" and out.sizes == (3,)
    assert json.loads(out.exhaustive) == exhaustive
    phased = json.loads(out.body)
    assert out.body.startswith(b'{"size": 3, "from": 1, "query": ')  # the untouched bytes stay
    assert phased["rescore"]["window_size"] == 20  # (from + size) x window_factor 5
    assert phased["rescore"]["query"] == {
        "rescore_query": exhaustive["query"],
        "query_weight": 0.0,
        "rescore_query_weight": 1.0,
    }
    assert 0 < _terms(phased["query"]) < _terms(exhaustive["query"])
    assert phased["query"]["bool"]["filter"] == [{"match_all": {}}] and phased["size"] == 3 and phased["from"] == 1
    target = RewriteTarget("search", sample)
    for other, params in (
        ({**body, "sort": [{"_id": "asc"}]}, {}),
        ({**body, "aggs": {"n": {"value_count": {"field": "_id"}}}}, {}),
        ({**body, "min_score": 1.0}, {}),
        ({**body, "size": 0}, {}),
        (body, {"scroll": "1m"}),
        (body, {"filter_path": "hits.hits._id"}),
    ):
        done = rewriter.rewrite(RewriteTarget("search", sample, params), json.dumps(other).encode())
        assert done.status == "rewritten" and done.exhaustive is None, (sorted(other), params)
    count = rewriter.rewrite(RewriteTarget("count", sample), json.dumps({"query": body["query"]}).encode())
    assert count.status == "rewritten" and count.exhaustive is None
    off = BodyRewriter(backend, [AliasRule(sample, mode="llm", two_phase=False)], encoder_factory=lambda n: bert_tiny)
    assert off.rewrite(target, raw).status == "rewritten"
    # _msearch: the two-phase bodies beside the exhaustive ones, one size per search
    lines = [{"index": sample}, body, {"index": f"{sample}-other"}, body, {}, {**body, "sort": ["_doc"]}]
    nd = "".join(json.dumps(x) + "\n" for x in lines).encode()
    ms = rewriter.rewrite(RewriteTarget("msearch", sample), nd)
    assert ms.status == "rewritten; two-phase" and ms.msearch and ms.sizes == (3, None, None)
    assert [json.loads(x) for x in ms.exhaustive.split(b"\n")[1:6:2]] == [
        exhaustive,
        body,
        {**exhaustive, "sort": ["_doc"]},
    ]
    # a table of options in the config file
    with pytest.raises(ValueError, match="prune_ratio must be in"):
        AliasRule.from_dict("a", {"two_phase": {"prune_ratio": 2}})
    with pytest.raises(ValueError, match="unknown two_phase option"):
        AliasRule.from_dict("a", {"two_phase": {"ratio": 0.5}})
    rule = AliasRule.from_dict("a", {"two_phase": {"prune_ratio": 0.6}, "hybrid": True})
    assert rule.plan.prune_ratio == 0.6 and rule.plan.window_factor == 5.0
    assert AliasRule.from_dict("a", {k: v for k, v in rule.to_dict().items() if k != "name"}) == rule
    assert AliasRule("a", hybrid=True).plan is None and AliasRule("a", mode="inference-free").plan is None


def test_two_phase_through_the_proxy_returns_the_exhaustive_hits(backend, sample, bert_tiny):
    """Through the proxy, on the real node: the two-phase search answers with the hits and scores of the
    exhaustive body (phase 1 filled its window); where phase 1 matches fewer documents than asked for, the
    proxy sends the exhaustive body instead (header says so), so no hit is lost; gzip answers are read too."""
    from conftest import TEST_URL
    from opensearchpy import OpenSearch

    rules = (AliasRule(sample, mode="llm", model="echo-splade-bert-tiny"),)
    rewriter = BodyRewriter(backend, rules, encoder_factory=lambda name: bert_tiny)
    proxy = RewritingProxy(ProxyConfig(upstreams=(TEST_URL,), aliases=rules), rewriter)
    exhaustive = SparseRetriever(backend, sample, encoder=bert_tiny)
    # the fallback matters: phase 1 alone would return fewer of the 52 documents than exhaustive scoring does
    wide = {"size": 60, "query": {"match": {"text": QUERY}}}
    phase_1_alone = backend.search(
        sample, json.loads(rewriter.rewrite(RewriteTarget("search", sample), json.dumps(wide).encode()).body)
    )
    all_hits = backend.search(sample, exhaustive.rewrite(wide, field="text"))
    assert len(phase_1_alone["hits"]["hits"]) < len(all_hits["hits"]["hits"])
    with ServerThread(proxy.app, **proxy.server_options()) as server:
        for size, status in ((3, "rewritten; two-phase"), (60, "rewritten; phase 1 fell short, exhaustive")):
            body = {"size": size, "query": {"match": {"text": QUERY}}}
            for encoding in ("identity", "gzip"):
                r = httpx.post(
                    f"{server.url}/{sample}/_search", json=body, headers={"accept-encoding": encoding}, timeout=60
                )
                assert r.status_code == 200 and r.headers["x-echo-splade-rewrite"] == status, (size, encoding)
                want = backend.search(sample, exhaustive.rewrite(body, field="text"))
                assert _ids_scores(r.json()) == _ids_scores(want), (size, encoding)
        client = OpenSearch(server.url, timeout=60)
        ms = client.msearch(body=[{"index": sample}, {"size": 3, "query": {"match": {"text": QUERY}}}])
        assert _ids_scores(ms["responses"][0]) == _ids_scores(
            backend.search(sample, exhaustive.rewrite({"size": 3, "query": {"match": {"text": QUERY}}}, field="text"))
        )
