#!/bin/bash
export JDX_DATA=$PWD/.data/fashion-mnist GRADIO_ANALYTICS_ENABLED=False
C=runs/recheck/ck; E=/tmp/e; mkdir -p $E
for d in vpsde learned cld malda; do timeout 150 python3 -m jdx eval $C/mdm-$d --json --limit 0 --bpd-repeats 4 > $E/mdm-$d.json 2> $E/mdm-$d.err & done
wait
for d in vpsde learned cld malda; do python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['diffusion'].pop('Q',0); d['diffusion'].pop('D',0); print(json.dumps(d))" $E/mdm-$d.json || tail -n 3 $E/mdm-$d.err; done
timeout 100 python3 scripts/slot_latency.py --repeats 5 --out $OUT/latency.md 2>&1 | grep -i "auxiliary\|denoise"
