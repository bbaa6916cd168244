#!/usr/bin/env bash
# Three time-boxed joint-model runs side by side on one GPU (launch-bound, so they share the card), each
# annealing its learning rate over MINUTES; prints the full-test-set accuracy history. Usage:
#   OUT=dir MINUTES=7.5 bash scripts/gpu_joint_sweep.sh
set -u
OUT=${OUT:-out}; MINUTES=${MINUTES:-7.5}; W=${W:-/tmp/jdx-sweep}
mkdir -p "$OUT" "$W/ck" "$W/logs"; cd "$W"
common="joint --steps 200000 --batch-size 256 --eval-every 2000 --eval-n 10000 --max-minutes $MINUTES --lr-minutes $MINUTES --quiet"
run() { name=$1; shift; python3 -m jdx train $common "$@" --out "ck/$name" > "logs/$name.log" 2>&1; }
run joint-a --lr 3e-4 --lam 0.1 --compile &
run joint-b --lr 3e-4 --lam 0.1 &
run joint-c --lr 3e-4 --lam 0.3 &
wait
for f in logs/*.log; do echo "== $f"; grep -E "^step|max-minutes|Error|error" "$f" | tail -n 8; done
for n in a b c; do tar cf "$OUT/joint-$n.tar" ck/joint-$n.json ck/joint-$n.safetensors; done
tar cf "$OUT/logs.tar" logs
