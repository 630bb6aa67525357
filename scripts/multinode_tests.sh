#!/usr/bin/env bash
# Faults on a real 3-node OpenSearch cluster (tests marked `multinode`, deselected by default).
# Starts the cluster when it is not running (`echo-splade cluster start --nodes 3`), runs
# tests/test_multinode_faults.py, stops the cluster again when this script started it.
# Ports: HTTP $ECHO_SPLADE_MULTINODE_PORT.. (+0..2, default 9210), transport
# $ECHO_SPLADE_MULTINODE_TRANSPORT_PORT.. (default HTTP + 100). Extra arguments go to pytest.
# About 3 x 600 MB of memory (384 MB heaps) and 10-20 minutes on a busy 2-core machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${ECHO_SPLADE_VENV:-.venv}/bin/python"
export ECHO_SPLADE_MULTINODE_PORT="${ECHO_SPLADE_MULTINODE_PORT:-9210}"
export ECHO_SPLADE_MULTINODE_TRANSPORT_PORT="${ECHO_SPLADE_MULTINODE_TRANSPORT_PORT:-$((ECHO_SPLADE_MULTINODE_PORT + 100))}"
nodes=(--nodes 3 --port "$ECHO_SPLADE_MULTINODE_PORT" --transport-port "$ECHO_SPLADE_MULTINODE_TRANSPORT_PORT")
started=0
if ! "$PY" -m echo_splade cluster status "${nodes[@]}" >/dev/null 2>&1; then
    started=1
fi
stop() {
    status=$?
    if [ "$started" = 1 ]; then "$PY" -m echo_splade cluster stop "${nodes[@]}" || true; fi
    exit "$status"
}
trap stop EXIT
"$PY" -m echo_splade cluster start "${nodes[@]}" --heap 384m --timeout 300
"$PY" -m echo_splade cluster status "${nodes[@]}"
"$PY" -m pytest -q -m multinode -o timeout=1800 tests/test_multinode_faults.py "$@"
