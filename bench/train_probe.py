"""Time training steps of several model shapes/batches (eager vs torch.compile) to size a training run.

    python bench/train_probe.py --device cuda
"""
import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import Bench, time_call  # noqa: E402

from jdx.train import TrainConfig, pick_device  # noqa: E402


def time_train(cfg: TrainConfig, device, batch: int, steps: int, compile_: bool) -> float:
    """Wall seconds per training step of the loop's own step (bench/speed.py's Bench), after 3 warm-up steps."""
    bench = Bench(cfg, device, batch, compile_=compile_)
    return time_call(bench.step, steps, device, warmup=3)[0]


ap = argparse.ArgumentParser()
ap.add_argument("--device", default="auto")
ap.add_argument("--steps", type=int, default=50)
args = ap.parse_args()
device = pick_device(args.device)
small = TrainConfig()
paper = replace(small, base_channels=64, num_res_blocks=3, attention_levels=(1, 2), dropout=0.3)
print("| model | kind | batch | compile | ms/step |\n|---|---|---|---|---|")
for name, cfg in [("small", small), ("paper", paper)]:
    for kind in ("joint", "ddpm"):
        for batch in (128, 256):
            for comp in (False, True):
                if kind == "ddpm" and (comp or batch == 256):
                    continue
                try:
                    t0 = time.time()
                    s = time_train(replace(cfg, kind=kind), device, batch, args.steps, comp)
                    print(f"| {name} | {kind} | {batch} | {comp} | {s * 1000:.1f} | (setup {time.time() - t0:.0f}s)", flush=True)
                except Exception as e:  # a failed compile must not hide the other rows
                    print(f"| {name} | {kind} | {batch} | {comp} | failed: {type(e).__name__}: {str(e)[:200]} |", flush=True)
