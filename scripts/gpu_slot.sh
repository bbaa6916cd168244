#!/usr/bin/env bash
# One prepared GPU slot (≤ 12 minutes on one H100; no network): trains the undertrained models side by side
# (small models are launch-bound, so 7 processes share the GPU well), evaluates them there on the full test
# set, times the app's handlers, and packs what comes back into ≤ 8 files of ≤ 16 MB in $OUT.
#   OUT=dir bash scripts/gpu_slot.sh                 (on the lent machine: $OUT is the folder that comes back)
#   JDX_SLOT_TINY=1 OUT=runs/slot-tiny bash scripts/gpu_slot.sh      (rehearsal on a CPU: a few steps each)
# One device command may run 10 minutes at most, so on the lent machine it is two calls on the same warm
# machine (the work folder W, under runs/, stays there between calls):
#   PHASE=train OUT=$OUT bash scripts/gpu_slot.sh   (~6.2 min)   then   PHASE=eval OUT=$OUT bash scripts/gpu_slot.sh   (≤ 5 min)
# Runs, all at once, each capped at TRAIN_MIN minutes of wall time (--max-minutes, with --lr-minutes so a
# capped run still anneals; the JSONs say how many steps each made):
#   cdm             warm-started from checkpoints/fmnist-ddpm (--init; its JSON records it), batch 512
#   mdm-{vpsde,learned,cld,malda}   from scratch, one network, MDM_STEPS steps of batch 128, seed 0 each
#   joint, ddpm     from scratch, JOINT_STEPS steps of batch 256, same lr/seed (the JDM equal-budget claim)
# Needs: the Fashion-MNIST idx files in $JDX_DATA (carry them: .data/fashion-mnist), torch; Gradio is optional
# (scripts/slot_latency.py uses a stand-in where it is missing); captum is optional (attributions are skipped).
set -u
OUT=${OUT:-out}; W=${W:-$PWD/runs/slot-work}; PHASE=${PHASE:-all}; mkdir -p "$OUT" "$W/ck" "$W/logs" "$W/evals"
OUT=$(realpath "$OUT")
export JDX_DATA=${JDX_DATA:-$PWD/.data/fashion-mnist} GRADIO_ANALYTICS_ENABLED=False
T0=$(date +%s)
log() { echo "$(date -u +%H:%M:%S) +$(( $(date +%s) - T0 ))s $*" | tee -a "$W/logs/slot.log"; }
if [ "${JDX_SLOT_TINY:-0}" = 1 ]; then
  export OMP_NUM_THREADS=1 JDX_STUB_GRADIO=1     # rehearse the GPU machine's path: no Gradio there
  TRAIN_MIN=${TRAIN_MIN:-3}; MDM_STEPS=${MDM_STEPS:-3}; JOINT_STEPS=${JOINT_STEPS:-3}; CDM_STEPS=3
  MDM_B=8; JOINT_B=8; CDM_B=8; EVAL_N=16
  EVAL_MDM="--limit 32 --bpd-repeats 1 --batch 32"
  EVAL_IMG="--limit 32 --fid-samples 16 --steps 5 --batch 16 --cf-n 2 --cf-steps 3 --mse-n 8"
  EVAL_DDPM="$EVAL_IMG --elbo-n 2"; EVAL_CDM="$EVAL_IMG --ood-n 16"
  EVAL_TIMEOUT=${EVAL_TIMEOUT:-900}; LAT="--repeats 1 --class-size 3 --skip /attribute,/robustness,/gradients"; LAT_TIMEOUT=900
else
  TRAIN_MIN=${TRAIN_MIN:-5}; MDM_STEPS=${MDM_STEPS:-5000}; JOINT_STEPS=${JOINT_STEPS:-4000}; CDM_STEPS=200000
  MDM_B=128; JOINT_B=256; CDM_B=512; EVAL_N=2000
  EVAL_MDM="--limit 0 --bpd-repeats 4"                 # the full test set, 4 ELBO draws per image
  EVAL_IMG="--fid-samples ${FID_N:-10000}"
  EVAL_DDPM="$EVAL_IMG --elbo-n ${ELBO_N:-1000} --cf-n 0"; EVAL_CDM="$EVAL_IMG"
  EVAL_TIMEOUT=${EVAL_TIMEOUT:-150}; LAT="--repeats 5 --class-size 30"; LAT_TIMEOUT=${LAT_TIMEOUT:-120}
