#!/usr/bin/env bash
# The shipped Fashion-MNIST multivariate diffusions: one U-Net shape, one step budget, one seed, three
# diffusions, trained side by side on a CPU (one thread each), then test bits/dim on 2,000 test images.
#   STEPS=2000 bash scripts/train_mdm.sh        (OUT=checkpoints by default; RESUME=--resume continues)
set -u
STEPS=${STEPS:-2000}; OUT=${OUT:-checkpoints}; LOGS=${LOGS:-runs/mdm}; mkdir -p "$OUT" "$LOGS"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
net="--base-channels 16 --channel-mult 1,2,2 --num-res-blocks 1 --attention-levels= --dropout 0"
common="--steps $STEPS --batch-size 64 --lr 1e-3 --warmup 200 --eval-every 1000 --eval-n 500 --max-minutes 70 --quiet"
for diffusion in ${DIFFUSIONS:-vpsde cld learned}; do
  ( python3 -m jdx train mdm --diffusion "$diffusion" $net $common ${RESUME:-} --out "$OUT/fmnist-mdm-$diffusion" \
      > "$LOGS/train-$diffusion.log" 2>&1 &&
    python3 -m jdx eval "$OUT/fmnist-mdm-$diffusion" --limit 2000 --bpd-repeats 2 --write --json \
      > "$LOGS/eval-$diffusion.json" 2> "$LOGS/eval-$diffusion.err" ) &
done
wait
