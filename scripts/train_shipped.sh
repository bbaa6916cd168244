#!/usr/bin/env bash
# Trains and evaluates the shipped Fashion-MNIST checkpoints on one GPU in about 9 minutes (the runs are
# launch-bound, so concurrent processes share the card). Usage:
#   OUT=dir MINUTES=6.3 bash scripts/train_shipped.sh
# Needs the Fashion-MNIST idx files in $JDX_DATA (or Debian's dataset-fashion-mnist). Leaves in $OUT:
# shipped.tar (checkpoints, no training state) and logs.tar.
set -u
OUT=${OUT:-out}; MINUTES=${MINUTES:-6.3}; EVAL_N=${EVAL_N:-10000}; CF_N=${CF_N:-200}; STEPS=${STEPS:-7000}
W=${W:-/tmp/jdx-train}; mkdir -p "$OUT" "$W/ck" "$W/logs"
cd "$W"
common="--batch-size 256 --eval-every 1000 --eval-n 2000 --quiet"
train() { name=$1; shift; python3 -m jdx train "$@" --out "ck/$name" $common > "logs/train-$name.log" 2>&1; }
train fmnist-classifier classifier --steps $((STEPS / 2)) --lr 1e-3 --max-minutes "$MINUTES" &
train fmnist-joint joint --steps "$STEPS" --lam 0.1 --max-minutes "$MINUTES" &
train fmnist-ddpm ddpm --steps "$STEPS" --max-minutes "$MINUTES" &
wait
python3 "$OLDPWD/bench/speed.py" --ckpt ck/fmnist-joint --train-steps 30 > logs/bench-gpu.md 2>&1
ev() { name=$1; shift; timeout 170 python3 -m jdx eval "$@" --feature-classifier ck/fmnist-classifier --json > "logs/$name.json" 2> "logs/$name.err"; }
ev eval-joint ck/fmnist-joint --fid-samples "$EVAL_N" --cf-n "$CF_N" --write &
ev eval-ddpm ck/fmnist-ddpm --fid-samples "$EVAL_N" --write &
ev eval-classifier ck/fmnist-classifier --write &
for s in 1 2 8; do ev "guided-s$s" ck/fmnist-joint --fid-samples 1000 --cf-n 0 --guidance $s & done
for s in 3 30; do ev "cf-s$s" ck/fmnist-joint --fid-samples 0 --cf-n "$CF_N" --cf-guidance $s & done
ev cf-t100 ck/fmnist-joint --fid-samples 0 --cf-n "$CF_N" --cf-noise 100 &
wait
tail -n 2 logs/train-*.log; cat logs/bench-gpu.md; head -c 600 logs/eval-joint.json; echo
tar cf "$OUT/shipped-joint.tar" ck/fmnist-joint.json ck/fmnist-joint.safetensors
tar cf "$OUT/shipped-rest.tar" ck/fmnist-ddpm.json ck/fmnist-ddpm.safetensors ck/fmnist-classifier.json ck/fmnist-classifier.safetensors
tar cf "$OUT/logs.tar" logs
ls -la "$OUT"
