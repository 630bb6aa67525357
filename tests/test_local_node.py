"""The local node that ``echo-splade cluster start`` runs (real OpenSearch from Maven Central), and its parts.

The shared node (default port, default home) is never stopped here; the lifecycle tests start their own
nodes on other ports with their own homes.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from echo_splade.cli import cli
from echo_splade.cli._cluster import _parse_settings
from echo_splade.integration import (
    DEFAULT_OPENSEARCH_VERSION,
    EngineDistribution,
    JavaHome,
    LocalNode,
    MavenArtifact,
    NodeStartError,
    default_home,
)


# ------------------------------------------------------------------ no cluster needed
def test_maven_artifact_layout():
    a = MavenArtifact("org.opensearch.plugin", "mapper-extras-client", "2.19.6")
    assert a.relative_path == "org/opensearch/plugin/mapper-extras-client/2.19.6/mapper-extras-client-2.19.6.jar"
    z = MavenArtifact("org.opensearch.distribution.integ-test-zip", "opensearch", "2.19.6", "zip")
    assert z.file_name == "opensearch-2.19.6.zip"
    assert str(z) == "org.opensearch.distribution.integ-test-zip:opensearch:2.19.6@zip"
    with pytest.raises(ValueError, match="version"):
        MavenArtifact("org.x", "y", "")


def test_missing_artifact_names_every_url_tried(tmp_path):
    missing = MavenArtifact("org.opensearch.plugin", "mapper-extras-client", "0.0.0-no-such-version")
    with pytest.raises(FileNotFoundError, match=r"0\.0\.0-no-such-version.*HTTP 404") as info:
        missing.fetch(tmp_path, timeout=20)
    assert "repo1.maven.org" in str(info.value) and "repo.maven.apache.org" in str(info.value)
    assert not any(tmp_path.rglob("*.jar"))


def test_zip_members_keep_their_mode_and_stay_inside(tmp_path):
    import zipfile

    from echo_splade.integration.node import extract_zip

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("top/bin/run")
        info.external_attr = 0o755 << 16
        zf.writestr(info, "#!/bin/sh\n")
        zf.writestr("top/README", "text")
    extract_zip(archive, tmp_path / "out")
    assert os.access(tmp_path / "out/top/bin/run", os.X_OK)
    assert (tmp_path / "out/top/README").read_text() == "text"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped", "x")
    with pytest.raises(ValueError, match="unsafe member path '../escaped'"):
        extract_zip(evil, tmp_path / "out2")
    assert not (tmp_path / "escaped").exists()


def test_distribution_modules_and_validation():
    os_dist = EngineDistribution.for_engine("opensearch")
    assert os_dist.version == DEFAULT_OPENSEARCH_VERSION
    names = {m.name: m.classname for m in os_dist.modules}
    assert names["mapper-extras"] == "org.opensearch.index.mapper.MapperExtrasPlugin"
    assert names["analysis-common"] == "org.opensearch.analysis.common.CommonAnalysisPlugin"
    assert names["lang-painless"] == "org.opensearch.painless.PainlessPlugin"
    # the install dir names the module set, so a changed set never overwrites a running install
    assert (
        os_dist.dir_name.startswith("opensearch-2.19.6-")
        and os_dist.dir_name != EngineDistribution.for_engine("opensearch", "2.19.5").dir_name
    )
    assert os_dist.java[0] <= 17 <= os_dist.java[1]
    with pytest.raises(ValueError, match="opensearch"):
        EngineDistribution.for_engine("solr")
    with pytest.raises(ValueError, match="1.x or 2.x or 3.x"):
        EngineDistribution.for_engine("opensearch", "4.0.0")
    with pytest.raises(ValueError, match="7.x or 8.x or 9.x"):
        EngineDistribution.for_engine("elasticsearch", "6.8.23")


def test_each_engine_version_gets_its_module_set_and_java_range():
    """The versions of the compat matrix (scripts/compat_matrix.sh): what differs per major/minor."""
    modules = {
        (e, v): {m.name for m in EngineDistribution.for_engine(e, v).modules}
        for e, v in (("opensearch", "1.3.20"), ("opensearch", "3.3.2"), ("elasticsearch", "7.17.29"))
    }
    # 1.3: lang-painless/analysis-common 1.3.x are not on Maven Central; the zip has no .sha1 (pinned SHA-256)
    os1 = EngineDistribution.for_engine("opensearch", "1.3.20")
    assert modules["opensearch", "1.3.20"] == {"mapper-extras"} and os1.java == (11, 17) and os1.server.sha256
    assert modules["opensearch", "3.3.2"] == {"mapper-extras", "lang-painless", "analysis-common"}
    assert EngineDistribution.for_engine("opensearch", "3.3.2").java == (21, 25)
    # lang-painless's own dependencies follow its POM: 2.11 is on antlr 4.11.1 / asm 9.6
    jars = {str(j) for m in EngineDistribution.for_engine("opensearch", "2.11.1").modules for j in m.jars}
    assert {"org.antlr:antlr4-runtime:4.11.1@jar", "org.ow2.asm:asm:9.6@jar"} <= jars
    # Elasticsearch 7.x: rank_features from the mapper-extras module, no x-pack settings (the zip has none)
    es7 = EngineDistribution.for_engine("elasticsearch", "7.17.29")
    assert modules["elasticsearch", "7.17.29"] == {"mapper-extras"} and not es7.extra_settings
    assert EngineDistribution.for_engine("elasticsearch", "9.2.0").java == (21, 25)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"engine": "solr"}, "engine must be one of"),
        ({"port": 80}, "port must be in"),
        ({"heap": "lots"}, "heap must look like"),
        ({"settings": {"bad key": 1}}, "invalid setting name"),
    ],
)
def test_local_node_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalNode(**kwargs)


def test_a_node_folder_of_another_version_is_refused_naming_both(tmp_path):
    """An older server cannot read a newer one's data and keystore (Java: 'format is too new'): say it first."""
    node = LocalNode(engine="elasticsearch", version="8.13.4", port=9439, home=tmp_path)
    node.node_dir.mkdir(parents=True)
    (node.node_dir / "echo-splade-version").write_text("elasticsearch 8.19.21\n")
    with pytest.raises(NodeStartError, match="holds the data of elasticsearch 8.19.21, not elasticsearch 8.13.4"):
        node._prepare_node_dir()


