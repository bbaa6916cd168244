"""Out-of-distribution scores of a joint checkpoint (with a CDM for the likelihood): compute every candidate
on training images, test images and each unfamiliar set, calibrate the combined score's threshold on the
training images, and write the AUROC table.

    OMP_NUM_THREADS=1 python3 scripts/ood_table.py checkpoints/fmnist-joint --cdm checkpoints/fmnist-cdm

Writes assets/results/ood/calibration-NAME.json (read by `jdx predict` and the app), auroc-NAME.json and
auroc-NAME.md. Components are cached in --cache (set|component → values) so a run can resume.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import jdx
from jdx.data import load_like
from jdx.likelihood import auroc, unfamiliar_sets
from jdx.ood import (CALIBRATION_DIR, OOD_COMPONENTS, Calibration, Components, FeatureGaussians, combine, components,
                     pooled_features)

RAW = {"cdm_bpd": "raw likelihood (bits/dim)", "png_bpd": "PNG bits/dim", "complexity": "bits/dim − PNG bits/dim",
       "denoise_error": "x̂₀ error from t = 0.2 T", "disagreement": "classifier change across t",
       "feature_distance": "Mahalanobis distance of the classifier's features"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--cdm", default="checkpoints/fmnist-cdm")
    p.add_argument("--train-n", type=int, default=500)
    p.add_argument("--test-n", type=int, default=1000)
    p.add_argument("--ood-n", type=int, default=200)
    p.add_argument("--fit-n", type=int, default=2500, help="training images (after the first train-n) for the "
                   "class-conditional feature Gaussians")
    p.add_argument("--percentile", type=float, default=95.0)
    p.add_argument("--weights", default=",".join(f"{k}={v}" for k, v in OOD_COMPONENTS.items()),
                   help="components of the score and their signs, e.g. complexity=1,denoise_error=1")
    p.add_argument("--cache", default="/tmp/jdx-ood-components.npz")
    p.add_argument("--out", default=str(CALIBRATION_DIR))
    args = p.parse_args()
    torch.set_num_threads(1)
    model, cdm = jdx.load(args.ckpt).eval(), jdx.load(args.cdm).eval()
    test = load_like(model.info.data, "test").to_model(slice(0, args.test_n))
    train = load_like(model.info.data, "train").to_model(slice(0, args.train_n))
    sets = {"train": train, "test": test, **unfamiliar_sets(test, args.ood_n, seed=1)}
    out = Path(args.out)
    name = Path(args.ckpt).name
    fit = load_like(model.info.data, "train")
    fit_x = fit.to_model(slice(args.train_n, args.train_n + args.fit_n))
    feats = torch.cat([pooled_features(model, fit_x[i:i + 250]) for i in range(0, len(fit_x), 250)])
    gaussians = FeatureGaussians.fit(feats, fit.labels[args.train_n:args.train_n + args.fit_n], model.num_classes)
    features_path = out / f"features-{name}.safetensors"
    gaussians.save(features_path)
    cache = Path(args.cache)
    got = dict(np.load(cache)) if cache.is_file() else {}
    comps = {}
    for set_name, x in sets.items():
        missing = tuple(f for f in Components._fields if not (f"{set_name}|{f}" in got and len(got[f"{set_name}|{f}"]) == len(x)))
        if missing:
            t0 = time.time()
            c = components(model, cdm, x, seed=0, gaussians=gaussians, only=missing)
            got.update({f"{set_name}|{f}": getattr(c, f).numpy() for f in missing})
            np.savez(cache, **got)
            print(f"{set_name}: {len(x)} images, {', '.join(missing)}: {time.time() - t0:.0f} s", flush=True)
        comps[set_name] = Components(*(torch.from_numpy(got[f"{set_name}|{f}"]) for f in Components._fields))

    weights = {k: float(v) for k, v in (kv.split("=") for kv in args.weights.split(","))}
    tr = comps["train"]
    cal = Calibration(str(Path(args.ckpt)), str(Path(args.cdm)),
                      {k: float(getattr(tr, k).mean()) for k in Components._fields},
                      {k: float(getattr(tr, k).std()) for k in Components._fields}, weights,
                      percentile=args.percentile, train_images=len(train),
                      features=str(features_path.resolve().relative_to(Path.cwd().resolve())))
    cal.threshold = float(np.percentile(combine(tr, cal).numpy(), args.percentile))
    cal.save(out / f"calibration-{name}.json")

    score = {k: combine(c, cal) for k, c in comps.items()}
    table = {"score": {}, "flagged": {}}
    for comp in Components._fields:      # each candidate alone, larger = OOD (raw likelihood: higher bits/dim)
        table[comp] = {s: auroc(getattr(comps["test"], comp), getattr(comps[s], comp)) for s in sets if s not in ("train", "test")}
    table["score"] = {s: auroc(score["test"], score[s]) for s in sets if s not in ("train", "test")}
    table["flagged"] = {s: float((score[s] > cal.threshold).float().mean()) for s in sets}
    report = {"checkpoint": name, "cdm": Path(args.cdm).name, "weights": weights, "threshold": cal.threshold,
              "percentile": args.percentile, "train_n": args.train_n, "fit_n": args.fit_n, "test_n": args.test_n, "ood_n": args.ood_n,
              "auroc": table}
    (out / f"auroc-{name}.json").write_text(json.dumps(report, indent=1))
    ood = [s for s in sets if s not in ("train", "test")]
    lines = ["| score | " + " | ".join(ood) + " | min |", "|---|" + "---|" * (len(ood) + 1)]
    for comp in list(Components._fields) + ["score"]:
        label = RAW.get(comp, f"**combined OOD score** (max of standardised {', '.join(weights)})")
        vals = [table[comp][s] for s in ood]
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {min(vals):.3f} |")
    flagged = ", ".join(f"{s} {v:.1%}" for s, v in table["flagged"].items())
    md = (f"OOD AUROC (test images vs. each set; higher score = OOD), {name} + {Path(args.cdm).name}; "
          f"{args.test_n} test, {args.ood_n} per set; feature Gaussians fitted on training images "
          f"{args.train_n}…{args.train_n + args.fit_n - 1}; threshold = {args.percentile:g}th percentile of the first "
          f"{args.train_n} training images = {cal.threshold:.3f}\n\n" + "\n".join(lines)
          + f"\n\nFlagged as OOD: {flagged}\n")
    (out / f"auroc-{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
