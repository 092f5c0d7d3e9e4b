#!/usr/bin/env bash
# Create .venv at the repository root and install the backend with its test tools.
# Idempotent: a second run reuses the environment and installs nothing new.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
pip=("$root/.venv/bin/python" -m pip --disable-pip-version-check -q)
# torch first and pinned: 2.13.0 is a CPU build; an unpinned torch would pull a multi-GB CUDA build.
"${pip[@]}" install "torch==2.13.0" -c "$root/server_training/constraints.txt"
"${pip[@]}" install -e "$root/server_training[test]" -c "$root/server_training/constraints.txt"