def test_parse_settings_types():
    assert _parse_settings(("thread_pool.write.queue_size=1", "a.b=true", "c=x y")) == {
        "thread_pool.write.queue_size": 1,
        "a.b": True,
        "c": "x y",
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _parse_settings(("novalue",))


def test_java_home_range_error_names_what_was_seen():
    with pytest.raises(FileNotFoundError, match=r"no Java 90\.\.99 found"):
        JavaHome.find(90, 99)
    java = JavaHome.find(11, 23)
    assert (java.path / "bin" / "java").is_file() and 11 <= java.major <= 23


def test_node_config_has_our_paths_heap_and_settings(tmp_path):
    node = LocalNode(port=9297, home=tmp_path, heap="256m", settings={"thread_pool.write.queue_size": 1})
    text = node._config_text()
    assert 'network.host: "127.0.0.1"' in text and "http.port: 9297" in text
    assert 'discovery.type: "single-node"' in text and "thread_pool.write.queue_size: 1" in text
    assert f'path.data: "{tmp_path / "nodes" / "opensearch-9297" / "data"}"' in text
    assert "cluster.routing.allocation.disk.threshold_enabled: false" in text


def test_installed_module_descriptors_and_jvm_options():
    """Uses the install that `cluster install` made (setup.sh runs it)."""
    node = LocalNode(heap="384m")
    root = node.install()
    for module in node.distribution.modules:
        lines = (root / "modules" / module.name / "plugin-descriptor.properties").read_text().splitlines()
        keys = [line.split("=", 1)[0] for line in lines]
        assert keys == [
            "name",
            "description",
            "version",
            "opensearch.version",
            "java.version",
            "classname",
            "extended.plugins",
            "has.native.controller",
        ]
        for jar in module.jars:
            assert (root / "modules" / module.name / jar.file_name).is_file()
    options = node._jvm_options().splitlines()
    assert [o for o in options if o.startswith(("-Xms", "-Xmx"))] == ["-Xms384m", "-Xmx384m"]
    assert not any("file=logs/" in o or "HeapDumpPath=data" in o for o in options), "relative paths left"
    assert any(f"file={node.node_dir / 'logs'}/gc.log" in o for o in options)


# ------------------------------------------------------------- the shared node (real)
def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _shared_node_port() -> int:
    url = os.environ.get("ECHO_SPLADE_TEST_URL", "http://127.0.0.1:9200")
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_status_reports_version_health_and_modules(backend):
    result = _cli("cluster", "status", "--port", str(_shared_node_port()), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["running"] is True and info["engine"] == "opensearch"
    assert info["version"] == backend.info["version"]["number"]
    assert info["health"] in ("green", "yellow")
    assert {"mapper-extras", "analysis-common", "lang-painless", "transport-netty4"} <= set(info["modules"])
    assert info["pid"] is not None, "the test node should be the one `echo-splade cluster start` started"
    text = _cli("cluster", "status", "--port", str(_shared_node_port()))
    assert "modules: analysis-common, lang-painless, mapper-extras, transport-netty4" in text.output


def test_start_is_idempotent_on_the_running_node(backend):
    port = str(_shared_node_port())
    before = json.loads(_cli("cluster", "status", "--port", port, "--json").output)["pid"]
    result = _cli("cluster", "start", "--port", port, "--timeout", "60")
    assert result.exit_code == 0, result.output
    assert f"already running: opensearch {backend.info['version']['number']} (pid {before})" in result.output
    assert result.output.strip().splitlines()[-1] == f"http://127.0.0.1:{port}"
    assert json.loads(_cli("cluster", "status", "--port", port, "--json").output)["pid"] == before


def test_rank_features_and_english_analysis_work(backend, index_name):
    backend.request(
        "PUT",
        f"/{index_name}",
        {
            "mappings": {
                "properties": {"sparse": {"type": "rank_features"}, "text": {"type": "text", "analyzer": "english"}}
            }
        },
    )
    assert backend.get_settings(index_name)[index_name]["settings"]["index.number_of_replicas"] == "0"
    docs = {"a": ({"cat": 2.0, "dog": 0.5}, "The cats were running"), "b": ({"dog": 3.0}, "A dog runs")}
    lines = []
    for doc_id, (sparse, text) in docs.items():
        lines += [
            json.dumps({"index": {"_index": index_name, "_id": doc_id}}),
            json.dumps({"sparse": sparse, "text": text}),
        ]
    assert not backend.bulk(lines, refresh="true")["errors"]
    query = {
        "bool": {
            "should": [
                {"rank_feature": {"field": f"sparse.{f}", "linear": {}, "boost": w}}
                for f, w in {"cat": 1.5, "dog": 2.0}.items()
            ]
        }
    }
    hits = {h["_id"]: h["_score"] for h in backend.search(index_name, {"query": query})["hits"]["hits"]}
    assert hits == pytest.approx({"a": 2.0 * 1.5 + 0.5 * 2.0, "b": 3.0 * 2.0}, rel=2**-8)
    # english stemming (analysis-common): "run" finds "running" and "runs", "cat" finds "cats"
    found = backend.search(index_name, {"query": {"match": {"text": "run cat"}}})["hits"]["hits"]
    assert {h["_id"] for h in found} == {"a", "b"}
    assert health_is_green(backend, index_name)


def test_painless_scripts_work(backend, index_name):
    backend.request("PUT", f"/{index_name}", {"mappings": {"properties": {"n": {"type": "integer"}}}})
    backend.request("PUT", f"/{index_name}/_doc/1", {"n": 3}, params={"refresh": "true"})
    backend.request(
        "POST",
        f"/{index_name}/_update/1",
        {"script": {"source": "ctx._source.n += params.k", "params": {"k": 2}}},
        params={"refresh": "true"},
    )
    query = {"script_score": {"query": {"match_all": {}}, "script": {"source": "doc['n'].value * 2 + 1"}}}
    hits = backend.search(index_name, {"query": query})["hits"]["hits"]
    assert [(h["_id"], h["_score"]) for h in hits] == [("1", 11.0)]


def health_is_green(backend, index_name) -> bool:
    return backend.health(index_name, wait_for_status="green", timeout="10s")["status"] == "green"


# ---------------------------------------------------- own nodes: lifecycle and failure
@pytest.fixture
def own_home():
    """A fresh home outside /root (as root the node user must reach it), sharing the download cache."""
    base = default_home().parent if os.geteuid() == 0 else None
    home = Path(tempfile.mkdtemp(prefix="echo-splade-test-", dir=base))
    os.chmod(home, 0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    """A currently free local port (tests may run in parallel with other checkouts' runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_own_node_lifecycle_with_settings(own_home):
    port = _free_port()

    def make() -> LocalNode:
        return LocalNode(
            port=port,
            home=own_home,
            heap="256m",
            download_dir=LocalNode().download_dir,
            settings={"thread_pool.write.queue_size": 1},
        )

    node = make()
    assert not node.is_running()
    try:
        # two concurrent starts of the same node: exactly one launches a process
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(lambda n: n.start(timeout=150), [node, make()]))
        assert results == [False, True]
        pid = node.pid
        assert pid is not None and Path(f"/proc/{pid}").exists()
        settings = _get(node.url + "/_nodes/_local/settings?flat_settings=true")
        flat = next(iter(settings["nodes"].values()))["settings"]
        assert flat["thread_pool.write.queue_size"] == "1" and flat["http.port"] == str(port)
        assert node.start(timeout=30) is False and node.pid == pid
        assert node.status()["health"] == "green"
    finally:
        stopped = node.stop()
    assert stopped is True
    assert not Path(f"/proc/{pid}").exists() or "opensearch" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert node.stop() is False and not node.pid_file.exists()
    assert node.status()["running"] is False


@pytest.mark.slow
def test_failed_start_reports_the_log_and_exits_non_zero(own_home):
    port = _free_port()
    result = CliRunner().invoke(
        cli,
        [
            "cluster",
            "start",
            "--port",
            str(port),
            "--home",
            str(own_home),
            "--heap",
            "256m",
            "--timeout",
            "120",
            "--setting",
            "no.such.setting=1",
            "--downloads",
            str(LocalNode().download_dir),
        ],
    )
    assert result.exit_code != 0
    assert "unknown setting [no.such.setting]" in result.output
    assert "exited with code" in result.output
    assert not LocalNode(port=port, home=own_home).is_running()


# ------------------------------------------ the Elasticsearch node (real, port 9201)
ES_TEST_URL = os.environ.get("ECHO_SPLADE_ES_TEST_URL", "http://127.0.0.1:9201")


@pytest.fixture(scope="module")
def es_backend():
    """The real Elasticsearch node that `echo-splade cluster start --engine elasticsearch` runs (.ci/run starts it)."""
    from echo_splade.client import ClusterError, ConnectionConfig, connect

    try:
        b = connect(ConnectionConfig(urls=(ES_TEST_URL,), timeout=60))
        b.health(wait_for_status="yellow", timeout="30s")
    except ClusterError as exc:
        pytest.fail(
            f"the Elasticsearch test node at {ES_TEST_URL} is not up "
            f"(start it: `echo-splade cluster start --engine elasticsearch`): {exc}"
        )
    yield b
    b.close()


@pytest.fixture
def es_index(es_backend):
    name = f"t-local-node-es-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    es_backend.request("DELETE", f"/{name}", params={"ignore_unavailable": True})


def test_elasticsearch_node_is_detected_and_reports_its_modules(es_backend):
    assert es_backend.engine == "elasticsearch" and es_backend.version >= (8, 11)
    port = ES_TEST_URL.rsplit(":", 1)[1].split("/")[0]
    info = json.loads(_cli("cluster", "status", "--engine", "elasticsearch", "--port", port, "--json").output)
    assert info["running"] and info["engine"] == "elasticsearch"
    assert info["version"] == ".".join(map(str, es_backend.version))
    assert {"echo-splade-root-endpoint", "x-pack-core", "transport-netty4"} <= set(info["modules"])


def test_elasticsearch_sparse_vector_scores_the_dot_product(es_backend, es_index):
    es_backend.request("PUT", f"/{es_index}", {"mappings": {"properties": {"sparse": {"type": "sparse_vector"}}}})
    docs = {"a": {"cat": 2.0, "dog": 0.5}, "b": {"dog": 3.0}}
    lines = []
    for doc_id, sparse in docs.items():
        lines += [json.dumps({"index": {"_index": es_index, "_id": doc_id}}), json.dumps({"sparse": sparse})]
    assert not es_backend.bulk(lines, refresh="true")["errors"]
    query = {"sparse_vector": {"field": "sparse", "query_vector": {"cat": 1.5, "dog": 2.0}}}
    hits = {h["_id"]: h["_score"] for h in es_backend.search(es_index, {"query": query})["hits"]["hits"]}
    assert hits == pytest.approx({"a": 2.0 * 1.5 + 0.5 * 2.0, "b": 3.0 * 2.0}, rel=2**-8)


def test_elasticsearch_node_has_no_rank_features(es_backend, es_index):
    """mapper-extras is not on Maven Central for 8.x: the sparse field on this node must be sparse_vector."""
    from echo_splade.client import ClusterError

    with pytest.raises(ClusterError, match="rank_features"):
        es_backend.request("PUT", f"/{es_index}", {"mappings": {"properties": {"s": {"type": "rank_features"}}}})
