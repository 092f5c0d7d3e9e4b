#!/usr/bin/env bash
# GPU evidence in one run: the figures BENCHMARKS.md still lacks at full scale, written to one JSON.
#
#   bash scripts/gpu_evidence.sh [--out DIR] [--wait SECONDS]   # waits for a CUDA GPU, then runs at full scale
#   bash scripts/gpu_evidence.sh --quick [--out DIR]            # the same steps at toy scale on the CPU (CI)
#
# Steps (each timed; all on ../shared/data/covid_semiseg/train):
#   1. bench-cv: 5-fold cross-validation of full masks, point, CB (flip, rot) and the point-supervision options
#      (background prior, pseudo-masks, self-training, TTA, lung restriction, combined) at 352 px, width 32.
#   2. the region active-learning experiment (scripts/al_experiment.sh, random and entropy, CB loss, 3 seeds).
#   3. bench-scoring, bench-reweight and bench-cycle with the GPU commands of BENCHMARKS.md.
# Output: DIR/evidence.json (every figure, the seconds of each step, the device), beside each step's own files.
# Budget: under 9 minutes on one H200 is the goal; the CV trainings run JOBS at a time on the one GPU. The
# full-scale timing has not been measured (no GPU was lent when this was written): the JSON records it.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0; OUT=gpu_evidence; WAIT=${GPU_WAIT:-900}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --wait) WAIT=${2:?--wait needs seconds}; shift ;;
    *) echo "gpu_evidence.sh: unknown argument $1 (use --quick, --out DIR, --wait SECONDS)" >&2; exit 2 ;;
  esac
  shift
done
COVIDAL=${COVIDAL:-.venv/bin/covidal}; PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data/covid_semiseg/train}
[ -d "$DATA/images" ] || { echo "gpu_evidence.sh: no slices at $DATA/images" >&2; exit 2; }
mkdir -p "$OUT"; OUT=$(realpath "$OUT")

if [ "$QUICK" = 1 ]; then
  DEVICE=cpu; JOBS=2; export OMP_NUM_THREADS=1
  CV=(--folds 2 --epochs 1 --size 32 --width 8)
  AL=(SIZE=32 WIDTH=8 STEPS=2 CYCLES=1 PER_CYCLE=1 SAMPLES=2 REGIONS=4 SEEDS=0 FULL_EPOCHS=1)
  SCORING=(--size 64 --samples 2 --batch-size 4 --slices 4 --repeats 1 --width 8)
  REWEIGHT=(--patch 32 --batch 2 --rounds 1 --warmup 0 --modes supervised rgsm-al --channels 4,8,16,32,64)
  CYCLE=(--slices 8 --size 64 64 --regions 4 --grid-k 4 --mc-samples 2 --train-steps 1 --repeats 1 --image-size 32)
else
  DEVICE=cuda; JOBS=${JOBS:-8}
  waited=0
  until "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; do
    if [ "$waited" -ge "$WAIT" ]; then
      echo "gpu_evidence.sh: no CUDA GPU after ${WAIT} s; use --quick for the CPU form" >&2; exit 1
    fi
    echo "waiting for a CUDA GPU (${waited}/${WAIT} s)" >&2; sleep 10; waited=$((waited + 10))
  done
  CV=(--folds 5 --epochs 150 --size 352 --width 32)
  AL=(SIZE=352 WIDTH=32 STEPS=120)
  SCORING=(--size 352 --samples 20 --batch-size 16 --slices 256)
  REWEIGHT=(--patch 96 --batch 4)
  CYCLE=()
