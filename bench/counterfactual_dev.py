"""Counterfactual settings on the dev split, never the benchmark's images (issue 12): M dime candidates per image
with one guide and (t*, s, λ); per candidate the separate classifier's verdict, the third classifier's (where
runs/third-classifier.pt exists), the L1 change, the joint model's k-NN typicality and its held probability
(the worst shifted copy's p(target)); then the single-candidate figures (mean over the M seeds) and best-of under
both selection rules: the most typical (k-NN; sessions 7–11) and the smallest held one (the library's since
session 12), with M candidates and with 2 (the first two, and the mean of the windows (0, 1) and (2, 3)).

    python bench/counterfactual_dev.py --guide shifted --scale 400 --lam 2 [--m 4] [--out runs/cf-dev]

Dev: test images randperm(10000, seed 0)[1000:1160], targets ≠ label drawn with seed 123; candidate m of image i
starts from seed 1000 + i + m · SEED_STEP (as best-of's candidate m). One JSON per setting under --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jdx  # noqa: E402
from jdx.counterfactual import HOLD_P, SEED_STEP, counterfactual, keep_candidate  # noqa: E402
from jdx.counterfactual_methods import held_probability  # noqa: E402
from jdx.counterfactual_references import target_distance  # noqa: E402
from jdx.data import load_like  # noqa: E402

DEV = slice(1000, 1160)


def dev_split(test, num_classes: int):
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[DEV]
    g = torch.Generator().manual_seed(123)
    return idx, (test.labels[idx] + torch.randint(1, num_classes, (len(idx),), generator=g)) % num_classes


def candidates(model, clf, third, test, idx, target, m: int, batch: int = 40, **kw) -> dict[str, np.ndarray]:
    """(images, m) arrays: valid, valid3, l1, knn, held (held_probability: the worst shifted copy's p(target))."""
    out = {k: np.zeros((len(idx), m)) for k in ("valid", "valid3", "l1", "knn", "held")}
    for i in range(0, len(idx), batch):
        x, tg = test.to_model(idx[i:i + batch]), target[i:i + batch]
        w = torch.nn.functional.one_hot(tg, model.num_classes).float()
        for j in range(m):
            cf = counterfactual(model, x, w, method="dime", seed=[1000 + i + r + j * SEED_STEP for r in range(len(x))],
                                **kw)
            rows = slice(i, i + len(x))
            out["valid"][rows, j] = (clf.predict(cf.x_cf).argmax(-1) == tg).numpy()
            out["valid3"][rows, j] = (third.predict(cf.x_cf).argmax(-1) == tg).numpy() if third is not None else np.nan
            out["l1"][rows, j] = cf.l1.numpy()
            out["knn"][rows, j] = target_distance(model, cf.x_cf, w).numpy()
            out["held"][rows, j] = held_probability(model, cf.x_cf, w).numpy()
        print(f"{i + len(x)}/{len(idx)} images", flush=True)
    return out


def choose(a: dict[str, np.ndarray], cols: list[int], rule: str) -> np.ndarray:
    """The candidate (index into cols) each image keeps: "typical" = nearest the target's training features
    (the library's best-of until session 11); "held" = the smallest L1 among candidates held at ≥ HOLD_P on
    every shifted copy, else the most typical (the library's since session 12)."""
    knn, l1, held = (torch.from_numpy(np.ascontiguousarray(a[k][:, cols].T)) for k in ("knn", "l1", "held"))
    if rule == "typical":
        return knn.argmin(0).numpy()
    return keep_candidate(held >= HOLD_P, l1, knn).numpy()            # the library's rule, on (M, N) arrays


def summary(a: dict[str, np.ndarray]) -> dict:
    n, m = np.arange(len(a["valid"])), a["valid"].shape[1]
    out = {"single": {k: float(np.nanmean(a[k])) for k in ("valid", "valid3", "l1")},
           "single_per_seed": a["valid"].mean(0).round(4).tolist(),
           "oracle_valid": float(a["valid"].max(1).mean())}
    for rule in ("typical", "held"):
        tag = "" if rule == "typical" else "_held"
        c = np.array(range(m))[choose(a, list(range(m)), rule)]
        out[f"best_of{tag}"] = {k: float(np.nanmean(a[k][n, c])) for k in ("valid", "valid3", "l1")}
        c2 = choose(a, [0, 1], rule)                           # best-of with 2 candidates: the first two …
        out[f"best_of_2{tag}"] = {k: float(np.nanmean(a[k][n, c2])) for k in ("valid", "valid3", "l1")}
        if m >= 4:                                             # … and their mean with the next two (less seed luck)
            c2b = 2 + choose(a, [2, 3], rule)
            out[f"best_of_2{tag}_two_windows"] = {k: float(np.nanmean(np.r_[a[k][n, c2], a[k][n, c2b]]))
                                                  for k in ("valid", "valid3", "l1")}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="checkpoints/fmnist-joint")
    p.add_argument("--classifier", default="checkpoints/fmnist-classifier")
    p.add_argument("--guide", default="shifted")
    p.add_argument("--t-star", type=int, default=300)
    p.add_argument("--scale", type=float, default=400.0)
    p.add_argument("--lam", type=float, default=2.0)
    p.add_argument("--m", type=int, default=4, help="candidates (seeds) per image")
    p.add_argument("--shifts", type=int, default=None, help="K of the shifted guide (default: the library's)")
    p.add_argument("--max-shift", type=int, default=None, help="its largest shift in pixels (default: the library's)")
    p.add_argument("--out", default="runs/cf-dev")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from jdx import counterfactual_methods as methods
    methods.SHIFTS = args.shifts or methods.SHIFTS
    methods.MAX_SHIFT = args.max_shift or methods.MAX_SHIFT
    sys.path.insert(0, str(ROOT / "bench"))
    from counterfactuals import third_classifier
    model, clf, third = jdx.load(args.ckpt), jdx.load(args.classifier), third_classifier()
    test = load_like(model.info.data, "test")
    idx, target = dev_split(test, model.num_classes)
    kw = dict(t_star=args.t_star, scale=args.scale, lam=args.lam, steps=10, guide=args.guide)
    tag = f"{args.guide}-t{args.t_star}-s{args.scale:g}-l{args.lam:g}"
    if args.guide == "shifted":
        tag += f"-k{methods.SHIFTS}-d{methods.MAX_SHIFT}"
    start = time.process_time()
    result = summary(candidates(model, clf, third, test, idx, target, args.m, **kw))
    result |= {"config": kw | {"shifts": methods.SHIFTS, "max_shift": methods.MAX_SHIFT}, "m": args.m, "cpu_seconds": time.process_time() - start,
               "command": "python bench/counterfactual_dev.py " + " ".join(argv or sys.argv[1:])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
