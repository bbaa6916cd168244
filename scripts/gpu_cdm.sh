#!/usr/bin/env bash
# On one GPU: trains checkpoints/fmnist-cdm for MINUTES while the shipped joint and ddpm checkpoints are
# evaluated (FID, guided samples, counterfactuals, the DDPM bound in bits/dim, denoising MSE vs. t); then
# evaluates the CDM (test NLL, OOD AUROC, MSE vs. t beside the ddpm, FID). Run from the repo root:
#   OUT=dir MINUTES=5.5 bash scripts/gpu_cdm.sh      → $OUT/results.tar (checkpoint JSONs, CDM weights, logs)
set -u
OUT=${OUT:-out}; MINUTES=${MINUTES:-5.5}; mkdir -p "$OUT" logs-gpu
jdx() { python3 -m jdx "$@"; }
jdx train cdm --steps 200000 --batch-size 512 --lr 4e-4 --max-minutes "$MINUTES" --lr-minutes "$MINUTES" \
  --eval-every 1000 --eval-n 2000 --out checkpoints/fmnist-cdm --quiet > logs-gpu/train-cdm.log 2>&1 &
train=$!
timeout 420 python3 -m jdx eval checkpoints/fmnist-joint --write --json --elbo-n 2000 --mse-n 1000 --compare '' \
  > logs-gpu/eval-joint.json 2> logs-gpu/eval-joint.err &
timeout 420 python3 -m jdx eval checkpoints/fmnist-ddpm --write --json --fid-samples 0 --elbo-n 10000 --mse-n 1000 \
  > logs-gpu/eval-ddpm.json 2> logs-gpu/eval-ddpm.err &
wait $train
timeout 170 python3 -m jdx eval checkpoints/fmnist-cdm --write --json > logs-gpu/eval-cdm.json 2> logs-gpu/eval-cdm.err &
timeout 60 python3 -m jdx sample checkpoints/fmnist-cdm --n 100 --out "$OUT/cdm-samples.png" > logs-gpu/sample-cdm.log 2>&1 &
wait
tail -n 3 logs-gpu/train-cdm.log; for f in logs-gpu/*.json; do echo "== $f"; head -c 700 "$f"; echo; done
tail -n 3 logs-gpu/*.err
tar cf "$OUT/results.tar" checkpoints/*.json checkpoints/fmnist-cdm.safetensors logs-gpu