fi
declare -A SECONDS_OF
timed() {  # timed NAME COMMAND...: run, record the wall seconds
  local name=$1 start; shift; start=$(date +%s.%N)
  echo "== $name" >&2
  "$@"
  SECONDS_OF[$name]=$(awk -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { print end - start }')
}

# 1. Cross-validation: one process per trained model (methods that only predict differently share it), JOBS at a
#    time, then one call over every method that reads the finished folds back and writes results.json and the table.
trained_with_thresholds() {  # trained_with_thresholds BASE: BASE, its TTA model, and that model at each threshold
  local t; printf '%s %s+tta ' "$1" "$1"
  for t in 0.6 0.7 0.8 0.9; do printf '%s+tta+threshold-%s ' "$1" "$t"; done
}
thresholds="cb+tta+threshold-0.6 cb+tta+threshold-0.7 cb+tta+threshold-0.8 cb+tta+threshold-0.9
  cb-flip-rot+threshold-0.6 cb-flip-rot+threshold-0.7 cb-flip-rot+threshold-0.8 cb-flip-rot+threshold-0.9"
cv_groups=("full full+tta" "point point+tta" "cb-flip-rot cb+tta cb+lungs $thresholds"
  "cb+background-prior cb+background-prior+tta" "cb+pseudo-masks cb+pseudo-masks+tta"
  "cb+self-training cb+self-training+tta" "cb+all cb+all+lungs")
for base in cb+background-weight-4 cb+background-weight-8 cb+ema cb+augment cb+ema+augment \
  cb+background-weight-8+augment cb+background-weight-8+ema+augment; do
  cv_groups+=("$(trained_with_thresholds "$base")")
done
cv() {  # cv METHOD...: bench-cv of these methods into $OUT/cv
  "$COVIDAL" bench-cv --images "$DATA/images" --masks "$DATA/masks" --out "$OUT/cv" "${CV[@]}" --device "$DEVICE" \
    --quiet --methods "$@"
}
cross_validation() {
  local group index=0
  for group in "${cv_groups[@]}"; do
    index=$((index + 1))
    # shellcheck disable=SC2086  # a group is a list of method names
    cv $group > "$OUT/cv_group$index.log" 2>&1 &
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done
  # shellcheck disable=SC2046
  cv $(echo "${cv_groups[@]}") --table "$OUT/cv/table.md" > /dev/null
}
timed cv cross_validation

# 2. Region active learning (random and entropy, CB loss, 3 seeds; the selection rule of the service).
timed al env "${AL[@]}" OUT="$OUT/al" DEVICE="$DEVICE" JOBS="$JOBS" STRATEGIES="random entropy" \
  LOSSES=cb-flip-rot SCRATCH_SEEDS="" COVIDAL="$COVIDAL" DATA="$DATA" bash scripts/al_experiment.sh

# 3. The GPU commands of BENCHMARKS.md.
timed scoring "$COVIDAL" bench-scoring --images "$DATA/images" "${SCORING[@]}" --device "$DEVICE" \
  --json "$OUT/scoring.json"
timed reweight "$COVIDAL" bench-reweight "${REWEIGHT[@]}" --device "$DEVICE" --json "$OUT/reweight.json"
timed cycle "$COVIDAL" bench-cycle "${CYCLE[@]}" --device "$DEVICE" --json "$OUT/cycle.json"

seconds_json=$(for name in "${!SECONDS_OF[@]}"; do printf '"%s": %s,' "$name" "${SECONDS_OF[$name]}"; done)
"$PYTHON" - "$OUT" "$QUICK" "{${seconds_json%,}}" <<'PY'
import json, sys
from pathlib import Path

import torch

out, quick, seconds = Path(sys.argv[1]), sys.argv[2] == "1", json.loads(sys.argv[3])
read = lambda name: json.loads((out / name).read_text(encoding="utf-8"))
cv = read("cv/results.json")
evidence = {
    "quick": quick,
    "device": torch.cuda.get_device_name() if torch.cuda.is_available() and not quick else "cpu",
    "torch": torch.__version__,
    "seconds": {**seconds, "total": sum(seconds.values())},
    "cv": {
        "command": cv["environment"]["command"],
        "rows": [{k: row[k] for k in ("method", "dice", "iou", "ppv", "sensitivity", "fold_dice", "train_seconds")}
                 for row in cv["rows"]],
        "table": (out / "cv/table.md").read_text(encoding="utf-8"),
    },
    "al": {
        "supervised": read("al/full/test_metrics.json")["dice"],
        "table": (out / "al/compare_cb-flip-rot.md").read_text(encoding="utf-8"),
    },
    "scoring": read("scoring.json"),
    "reweight": read("reweight.json"),
    "cycle": read("cycle.json"),
}
(out / "evidence.json").write_text(json.dumps(evidence, indent=2), encoding="utf-8")
print(f"{out / 'evidence.json'}: {evidence['seconds']['total']:.0f} s on {evidence['device']}")
PY
