#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml and requirements/assets.in (the upgrade path), then
# reinstall a fresh .venv from them and run the test command against freshly started nodes:
#   bash scripts/lock.sh            # newest versions allowed by pyproject.toml
#   bash scripts/lock.sh --upgrade-package torch   # extra arguments go to `uv pip compile`
# Review the diff of requirements/*.txt and commit it with the code changes it needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=(uv)
command -v uv >/dev/null || UV=("${PYTHON:-python3}" -m uv)
# One universal resolution (every platform, Python >= 3.11), every file pinned by hash.
common=(--universal --python-version 3.11 --generate-hashes --quiet)
"${UV[@]}" pip compile "${common[@]}" pyproject.toml --extra test --extra dev -o requirements/lock.txt "$@"
"${UV[@]}" pip compile "${common[@]}" --no-deps requirements/assets.in -o requirements/assets.lock.txt
echo "lock written; installing it into a fresh .venv and running the tests (.ci/run)"
ECHO_SPLADE_FRESH_VENV=1 bash .ci/run
