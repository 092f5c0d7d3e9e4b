#!/usr/bin/env bash
# Noisy-teacher experiment: real chest CT anatomy with SYNTHETIC lesions (covidal make-cases-3d).
#
# Split: the first EXPERT cases are expert-labelled, the next POOL cases are the unlabelled pool,
# the last TEST cases are the test set (never trained on). The teacher is trained on the expert
# cases and pseudo-labels the pool; then CORRUPT_RATE of the pseudo-labels are deliberately
# corrupted (CORRUPT_KIND) so that the re-weighting has something to do. Every student mode
# trains on expert + pseudo-labelled volumes, and every run is evaluated on the test set.
#
# Every knob is an environment variable; the defaults are the CPU scale recorded in BENCHMARKS.md.
# GPU scale: PATCH=96 EPOCHS=100 STEPS=25 DEVICE=cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
COVIDAL=${COVIDAL:-.venv/bin/covidal}
OUT=${OUT:-noisy_teacher_experiment}
EXPERT=${EXPERT:-2}; POOL=${POOL:-6}; TEST=${TEST:-4}; SEED=${SEED:-0}
PATCH=${PATCH:-48}; BATCH=${BATCH:-4}; EPOCHS=${EPOCHS:-12}; STEPS=${STEPS:-25}; LR=${LR:-1e-3}
CHANNELS=${CHANNELS:-16,32,64,128,256}; DEVICE=${DEVICE:-cpu}
CORRUPT_RATE=${CORRUPT_RATE:-0.5}; CORRUPT_KIND=${CORRUPT_KIND:-mixed}
MODES=${MODES:-"supervised semi rgs rgm rgsm rgs-al rgsm-al"}

"$COVIDAL" make-cases-3d --out "$OUT/cases" --count $(( EXPERT + POOL + TEST )) --seed "$SEED"
split() {  # symlinked folders, so every command sees the same split
  local part=$1 first=$2 count=$3
  mkdir -p "$OUT/split/$part"/{images,labels}
  for (( i = first; i < first + count; i++ )); do
    local name; name=$(printf "case_%02d.nrrd" "$i")
    for kind in images labels; do ln -sf "$(realpath "$OUT/cases/$kind/$name")" "$OUT/split/$part/$kind/$name"; done
  done
}
split expert 0 "$EXPERT"; split pool "$EXPERT" "$POOL"; split test $(( EXPERT + POOL )) "$TEST"

train=(--patch "$PATCH" --batch "$BATCH" --epochs "$EPOCHS" --steps-per-epoch "$STEPS" --lr "$LR"
       --channels "$CHANNELS" --seed "$SEED" --device "$DEVICE")
"$COVIDAL" train-3d --images "$OUT/split/expert/images" --labels "$OUT/split/expert/labels" --out "$OUT/runs/teacher" "${train[@]}"
"$COVIDAL" pseudo-label --model "$OUT/runs/teacher" --images "$OUT/split/pool/images" --out "$OUT/pseudo/teacher" --device "$DEVICE"
"$COVIDAL" evaluate-3d --model "$OUT/runs/teacher" --images "$OUT/split/pool/images" --labels "$OUT/split/pool/labels" \
  --json "$OUT/eval/teacher_on_pool.json" --device "$DEVICE"   # how noisy the teacher's pseudo-labels are
"$COVIDAL" corrupt-labels --labels "$OUT/pseudo/teacher" --out "$OUT/pseudo/corrupted" --rate "$CORRUPT_RATE" \
  --kind "$CORRUPT_KIND" --seed "$SEED"
"$COVIDAL" evaluate-3d --model "$OUT/runs/teacher" --images "$OUT/split/test/images" --labels "$OUT/split/test/labels" \
  --json "$OUT/eval/teacher.json" --device "$DEVICE"
for mode in $MODES; do
  [ "$mode" = supervised ] && continue  # the teacher is the supervised run
  "$COVIDAL" noisy-teacher --expert-images "$OUT/split/expert/images" --expert-labels "$OUT/split/expert/labels" \
    --pseudo-images "$OUT/split/pool/images" --pseudo-labels "$OUT/pseudo/corrupted" --mode "$mode" \
    --out "$OUT/runs/$mode" "${train[@]}"
  "$COVIDAL" evaluate-3d --model "$OUT/runs/$mode" --images "$OUT/split/test/images" --labels "$OUT/split/test/labels" \
    --json "$OUT/eval/$mode.json" --device "$DEVICE"
done
evals=("$OUT/eval/teacher.json")
for mode in $MODES; do [ "$mode" != supervised ] && evals+=("$OUT/eval/$mode.json"); done
"$COVIDAL" compare-3d "${evals[@]}" --corruption "$OUT/pseudo/corrupted/corruption.json" --out "$OUT/table.md"