fi
log "start $PHASE: TRAIN_MIN=$TRAIN_MIN MDM_STEPS=$MDM_STEPS JOINT_STEPS=$JOINT_STEPS tiny=${JDX_SLOT_TINY:-0}"
python3 -c "import torch, jdx; from jdx.data import load_fashion_mnist; load_fashion_mnist('test'); \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$W/logs/slot.log" \
  || { log "environment check failed"; exit 1; }
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader >> "$W/logs/slot.log" 2>/dev/null

if [ "$PHASE" != eval ]; then
# ---- training: all at once --------------------------------------------------------------------------------
cap="--max-minutes $TRAIN_MIN --lr-minutes $TRAIN_MIN --quiet --seed 0"
train() { name=$1; shift; python3 -m jdx train "$@" $cap --eval-n "$EVAL_N" --out "$W/ck/$name" > "$W/logs/train-$name.log" 2>&1
          log "train $name: exit $? ($(grep -cE '^step' "$W/logs/train-$name.log") evaluations)"; }
mdm_net="--base-channels 16 --channel-mult 1,2,2 --num-res-blocks 1 --attention-levels= --dropout 0"
pids=()
train cdm cdm --init checkpoints/fmnist-ddpm --steps $CDM_STEPS --batch-size $CDM_B --lr 4e-4 --warmup 100 \
  --eval-every 1000 & pids+=($!)
for d in vpsde learned cld malda; do
  train "mdm-$d" mdm --diffusion $d $mdm_net --steps $MDM_STEPS --batch-size $MDM_B --lr 1e-3 --warmup 200 \
    --eval-every 100000 --no-amp & pids+=($!)      # fp32 as the CPU-trained MDMs (launch-bound: no cost)
done
for kind in joint ddpm; do
  train "$kind" $kind --steps $JOINT_STEPS --batch-size $JOINT_B --lr 4e-4 --warmup 200 --lam ${LAM:-0.1} \
    --eval-every 100000 & pids+=($!)
done
wait "${pids[@]}"
log "training done"
(cd "$W" && tar cf "$OUT/train-logs.tar" logs)
fi
[ "$PHASE" = train ] && exit 0

# ---- evaluation: all at once, each with a time limit; then the handlers alone on the GPU --------------------
ev() { name=$1; shift; timeout "$EVAL_TIMEOUT" python3 -m jdx eval "$W/ck/$name" --write --json "$@" \
         > "$W/evals/eval-$name.json" 2> "$W/evals/eval-$name.err"; log "eval $name: exit $?"; }
for d in vpsde learned cld malda; do ev "mdm-$d" $EVAL_MDM & done
ev joint $EVAL_IMG &
ev ddpm $EVAL_DDPM &
ev cdm $EVAL_CDM &
# the shipped diffusion-only model's FID at the same sample count: the CDM target's yardstick (not written back)
timeout "$EVAL_TIMEOUT" python3 -m jdx eval checkpoints/fmnist-ddpm --json $EVAL_IMG --elbo-n 0 --cf-n 0 \
  > "$W/evals/eval-shipped-ddpm.json" 2> "$W/evals/eval-shipped-ddpm.err" && log "eval shipped ddpm: exit 0" &
wait
timeout "$LAT_TIMEOUT" python3 scripts/slot_latency.py $LAT --out "$W/evals/latency.md" > "$W/logs/latency.log" 2>&1
log "latency: exit $?"

# ---- pack: ≤ 8 files of ≤ 16 MB come back ------------------------------------------------------------------
for f in "$W"/ck/*.safetensors; do
  size=$(stat -c %s "$f")
  if [ "$size" -gt 16000000 ]; then      # not expected at these sizes (≤ 7 MB in fp32); halve it if it happens
    python3 -c "import sys, torch, jdx; from jdx import checkpoint; m = jdx.load(sys.argv[1]); \
checkpoint.save(m, sys.argv[1], m.info.data, m.info.training, m.info.metrics, dtype=torch.float16)" "${f%.safetensors}"
    log "$(basename "$f"): $size bytes > 16 MB, saved as float16"
  fi
done
(cd "$W/ck" && tar cf "$OUT/ck-mdm.tar" mdm-*.json mdm-*.safetensors)
for n in cdm joint ddpm; do (cd "$W/ck" && tar cf "$OUT/ck-$n.tar" $n.json $n.safetensors); done
log "packed; total $(( $(date +%s) - T0 )) s"
(cd "$W" && tar cf "$OUT/results.tar" logs evals)
ls -l "$OUT"
