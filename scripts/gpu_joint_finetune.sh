#!/usr/bin/env bash
# Fine-tunes a joint checkpoint on one GPU with large batches (the runs are launch-bound: a 4× batch costs
# little more per step), two settings side by side, each annealing over MINUTES. Usage:
#   INIT=runs/gpu/joint-a OUT=dir MINUTES=8 bash scripts/gpu_joint_finetune.sh
set -u
OUT=${OUT:-out}; MINUTES=${MINUTES:-8}; INIT=$(realpath "$INIT"); W=${W:-/tmp/jdx-ft}
mkdir -p "$OUT" "$W/ck" "$W/logs"; cd "$W"
common="joint --init $INIT --steps 200000 --warmup 200 --lam 0.1 --eval-every 2000 --eval-n 10000 --max-minutes $MINUTES --lr-minutes $MINUTES --compile --quiet"
run() { name=$1; shift; python3 -m jdx train $common "$@" --out "ck/$name" > "logs/$name.log" 2>&1; }
run joint-d --batch-size 1024 --lr 6e-4 &
run joint-e --batch-size 512 --lr 3e-4 &
wait
for f in logs/*.log; do echo "== $f"; grep -E "^step|max-minutes|Error|error" "$f" | tail -n 8; done
for n in d e; do tar cf "$OUT/joint-$n.tar" ck/joint-$n.json ck/joint-$n.safetensors; done
tar cf "$OUT/logs.tar" logs
