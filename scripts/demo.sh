#!/usr/bin/env bash
# Set everything up, then run the main job: the demo on real CT with synthetic lesions.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/covidal" demo --out "${DEMO_OUT:-$root/demo_output}" "$@"
