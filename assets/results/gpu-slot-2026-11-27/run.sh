#!/bin/bash
# Re-check on the GPU after the supports()/device fixes: the slot's trained checkpoints (FID needs the training
# set, which does not fit the carry limit: --fid-samples 0), then the handlers.
export JDX_DATA=$PWD/.data/fashion-mnist GRADIO_ANALYTICS_ENABLED=False
python3 -V; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
E=$OUT/e; mkdir -p $E; C=runs/recheck/ck
for d in vpsde learned cld malda; do timeout 200 python3 -m jdx eval $C/mdm-$d --json --limit 0 --bpd-repeats 4 > $E/mdm-$d.json 2> $E/mdm-$d.err & done
timeout 200 python3 -m jdx eval $C/joint --json --fid-samples 0 --cf-n 200 > $E/joint.json 2> $E/joint.err &
timeout 200 python3 -m jdx eval $C/ddpm --json --fid-samples 0 --cf-n 0 --elbo-n 2000 > $E/ddpm.json 2> $E/ddpm.err &
timeout 200 python3 -m jdx eval $C/cdm --json --fid-samples 0 > $E/cdm.json 2> $E/cdm.err &
wait
timeout 100 python3 scripts/slot_latency.py --repeats 5 --out $E/latency.md > $E/latency.log 2>&1
tail -n 3 $E/*.err | cut -c1-300; cat $E/latency.md
