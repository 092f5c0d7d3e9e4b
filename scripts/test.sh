#!/usr/bin/env bash
# Set everything up, then run the whole test suite (CPU only): the backend's tests, the Slicer module's Qt-free
# logic against a headless slicer-core scene and a real `covidal serve`, and the end-to-end tests through Slicer's
# real views in a browser (Testing/e2e; each writes a screenshot to Testing/e2e/screenshots/). ruff check and
# ruff format --check come first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
# Lint and format are part of the suite: one configuration, ruff.toml at the root.
(cd "$root" && "$root/.venv/bin/ruff" check . && "$root/.venv/bin/ruff" format --check .)
cd "$root/server_training"
"$root/.venv/bin/python" -m pytest -q "$@"
cd "$root/CovidActiveLearning/Testing/Python"
"$root/.venv/bin/python" -m pytest -q
cd "$root/Testing/e2e"
exec "$root/.venv/bin/python" -m pytest -q
