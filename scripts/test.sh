#!/usr/bin/env bash
# Set everything up, then run the whole test suite (CPU only): the backend's tests, then the
# Slicer module's Qt-free logic against a headless slicer-core scene and a real `covidal serve`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root/server_training"
"$root/.venv/bin/python" -m pytest -q "$@"
cd "$root/CovidActiveLearning/Testing/Python"
exec "$root/.venv/bin/python" -m pytest -q
