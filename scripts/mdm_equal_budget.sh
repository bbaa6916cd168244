#!/usr/bin/env bash
# MDM VP-SDE vs learned at an equal budget on ONE CPU thread: both continued from their shipped checkpoints
# (--init: EMA weights, fresh optimizer), same steps/batch/lr/seed, taking turns in chunks of CHUNK steps
# (--stop-at + --resume) so that both always stand at the same step; then test bits/dim of each on the first
# LIMIT test images × REPEATS ELBO draws (same seed).
#   STEPS=700 CHUNK=100 DEADLINE=09:58 bash scripts/mdm_equal_budget.sh        (OUT=runs/mdm-equal)
# DEADLINE (UTC, HH:MM): no new pair of chunks starts that would, at the last pair's pace, end after it; both
# then stop at the same step and are evaluated. START: the step both already stand at (continue with --resume).
set -u
STEPS=${STEPS:-700}; CHUNK=${CHUNK:-100}; OUT=${OUT:-runs/mdm-equal}; LIMIT=${LIMIT:-2000}; REPEATS=${REPEATS:-2}
DEADLINE=${DEADLINE:-}; mkdir -p "$OUT"
export OMP_NUM_THREADS=1
net="--base-channels 16 --channel-mult 1,2,2 --num-res-blocks 1 --attention-levels= --dropout 0"
common="--steps $STEPS --batch-size 64 --lr 5e-4 --warmup 50 --eval-every 100000 --eval-n 200 --seed 0 --quiet"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$OUT/driver.log"; }
done_steps=${START:-0}; pair_s=0
while [ "$done_steps" -lt "$STEPS" ]; do
  if [ -n "$DEADLINE" ] && [ "$(date -u -d "+$pair_s seconds" +%H%M)" \> "${DEADLINE/:/}" ]; then
    log "a pair of chunks (~$pair_s s) would end after $DEADLINE: stopping both at step $done_steps"; break; fi
  t_pair=$(date +%s)
  next=$(( done_steps + CHUNK < STEPS ? done_steps + CHUNK : STEPS ))
  for d in vpsde learned; do
    start="--init checkpoints/fmnist-mdm-$d"; [ "$done_steps" -gt 0 ] && start="--resume"
    t0=$(date +%s)
    python3 -m jdx train mdm --diffusion "$d" $net $common $start --stop-at "$next" --out "$OUT/$d" >> "$OUT/train-$d.log" 2>&1 \
      || { log "train $d failed (see $OUT/train-$d.log)"; exit 1; }
    log "$d at step $next ($(( $(date +%s) - t0 )) s for this chunk)"
  done
  done_steps=$next; pair_s=$(( $(date +%s) - t_pair ))
done
for d in vpsde learned; do
  t0=$(date +%s)
  python3 -m jdx eval "$OUT/$d" --limit "$LIMIT" --bpd-repeats "$REPEATS" --seed 0 --write --json > "$OUT/eval-$d.json" 2> "$OUT/eval-$d.err"
  log "eval $d: $(cat "$OUT/eval-$d.json") ($(( $(date +%s) - t0 )) s)"
done
