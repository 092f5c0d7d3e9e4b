#!/usr/bin/env bash
# Set everything up, then run the whole test suite (CPU only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root/server_training"
exec "$root/.venv/bin/python" -m pytest -q "$@"
