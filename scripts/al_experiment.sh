#!/usr/bin/env bash
# Region active-learning experiment on the shared MedSeg slices: every strategy x loss x seed x selection cap
# with `covidal simulate`, the fully supervised model on the same pool, and `covidal compare` over all runs.
#
# Split (never tuned on): the last TEST_COUNT slices by number are the test set, the rest the pool.
# Every knob is an environment variable; the defaults are the CPU scale recorded in BENCHMARKS.md.
# GPU scale: SIZE=352 WIDTH=32 STEPS=120 DEVICE=cuda JOBS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
COVIDAL=${COVIDAL:-.venv/bin/covidal}
DATA=${DATA:-../shared/data/covid_semiseg/train}
OUT=${OUT:-al_experiment}
SIZE=${SIZE:-128}; WIDTH=${WIDTH:-16}; BATCH=${BATCH:-4}; STEPS=${STEPS:-60}; SAMPLES=${SAMPLES:-20}
INIT=${INIT:-1}; CYCLES=${CYCLES:-20}; PER_CYCLE=${PER_CYCLE:-5}; REGIONS=${REGIONS:-64}
STRATEGIES=${STRATEGIES:-"random entropy bald"}; LOSSES=${LOSSES:-"cb-flip-rot point"}; SEEDS=${SEEDS:-"0 1 2"}
SCRATCH_SEEDS=${SCRATCH_SEEDS-"0 1 2"}  # entropy + first loss retrained from scratch each cycle: warm start vs scratch
CAPS=${CAPS:-1}  # --max-per-slice of each run: 1 = one region per slice per cycle, 0 = no cap
PROTOCOLS=${PROTOCOLS:-point}  # the simulated annotator's answers: point (one click, 3 s) and/or mask (outline)
FULL_EPOCHS=${FULL_EPOCHS:-100}; TEST_COUNT=${TEST_COUNT:-10}; DEVICE=${DEVICE:-cpu}; JOBS=${JOBS:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

split() {  # symlinked pool/ and test/ folders, so every command sees the same split
  mkdir -p "$OUT/split"/{pool,test}/{images,masks}
  mapfile -t stems < <(ls "$DATA/images" | sed 's/\.[^.]*$//' | sort -V)
  local cut=$(( ${#stems[@]} - TEST_COUNT ))
  for i in "${!stems[@]}"; do
    local part=pool; (( i >= cut )) && part=test
    for kind in images masks; do
      local file; file=$(ls "$DATA/$kind/${stems[$i]}".* | head -1)
      ln -sf "$(realpath "$file")" "$OUT/split/$part/$kind/"
    done
  done
}

simulate_commands() {
  local common
  common=$(tr -s ' \n' ' ' <<< "--images $OUT/split/pool/images --masks $OUT/split/pool/masks --test-images $OUT/split/test/images
    --test-masks $OUT/split/test/masks --regions $REGIONS --init-slices $INIT --cycles $CYCLES --per-cycle $PER_CYCLE
    --mc-samples $SAMPLES --steps $STEPS --size $SIZE --width $WIDTH --batch-size $BATCH --device $DEVICE --quiet")
  # Seeds outermost, so that a run stopped early has whole seeds of every arm.
  for seed in $SEEDS; do for protocol in $PROTOCOLS; do for loss in $LOSSES; do for strategy in $STRATEGIES; do
    for cap in $CAPS; do
      echo "$COVIDAL simulate $common --strategy $strategy --loss $loss --seed $seed --max-per-slice $cap" \
        "--protocol $protocol --out $OUT/$loss$([ "$protocol" = point ] || echo "-$protocol")"
    done
  done; done; done; done
  local first_loss=${LOSSES%% *}
  for seed in $SCRATCH_SEEDS; do
    echo "$COVIDAL simulate $common --strategy entropy --loss $first_loss --seed $seed --scratch --out $OUT/scratch"
  done
}

split
"$COVIDAL" train --images "$OUT/split/pool/images" --masks "$OUT/split/pool/masks" --loss full --val-fraction 0 \
  --epochs "$FULL_EPOCHS" --size "$SIZE" --width "$WIDTH" --batch-size "$BATCH" --device "$DEVICE" --quiet --out "$OUT/full"
"$COVIDAL" evaluate --model "$OUT/full" --images "$OUT/split/test/images" --masks "$OUT/split/test/masks" \
  --json "$OUT/full/test_metrics.json" --device "$DEVICE" --quiet
simulate_commands | tr '\n' '\0' | xargs -0 -P "$JOBS" -I{} sh -c '{} > /dev/null'
for protocol in $PROTOCOLS; do for loss in $LOSSES; do
  runs=$loss$([ "$protocol" = point ] || echo "-$protocol")
  "$COVIDAL" compare "$OUT/$runs" --supervised "$OUT/full/test_metrics.json" --out "$OUT/compare_$runs.png" \
    --table "$OUT/compare_$runs.md"
done; done
if [ -n "$SCRATCH_SEEDS" ]; then
  "$COVIDAL" compare "$OUT/${LOSSES%% *}" "$OUT/scratch" --supervised "$OUT/full/test_metrics.json" \
    --out "$OUT/compare_warm_vs_scratch.png" --table "$OUT/compare_warm_vs_scratch.md"
fi
