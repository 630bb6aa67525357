"""Measure that every privilege of the least-privilege roles is needed, on the secured local Elasticsearch node.

For each role (provisioner, ingest, search) and each of its privileges, an API key with the role MINUS that
privilege runs the REST calls the role's commands make; the first refused action is printed. A line
"all steps passed" would mean the privilege is not needed. Works on a scratch alias ``secure-roleprobe-<hex>``
that is deleted afterwards.

    python scripts/measure_roles.py [--port 9202] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import uuid

from echo_splade.client import ClusterError, ConnectionConfig, connect
from echo_splade.integration import LocalNode
from echo_splade.integration.node import ROLE_INDEX_PRIVILEGES
from echo_splade.mappings import bulk_load_settings, update_index_meta


def _steps(role: str, backend, alias: str) -> None:
    if role == "provisioner":
        name = f"{alias}-p{uuid.uuid4().hex[:4]}"
        backend.get_aliases(alias)
        backend.get_mapping(alias)
        backend.get_settings(alias)
        backend.request(
            "PUT",
            f"/{name}-v1",
            body={
                "settings": {"index": {"number_of_replicas": 0}},
                "mappings": {"properties": {"text": {"type": "text"}}},
            },
        )
        backend.update_aliases([{"add": {"index": f"{name}-v1", "alias": name}}])
        backend.request("PUT", f"/{name}-v1/_mapping", body={"_meta": {"probe": 1}})
    elif role == "ingest":
        backend.get_aliases(alias)
        backend.get_mapping(alias)
        update_index_meta(backend, alias, {"echo_splade_probe": 1})
        with bulk_load_settings(backend, alias):
            answer = backend.bulk([json.dumps({"index": {"_index": alias, "_id": "probe"}}), '{"text": "x"}'])
            if answer.get("errors"):
                raise ClusterError("bulk item refused: " + json.dumps(answer["items"][0])[:300])
            backend.request("POST", f"/{alias}/_mget", body={"ids": ["probe"]})
    else:
        backend.search(alias, {"query": {"match_all": {}}})
        backend.request("POST", f"/{alias}/_mget", body={"ids": ["probe"]})
        backend.get_mapping(alias)
        backend.request("GET", f"/{alias}/_field_caps", params={"fields": "text"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9202)
    parser.add_argument("--home", help="node home [default: $ECHO_SPLADE_HOME or the usual default]")
    args = parser.parse_args()
    node = LocalNode(engine="elasticsearch", port=args.port, home=args.home, secure=True)
    security = node.security
    url, ca = node.url, str(security.ca_cert)
    elastic = connect(ConnectionConfig(urls=(url,), user="elastic", password=security.stored_password(), ca_certs=ca))
    alias = f"secure-roleprobe-{uuid.uuid4().hex[:6]}"
    elastic.request(
        "PUT", f"/{alias}-v1", body={"aliases": {alias: {}}, "settings": {"index": {"number_of_replicas": 0}}}
    )
    key_name = f"roleprobe-{uuid.uuid4().hex[:6]}"
    try:
        for role, privileges in ROLE_INDEX_PRIVILEGES.items():
            for dropped in privileges:
                kept = [p for p in privileges if p != dropped]
                key = elastic.request(
                    "POST",
                    "/_security/api_key",
                    body={
                        "name": key_name,
                        "expiration": "10m",
                        "role_descriptors": {"probe": {"indices": [{"names": ["secure-*"], "privileges": kept}]}},
                    },
                )
                backend = connect(
                    ConnectionConfig(urls=(url,), api_key=key["encoded"], ca_certs=ca, engine="elasticsearch")
                )
                try:
                    _steps(role, backend, alias)
                    outcome = "all steps passed (privilege not needed?)"
                except ClusterError as exc:
                    outcome = f"refused: {getattr(exc, 'action', None) or str(exc)[:200]}"
                finally:
                    backend.close()
                print(f"{role:12s} without {dropped:32s} -> {outcome}", flush=True)
    finally:
        elastic.request("DELETE", "/_security/api_key", body={"name": key_name})
        for row in elastic.request("GET", f"/_cat/indices/{alias}*", params={"format": "json", "h": "index"}):
            elastic.request("DELETE", f"/{row['index']}")
        elastic.close()


if __name__ == "__main__":
    main()
