"""Against the REAL secured Elasticsearch node (`echo-splade cluster start --engine elasticsearch --secure`):
least-privilege roles for every command, basic auth and API keys, TLS errors, and no secret in any byte written.

The commands run as subprocesses (as a user runs them), with distinctive secrets; every output, log, report,
dead-letter file and the Ray session files (under a Ray temp dir set here) are kept and grepped at the end.
The tests of this module run in file order and share one index (``secure-t-<tag>``, covered by the roles'
``secure-*`` pattern).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.secure, pytest.mark.elasticsearch]

SAMPLE = Path(__file__).resolve().parent.parent / "integration"
FAST = ["--model", "tiny-mistral", "--max-length", "64", "--truncate", "--threads", "1"]


class Transcript:
    """Runs CLI commands and keeps every byte they wrote (for the leak grep)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ray_tmp = Path(f"/tmp/es-sec-ray-{uuid.uuid4().hex[:6]}")  # short: Ray's socket paths are limited
        self.ray_tmp.mkdir()
        self.outputs: list[str] = []
        self.files: list[Path] = []

    def run(self, args: list[str], env: dict | None = None, verbose: str = "-v", timeout: float = 600):
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("ECHO_SPLADE_PASSWORD", "ECHO_SPLADE_API_KEY", "ECHO_SPLADE_USER")
        }
        full_env.update({"RAY_TMPDIR": str(self.ray_tmp), "PYTHONUNBUFFERED": "1", **(env or {})})
        result = subprocess.run(
            [sys.executable, "-m", "echo_splade", verbose, *args],
            env=full_env,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        self.outputs.append(result.stdout + result.stderr)
        return result

    def written(self) -> list[Path]:
        paths = list(self.files)
        for base in (self.root, self.ray_tmp):
            paths += [p for p in base.rglob("*") if p.is_file() and not p.is_symlink()]
        return paths


@pytest.fixture(scope="module")
def secure(secure_es, tmp_path_factory):
    """Users, API keys (distinctive secrets), the roles, a shared index name, and the transcript."""
    from echo_splade.integration.node import role_descriptor, role_name

    elastic = secure_es.backend
    tag = uuid.uuid4().hex[:8]
    ns = {
        "tag": tag,
        "index": f"secure-t-{tag}",
        "url": secure_es.url,
        "ca": secure_es.ca_certs,
        "node": secure_es,
        "secrets": [secure_es.elastic_password],
    }
    for role in ("provisioner", "ingest", "search"):
        elastic.request("PUT", f"/_security/role/{role_name(role)}", body=role_descriptor(role))
    users = {}
    for role in ("provisioner", "ingest", "search"):
        name, password = f"t-{role}-{tag}", f"Pw{role[:3]}-{uuid.uuid4().hex}"
        elastic.request("PUT", f"/_security/user/{name}", body={"password": password, "roles": [role_name(role)]})
        users[role] = (name, password)
        ns["secrets"].append(password)
    ns["users"] = users
    keys = {}
    # an API key limited by role descriptors (created by elastic) ...
    for label, roles in (("ingest", ("ingest",)), ("ingest+search", ("ingest", "search"))):
        body = {
            "name": f"t-{label}-{tag}",
            "expiration": "1h",
            "role_descriptors": {role: role_descriptor(role) for role in roles},
        }
        answer = elastic.request("POST", "/_security/api_key", body=body)
        keys[label] = answer["encoded"]
        ns["secrets"] += [answer["encoded"], answer["api_key"]]
    # ... and one granted FOR the search user (owned by it, its own privileges; the role needs no
    # manage_own_api_key for that)
    name, password = users["search"]
    answer = elastic.request(
        "POST",
        "/_security/api_key/grant",
        body={
            "grant_type": "password",
            "username": name,
            "password": password,
            "api_key": {"name": f"t-search-own-{tag}", "expiration": "1h"},
        },
    )
    keys["search"] = answer["encoded"]
    ns["secrets"] += [answer["encoded"], answer["api_key"]]
    ns["keys"] = keys
    ns["transcript"] = Transcript(tmp_path_factory.mktemp("secure-run"))
    yield ns
    from echo_splade.client import ClusterError

    try:
        for name, _ in users.values():
            elastic.request("DELETE", f"/_security/user/{name}")
        for label in ("ingest", "ingest+search", "search-own"):
            elastic.request("DELETE", "/_security/api_key", body={"name": f"t-{label}-{tag}"})
        found = elastic.request("GET", f"/_cat/indices/{ns['index']}*", params={"format": "json", "h": "index"})
        for row in found:
            elastic.request("DELETE", f"/{row['index']}", params={"ignore_unavailable": True})
    except ClusterError as exc:
        logging.getLogger(__name__).warning("cleanup on the secured node failed: %s", exc)
    import shutil

    shutil.rmtree(ns["transcript"].ray_tmp, ignore_errors=True)


def _conn(secure, *extra):
    return ["--url", secure["url"], "--ca-certs", secure["ca"], *extra]


def _ingest_sample(secure, report, *extra, env=None):
    """``echo-splade ingest`` of the sample corpus into the secured index (``extra``: more options, credentials)."""
    args = ["ingest", "--corpus", str(SAMPLE / "sample_corpus.jsonl"), "--index", secure["index"], *FAST]
    return secure["transcript"].run([*args, "--report", str(report), *_conn(secure, *extra)], env)


def _basic(secure, role):
    name, password = secure["users"][role]
    return ["--user", name], {"ECHO_SPLADE_PASSWORD": password}


def _one_error(result) -> str:
    """The CLI failed with a one-line error (plus its hint), no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.stderr


# -- the node itself --------------------------------------------------------------------------------------------
def test_node_refuses_anonymous_requests_and_status_names_the_secret_files(secure):
    from echo_splade.client import AuthenticationError, ConnectionConfig, connect

    with pytest.raises(AuthenticationError, match="authentication failed"):
        connect(ConnectionConfig(urls=(secure["url"],), ca_certs=secure["ca"]))
    port = secure["url"].rsplit(":", 1)[1]
    result = secure["transcript"].run(["cluster", "status", "--engine", "elasticsearch", "--secure", "--port", port])
    assert result.returncode == 0, result.stderr
    assert "x-pack-security" in result.stdout and "echo-splade-security-analysis" in result.stdout
    assert "elastic password file:" in result.stdout
    password_file = result.stdout.split("elastic password file: ", 1)[1].split(" ")[0]
    assert oct(os.stat(password_file).st_mode & 0o777) == "0o600"
    assert Path(password_file).read_text().strip() == secure["node"].elastic_password


# -- one role per command, basic auth and API keys ---------------------------------------------------------------
def test_provisioner_creates_the_index_and_is_refused_what_it_lacks(secure):
    t = secure["transcript"]
    args, env = _basic(secure, "provisioner")
    result = t.run(["provision", "--index", secure["index"], "--analyzer", "standard", *_conn(secure, *args)], env)
    assert result.returncode == 0, result.stderr
    assert f"created {secure['index']}-v1" in result.stdout
    # --drop-old needs delete_index, which the role does not grant: the 403 names the refused action
    result = t.run(
        [
            "provision",
            "--index",
            secure["index"],
            "--analyzer",
            "standard",
            "--new-version",
            "--swap",
            "--drop-old",
            *_conn(secure, *args),
        ],
        env,
    )
    err = _one_error(result)
    assert "permission denied (HTTP 403)" in err and "action [indices:admin/delete]" in err
    assert "hint:" in err
    # an index outside the role's pattern
    result = t.run(
        ["provision", "--index", f"other-{secure['tag']}", "--analyzer", "standard", *_conn(secure, *args)], env
    )
    assert "permission denied (HTTP 403)" in _one_error(result)
    # without --analyzer the cluster-level _analyze probe needs `manage`: the error says what to pass
    result = t.run(["provision", "--index", secure["index"] + "-x", *_conn(secure, *args)], env)
    err = _one_error(result)
    assert "action [cluster:admin/analyze]" in err and "--analyzer" in err


def test_ingest_with_an_api_key_of_the_ingest_role(secure):
    t = secure["transcript"]
    report, dead = t.root / "ingest.json", t.root / "ingest.dead-letter.jsonl"
    # the key on the command line on purpose: it must not survive in argv-derived records (Ray's entrypoint)
    result = _ingest_sample(secure, report, "--dead-letter", str(dead), "--api-key", secure["keys"]["ingest"])
    assert result.returncode == 0, result.stderr
    assert "completed: read 52, encoded 52, indexed 52" in result.stdout
    assert json.loads(report.read_text())["indexed"] == 52
    assert secure["node"].backend.count(secure["index"]) == 52
    # bulk-load settings were put back by the ingest role (refresh interval, replicas)
    settings = secure["node"].backend.get_settings(secure["index"])
    assert all("echo_splade_bulk_load" not in json.dumps(v) for v in settings.values())


def test_search_with_basic_auth_and_with_the_search_users_own_api_key(secure):
    t = secure["transcript"]
    args, env = _basic(secure, "search")
    result = t.run(
        [
            "search",
            "why does my pulse race when I am frightened",
            "--index",
            secure["index"],
            "--model",
            "tiny-mistral",
            "--hybrid",
            "rrf",
            "--explain",
            "--k",
            "3",
            *_conn(secure, *args),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    result = t.run(
        [
            "search",
            "cooking noodles on a mountain",
            "--index",
            secure["index"],
            "--model",
            "tiny-mistral",
            "--json",
            *_conn(secure),
        ],
        {"ECHO_SPLADE_API_KEY": secure["keys"]["search"]},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)


def test_search_role_cannot_write(secure):
    from echo_splade.client import AuthorizationError, ConnectionConfig, connect

    name, password = secure["users"]["search"]
    backend = connect(ConnectionConfig(urls=(secure["url"],), user=name, password=password, ca_certs=secure["ca"]))
    try:
        with pytest.raises(AuthorizationError) as caught:
            backend.request("PUT", f"/{secure['index']}/_doc/x", body={"text": "nope"})
        assert caught.value.action and caught.value.action.startswith("indices:data/write")
        assert not caught.value.retryable
        # what it may do: _mget, _mapping, field caps
        backend.request("POST", f"/{secure['index']}/_mget", body={"ids": ["health-sleep"]})
        backend.get_mapping(secure["index"])
        backend.request("GET", f"/{secure['index']}/_field_caps", params={"fields": "text"})
    finally:
        backend.close()


@pytest.fixture(scope="module")
def sample_beir(secure):
    """The sample corpus and queries as a BEIR folder (qrels for `test` and `train`)."""
    root = secure["transcript"].root / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text((SAMPLE / "sample_corpus.jsonl").read_text())
    queries = [json.loads(line) for line in (SAMPLE / "sample_queries.jsonl").read_text().splitlines() if line]
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n" for q in queries)
    )
    rows = "".join(f"{q['_id']}\t{doc}\t1\n" for q in queries for doc in q["relevant"])
    for split in ("test", "train"):
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


def test_eval_and_mine_negatives_with_the_search_role(secure, sample_beir):
    t = secure["transcript"]
    args, env = _basic(secure, "search")
    report = t.root / "eval.json"
    result = t.run(
        [
            "eval",
            "--dataset",
            str(sample_beir),
            "--index",
            secure["index"],
            *FAST[:4],
            "--truncate",
            "--report",
            str(report),
            "--no-progress",
            *_conn(secure, *args),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    systems = json.loads(report.read_text())
    assert "bm25" in json.dumps(systems)
    out = t.root / "train.jsonl"
    result = t.run(
        [
            "mine-negatives",
            "--dataset",
            str(sample_beir),
            "--index",
            secure["index"],
            "--output",
            str(out),
            "--split",
            "train",
            "--no-progress",
            *_conn(secure, *args),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().strip()


def test_demo_against_the_existing_secured_cluster(secure):
    t = secure["transcript"]
    index = secure["index"] + "-demo"
    # the provisioner creates the demo's index (the demo's own encoder settings); the demo then ingests and
    # searches with an API key of the ingest and search roles
    args, env = _basic(secure, "provisioner")
    result = t.run(
        ["provision", "--index", index, "--model", "tiny-mistral", "--analyzer", "standard", *_conn(secure, *args)], env
    )
    assert result.returncode == 0, result.stderr
    result = t.run(
        ["demo", "--index", index, "--model", "tiny-mistral", "--no-start", "--k", "2", *_conn(secure)],
        {"ECHO_SPLADE_API_KEY": secure["keys"]["ingest+search"]},
    )
    assert result.returncode == 0, result.stderr
    assert "[1/4] Cluster at https://127.0.0.1" in result.stdout and "Expected passage" in result.stdout


# -- refused and failed authentication ----------------------------------------------------------------------------
def test_ingest_with_the_search_role_stops_with_the_resume_hint_and_loses_nothing(secure):
    t = secure["transcript"]
    before = secure["node"].backend.count(secure["index"])
    args, env = _basic(secure, "search")
    report = t.root / "refused.json"
    result = _ingest_sample(secure, report, *args, env=env)
    err = _one_error(result)
    assert "permission denied (HTTP 403)" in err and "action [indices:" in err and "--resume" in err
    assert json.loads(report.read_text())["status"] == "failed"
    assert secure["node"].backend.count(secure["index"]) == before


@pytest.mark.parametrize("how", ["password", "api-key"])
def test_wrong_credentials_fail_in_one_line(secure, how):
    t = secure["transcript"]
    if how == "password":
        args, env = ["--user", secure["users"]["search"][0]], {"ECHO_SPLADE_PASSWORD": "Wrong-" + uuid.uuid4().hex}
    else:
        args, env = [], {"ECHO_SPLADE_API_KEY": "V3Jvbmc6a2V5LW5vdC12YWxpZA=="}
    # (provision --dry-run: a command that reads the cluster without importing torch)
    result = t.run(
        ["provision", "--index", secure["index"], "--analyzer", "standard", "--dry-run", *_conn(secure, *args)], env
    )
    err = _one_error(result)
    assert "authentication failed (HTTP 401)" in err
    assert len([line for line in err.splitlines() if line.startswith("Error:")]) == 1
    report = t.root / "ingest-401.json"
    result = _ingest_sample(secure, report, *args, env=env)
    err = _one_error(result)
    assert "authentication failed (HTTP 401)" in err and "--resume" in err


# -- TLS ---------------------------------------------------------------------------------------------------------
def test_tls_errors_and_no_verify_certs(secure, tmp_path):
    t = secure["transcript"]
    args, env = _basic(secure, "provisioner")
    command = ["provision", "--index", secure["index"], "--analyzer", "standard", "--dry-run"]
    # no CA: the system trust store does not know the local CA
    err = _one_error(t.run([*command, "--url", secure["url"], *args], env))
    assert "certificate verify failed" in err and "--ca-certs" in err
    # a wrong CA (a real CA bundle, just not the node's)
    import certifi

    err = _one_error(t.run([*command, "--url", secure["url"], "--ca-certs", certifi.where(), *args], env))
    assert "certificate verify failed" in err
    # --no-verify-certs works and warns once (not per request, no urllib3 InsecureRequestWarning)
    result = t.run([*command, "--url", secure["url"], "--no-verify-certs", *args], env, verbose="-vv")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("TLS certificate verification is OFF") == 1
    # neither urllib3's warning nor the clients' own ("Connecting to ... using TLS with verify_certs=False is
    # insecure"); our one line names the library parameter `(verify_certs=False)` and the CLI adds the flags
    assert "InsecureRequestWarning" not in result.stderr and "verify_certs=False is insecure" not in result.stderr
    assert "(verify_certs=False)" in result.stderr and "(--no-verify-certs, --ca-certs)" in result.stderr


def test_credentials_over_plain_http_warn(secure, caplog):
    from echo_splade.client import ClusterError, ConnectionConfig, connect

    url = secure["url"].replace("https://", "http://")
    with caplog.at_level(logging.WARNING, logger="echo_splade.client"), pytest.raises(ClusterError):
        connect(ConnectionConfig(urls=(url,), user="someone", password="Plain-" + uuid.uuid4().hex, timeout=5))
    assert any("clear text" in r.getMessage() for r in caplog.records)


# -- secrets never leak ------------------------------------------------------------------------------------------
def test_repr_of_configs_and_objects_holds_no_secret(secure):
    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.ingest import IngestJob

    name, password = secure["users"]["search"]
    config = ConnectionConfig(
        urls=(secure["url"].replace("https://", f"https://{name}:{password}@"),), ca_certs=secure["ca"]
    )
    assert config.user == name and config.password == password and "@" not in config.urls[0]
    backend = connect(config)
    job = IngestJob(SAMPLE / "sample_corpus.jsonl", secure["index"], config, model="tiny-mistral")
    shown = " ".join(
        [
            repr(config),
            str(config),
            config.describe(),
            repr(backend),
            repr(job),
            repr(config.without_secrets()),
            repr(secure["node"]),
        ]
    )
    backend.close()
    assert password not in shown and name in shown
    key_config = ConnectionConfig(urls=(secure["url"],), api_key=secure["keys"]["search"], ca_certs=secure["ca"])
    assert secure["keys"]["search"] not in repr(key_config) + repr(key_config.without_secrets())


def test_no_secret_in_any_byte_written(secure):
    """Runs last: every output, report, dead letter, log and Ray session file of this module's commands."""
    t = secure["transcript"]
    assert len(t.outputs) >= 10, "the commands above did not run"
    secrets = [s.encode() for s in secure["secrets"] if s]
    hits = []
    for number, text in enumerate(t.outputs):
        hits += [f"output of command {number}" for s in secrets if s in text.encode()]
    files = t.written()
    assert any("session" in str(p) for p in files), f"no Ray session files under {t.ray_tmp}"
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits += [str(path) for s in secrets if s in data]
    assert not hits, f"secrets found in: {sorted(set(hits))[:20]}"


# -- offline: the secured node's configuration -------------------------------------------------------------------
def test_secure_node_configuration(tmp_path):
    from echo_splade.integration import LocalNode
    from echo_splade.integration.node import role_descriptor

    with pytest.raises(ValueError, match="a secured node needs the elasticsearch engine") as refused:
        LocalNode(engine="opensearch", secure=True, home=tmp_path)
    assert refused.value.option == "engine"  # the CLI names the flag: (--engine elasticsearch)
    node = LocalNode(engine="elasticsearch", secure=True, home=tmp_path)
    assert node.port == 9202 and node.url == "https://127.0.0.1:9202" and "secure=True" in repr(node)
    text = node._config_text()
    for line in (
        "xpack.security.enabled: true",
        "xpack.security.http.ssl.enabled: true",
        'xpack.security.http.ssl.certificate_authorities: ["certs/ca.crt"]',
    ):
        assert line in text
    assert "xpack.security.enabled: false" not in text and "anonymous" not in text
    assert node.security.password_file.parent == node.node_dir / "secrets"
    assert role_descriptor("search") == {
        "cluster": [],
        "indices": [{"names": ["secure-*"], "privileges": ["read", "view_index_metadata"]}],
    }
    with pytest.raises(ValueError, match="role must be one of"):
        role_descriptor("admin")
    plain = LocalNode(engine="elasticsearch", home=tmp_path)
    assert plain.url == "http://127.0.0.1:9201" and "xpack.security.enabled: false" in plain._config_text()
