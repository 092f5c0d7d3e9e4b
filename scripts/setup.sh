#!/usr/bin/env bash
# Create .venv at the repository root and install the backend with its test tools, and the end-to-end harness
# (trame-slicer with slicer-core, Playwright) with Debian's Chromium and Mesa's EGL for offscreen rendering.
# Idempotent: a second run reuses the environment and installs nothing new.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
pip=("$root/.venv/bin/python" -m pip --disable-pip-version-check -q)
constraints=(-c "$root/server_training/constraints.txt")
# torch first and pinned: 2.13.0 is a CPU build; an unpinned torch would pull a multi-GB CUDA build.
"${pip[@]}" install "torch==2.13.0" "${constraints[@]}"
"${pip[@]}" install -e "$root/server_training[test]" "${constraints[@]}"
# The harness (Testing/harness): Slicer's views in a browser app. Playwright drives Debian's Chromium
# (/usr/bin/chromium); Playwright's own browser downloads are never used.
"${pip[@]}" install "trame-slicer[standalone]" playwright "${constraints[@]}"
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
for package in libegl1 libegl-mesa0 libgl1-mesa-dri; do  # VTK renders offscreen through Mesa's EGL
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "setup.sh: could not apt-get install ${missing[*]} (needs root or sudo)" >&2; exit 1; }
fi
