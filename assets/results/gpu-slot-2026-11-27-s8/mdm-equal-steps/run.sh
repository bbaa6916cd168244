mkdir -p .data/fashion-mnist && cp .slotdata/t10k-* .slotdata/train-labels* .data/fashion-mnist/ && xz -dc .slotdata/train-images-idx3-ubyte.xz > .data/fashion-mnist/train-images-idx3-ubyte
export JDX_DATA=$PWD/.data/fashion-mnist; W=runs/m2; mkdir -p $W
net="--base-channels 16 --channel-mult 1,2,2 --num-res-blocks 1 --attention-levels= --dropout 0"
for d in vpsde learned; do for s in 0 1; do
 (python3 -m jdx train mdm --diffusion $d $net --steps 1500 --batch-size 128 --lr 1e-3 --warmup 200 --eval-every 100000 --no-amp --quiet --seed $s --max-minutes 2.2 --eval-n 2000 --out $W/$d-s$s > $W/train-$d-s$s.log 2>&1; python3 -m jdx eval $W/$d-s$s --json --limit 0 --bpd-repeats 4 > $OUT/eval-$d-s$s.json 2>/dev/null) &
done; done; wait; cd $W && tar cf $OUT/ck.tar *.json *.safetensors *.log; cat $OUT/eval-*.json | cut -c1-300
