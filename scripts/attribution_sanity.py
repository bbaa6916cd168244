"""The model-randomisation sanity check (Adebayo et al. 2018) for every offered attribution method on a
checkpoint: mean Spearman ρ of |map| (trained vs. head re-drawn, vs. all weights re-drawn) over the first N
test images. Writes assets/results/attribution/sanity-<ckpt>.json and .md, one method at a time (resumable).

    OMP_NUM_THREADS=1 python3 scripts/attribution_sanity.py checkpoints/fmnist-joint --n 30
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import jdx
from jdx.attribution import DEFAULT, METHODS, sanity_check
from jdx.data import load_like


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out", default="assets/results/attribution")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = jdx.load(args.ckpt).eval()
    x = load_like(model.info.data, "test").to_model(slice(0, args.n))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"sanity-{Path(args.ckpt).name}.json"
    rows = json.loads(path.read_text()) if path.is_file() else {}
    for name in args.methods.split(","):
        if name in rows and rows[name]["images"] >= args.n:
            continue
        t0 = time.time()
        r = sanity_check(model, x, name)
        rows[name] = {"rho_head": round(r.rho_head, 4), "rho_all": round(r.rho_all, 4), "images": r.images,
                      "passes": r.passes(), "seconds": round(time.time() - t0, 1)}
        path.write_text(json.dumps(rows, indent=1))
        print(name, rows[name], flush=True)
    lines = ["| method | ρ head re-drawn | ρ all re-drawn | passes (≤ 0.5 / ≤ 0.3) |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name}{' (default)' if name == DEFAULT else ''} | {r['rho_head']:.2f} | {r['rho_all']:.2f} | "
                     f"{'yes' if r['passes'] else 'no'} |")
    (out / f"sanity-{Path(args.ckpt).name}.md").write_text(
        f"Model-randomisation check, {Path(args.ckpt).name}, first {args.n} test images, mean Spearman ρ of |map|\n\n"
        + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
