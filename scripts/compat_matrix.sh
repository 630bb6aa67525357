#!/usr/bin/env bash
# The engine-version matrix (tests marked `compat`, deselected by default): for each ENGINE:VERSION, start
# one real node of that version from Maven Central (`echo-splade cluster start --engine E --version V`),
# run tests/test_compat.py against it, stop it, and print one result row per version.
#   bash scripts/compat_matrix.sh                                   # every version below
#   bash scripts/compat_matrix.sh opensearch:2.11.1 elasticsearch:8.13.4
# Ports: HTTP $ECHO_SPLADE_COMPAT_PORT (default 9230), transport $ECHO_SPLADE_COMPAT_TRANSPORT_PORT
# (default HTTP + 100). One node at a time, heap 384m, in the home $ECHO_SPLADE_COMPAT_HOME (default
# ${TMPDIR:-/tmp}/echo-splade-compat; installs stay there, downloads go to $ECHO_SPLADE_DOWNLOADS): the node
# folder nodes/ENGINE-PORT is emptied before each version (an older server cannot read a newer one's data). Results: $ECHO_SPLADE_COMPAT_RESULTS (TSV,
# default ${TMPDIR:-/tmp}/echo-splade-compat-matrix.tsv), logs beside it. Exit status 1 when any row is
# not PASS. About 4-6 minutes a version on a busy 2-core machine (Ray start, 200-document ingest).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${ECHO_SPLADE_VENV:-.venv}/bin/python"
PORT="${ECHO_SPLADE_COMPAT_PORT:-9230}"
TRANSPORT="${ECHO_SPLADE_COMPAT_TRANSPORT_PORT:-$((PORT + 100))}"
RESULTS="${ECHO_SPLADE_COMPAT_RESULTS:-${TMPDIR:-/tmp}/echo-splade-compat-matrix.tsv}"
LOGS="${RESULTS%.tsv}-logs"
HOME_DIR="${ECHO_SPLADE_COMPAT_HOME:-${TMPDIR:-/tmp}/echo-splade-compat}"
mkdir -p "$HOME_DIR" && chmod 755 "$HOME_DIR"
DEFAULT=(
    opensearch:1.3.20 opensearch:2.11.1 opensearch:2.19.6 opensearch:3.3.2
    elasticsearch:7.17.29 elasticsearch:8.13.4 elasticsearch:8.19.21 elasticsearch:9.2.0
)
if [ "$#" -gt 0 ]; then VERSIONS=("$@"); else VERSIONS=("${DEFAULT[@]}"); fi
mkdir -p "$LOGS"
printf 'engine\tversion\tresult\tseconds\tdetail\n' >"$RESULTS"
node=()
cleanup() { if [ "${#node[@]}" -gt 0 ]; then "$PY" -m echo_splade cluster stop "${node[@]}" >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
failed=0
for item in "${VERSIONS[@]}"; do
    engine="${item%%:*}" version="${item#*:}"
    if [ "$engine" = "$item" ] || [ -z "$version" ]; then
        echo "expected ENGINE:VERSION (e.g. opensearch:2.19.6), got $item" >&2
        exit 2
    fi
    node=(--engine "$engine" --version "$version" --port "$PORT" --home "$HOME_DIR")
    if ! "$PY" -m echo_splade cluster status "${node[@]}" >/dev/null 2>&1; then
        rm -rf "${HOME_DIR:?}/nodes/$engine-$PORT"  # a fresh node folder for this version (none runs there)
    fi
    log="$LOGS/$engine-$version"
    began=$SECONDS
    echo "==> $engine $version: starting a node on port $PORT" >&2
    if timeout 900 "$PY" -m echo_splade cluster start "${node[@]}" --heap 384m \
        --setting "transport.port=$TRANSPORT" --timeout 400 >"$log.start.log" 2>&1; then
        echo "==> $engine $version: tests/test_compat.py" >&2
        ECHO_SPLADE_COMPAT_URL="http://127.0.0.1:$PORT" ECHO_SPLADE_COMPAT_ENGINE="$engine" \
            ECHO_SPLADE_COMPAT_VERSION="$version" timeout 1500 "$PY" -m pytest -q -m compat -p no:cacheprovider \
            -o timeout=1200 tests/test_compat.py >"$log.pytest.log" 2>&1
        rc=$?
        detail="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)|^[0-9]+ (passed|failed)' "$log.pytest.log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')"
        if [ "$rc" = 0 ]; then result=PASS; else result=FAIL; fi
        [ "$rc" = 0 ] || detail="$detail; $(grep -E '^(FAILED|ERROR) ' "$log.pytest.log" | head -3 | tr '\n' ' ')"
    else
        result=NO-START
        detail="$(grep -vE '^\s*$' "$log.start.log" | grep -iE 'error|exception|refus|must be|could not' | head -2 | tr '\n' ' ' | cut -c1-300)"
        [ -n "$detail" ] || detail="$(tail -2 "$log.start.log" | tr '\n' ' ' | cut -c1-300)"
    fi
    "$PY" -m echo_splade cluster stop "${node[@]}" >>"$log.start.log" 2>&1 || true
    node=()
    [ "$result" = PASS ] || failed=1
    printf '%s\t%s\t%s\t%s\t%s\n' "$engine" "$version" "$result" "$((SECONDS - began))" "$detail" >>"$RESULTS"
    echo "==> $engine $version: $result ($detail)" >&2
done
echo
echo "compat matrix, $(date -u +%Y-%m-%dT%H:%MZ) (logs: $LOGS)"
column -t -s $'\t' "$RESULTS"
exit "$failed"
