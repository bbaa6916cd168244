#!/usr/bin/env bash
# The semi-supervised and domain-shift experiments of issue 6 on a 2-core CPU, in two single-thread lanes
# (≈ 50 min). Every run: same encoder (the shipped U-Net shape), same steps, batch and labelled pool.
#   joint  : diffusion loss on every unlabelled image + λ·CE on the labelled pool, U-Net initialised from
#            the shipped diffusion-only checkpoint (pre-trained on unlabelled images; its head starts fresh)
#   ce     : the same encoder + head trained on CE alone from scratch (the plain classifier)
#   ce-pre : CE alone, starting from the same diffusion-pre-trained U-Net (isolates the pre-training)
# Results: runs/repr/*.json (final metrics on the full 10k test set); scripts/experiment_table.py tabulates.
# Usage: STEPS=400 bash scripts/representation_experiments.sh     (SEEDS="1 2": only the semi-supervised pairs, other seeds)
set -u
STEPS=${STEPS:-400}; R=${R:-runs/repr}; mkdir -p "$R"
export OMP_NUM_THREADS=1
common="--steps $STEPS --batch-size 32 --warmup 50 --eval-every $STEPS --eval-n 10000 --save-dtype float16 --quiet"
# a run whose JSON reports all $STEPS steps is done; anything else (re)starts, resuming when it can
run() { name=$1; shift; python3 -c "import json,sys; sys.exit(json.load(open('$R/$name.json'))['training']['steps'] < $STEPS)" 2>/dev/null && return
        [ -f "$R/$name.train-state.pt" ] && set -- "$@" --resume; python3 -m jdx train joint "$@" $common --out "$R/$name" > "$R/$name.log" 2>&1; }
joint="--init checkpoints/fmnist-ddpm --lam 0.1"
ce="--diffusion-weight 0 --lam 1"
ce_pre="--diffusion-weight 0 --lam 1 --init checkpoints/fmnist-ddpm"
if [ -n "${SEEDS:-}" ]; then      # SEEDS="0 1 2": the semi-supervised joint/CE pairs, one run per seed
  # (the seed draws the labelled images, the head's initial weights and the batches); NAME-sS per run.
  # A joint step costs ~3 CE steps: lane 1 takes the joint runs of every seed but the last, lane 2 the CE runs,
  # then the last seed's joint runs.
  jrun() { run semi10-joint-s$1 $joint --labels-per-class 10 --seed $1; run semi100-joint-s$1 $joint --labels-per-class 100 --seed $1; }
  last=${SEEDS##* }
  ( for s in $SEEDS; do [ "$s" = "$last" ] || jrun $s; done ) &
  ( for s in $SEEDS; do run semi10-ce-s$s $ce --labels-per-class 10 --seed $s
                        run semi100-ce-s$s $ce --labels-per-class 100 --seed $s; done; jrun $last ) &
  wait; exit 0
fi
(
  run semi10-joint $joint --labels-per-class 10
  run semi100-joint $joint --labels-per-class 100
  run shift-joint-both $joint --shift invert
  run shift-joint-source $joint --shift invert --no-target-diffusion
) &
(
  run semi10-ce $ce --labels-per-class 10
  run semi100-ce $ce --labels-per-class 100
  run semi10-ce-pre $ce_pre --labels-per-class 10
  run semi100-ce-pre $ce_pre --labels-per-class 100
  run shift-ce $ce --shift invert
  run shift-ce-pre $ce_pre --shift invert
  run semi-all-ce $ce
) &
wait
