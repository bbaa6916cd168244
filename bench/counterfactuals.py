"""Counterfactual benchmark: every method on a small grid of (t*, s, λ), on the same N test images with random
targets (≠ their label) and on the Fashion-MNIST pairs of C3LT (Khorram & Fuxin, CVPR 2022).

    python bench/counterfactuals.py [--n 100] [--configs grid|default|NAME…] [--c3lt-n 20] [--out DIR]

Per configuration: flip rate (the joint classifier), validity (the separate classifier), mean L1 and RMS change
(pixels in [0, 1]), COUT (Khorram & Fuxin: the mean of p(target) − p(source) under the joint classifier as the
counterfactual's pixels are copied into the original in order of |change|; in [−1, 1]), FID of the
counterfactuals against real test images of their target classes (separate classifier's features; a biased
small-N estimate, comparable only at the same N) and seconds per edit on this CPU (one thread, batch 50; CPU time
of the process, which a shared machine disturbs less than wall time). Where runs/third-classifier.pt exists
(bench/third_classifier.py: an MLP the project never trained), validity by that third classifier too.
Each configuration is written to DIR/runs/<name>.json as soon as it is done and skipped when it exists, so the
script resumes; the table (DIR/counterfactuals.md, .json) and the plot (validity vs. L1, one curve per method)
are rebuilt from all runs at the end.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jdx  # noqa: E402
from jdx import fid  # noqa: E402
from jdx.counterfactual import CANDIDATES, DEFAULT, HOLD_P, PER_METHOD, counterfactual  # noqa: E402
from jdx.data import FASHION_MNIST_CLASSES as FMNIST_CLASSES, load_like  # noqa: E402

# The grid: ~3 points per method, from small to large edits. name → keyword arguments of counterfactual().
GRID = {
    "sdedit-t150-s200": dict(method="sdedit", t_star=150, scale=200.0),
    "sdedit-t250-s100": dict(method="sdedit", t_star=250, scale=100.0),     # the first default
    "dime-t150-s200-l1": dict(method="dime", t_star=150, scale=200.0, lam=1.0),
    "dime-t200-s200-l1": dict(method="dime", t_star=200, scale=200.0, lam=1.0),
    "dime-t250-s200-l2": dict(method="dime", t_star=250, scale=200.0, lam=2.0),
    "ace-t100-s200": dict(method="ace", t_star=100, scale=200.0),
    "ace-t150-s200": dict(method="ace", t_star=150, scale=200.0),
    "ddim-inversion-t100-s200": dict(method="ddim-inversion", t_star=100, scale=200.0),
    "ddim-inversion-t150-s200": dict(method="ddim-inversion", t_star=150, scale=200.0),
    "dime-t300-s400-l1.5": dict(method="dime", t_star=300, scale=400.0, lam=1.5),     # session 6's default
    "adaptive-t200-s300-l1.5": dict(method="adaptive", t_star=200, scale=300.0, lam=1.5),
    "best-of-t300-s400-l1.5": dict(method="best-of", t_star=300, scale=400.0, lam=1.5),   # session 7's default (4 candidates)
}
for _kw in GRID.values():          # these ran with the plain guide (the default until session 9): names stay true
    _kw.setdefault("guide", "x_t")
# Session 9: the classifier's gradient averaged over shifted and mirrored copies (guide "shifted").
GRID |= {f"dime-shifted-t300-s{s:g}-l{lam:g}": dict(method="dime", t_star=300, scale=float(s), lam=lam, guide="shifted")
         for s, lam in ((400, 1.5), (400, 2.0), (300, 1.5), (300, 2.0))}
# Where the classifier's gradient is taken (jdx.counterfactual_methods.GUIDES): DiME at one setting with each.
GUIDE_GRID = {f"dime-t150-s200-l1-{g}": dict(method="dime", t_star=150, scale=200.0, lam=1.0, guide=g)
              for g in ("x0_hat", "noisy", "unet")}
C3LT_PAIRS = [(0, 2), (2, 0), (7, 9), (9, 7), (4, 6), (6, 4)]   # T-shirt↔Pullover, Sneaker↔Ankle boot, Coat↔Shirt
COUT_STEPS = 10


def default_config() -> dict:
    d = DEFAULT
    return dict(method=d.method, t_star=d.t_star, scale=d.scale, lam=d.lam, steps=d.steps, guide=d.guide)


@torch.no_grad()
def cout(model, x, x_cf, source, target, k: int = COUT_STEPS) -> torch.Tensor:
    """COUT per image: mean over f ∈ {0, 1/k, …, 1} of p(target) − p(source) on the original with the fraction f
    of its pixels, largest |change| first, taken from the counterfactual (trapezoid rule)."""
    change = (x_cf - x).abs().mean(1).flatten(1)                       # (B, H·W)
    order = change.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
    rank = rank.view(x.shape[0], 1, *x.shape[2:])
    curve = []
    for f in torch.linspace(0, 1, k + 1):
        m = (rank < f * order.shape[1]).float()
        p = model.predict(m * x_cf + (1 - m) * x)
        curve.append(p.gather(1, target[:, None])[:, 0] - p.gather(1, source[:, None])[:, 0])
    c = torch.stack(curve, 1)                                           # (B, k + 1)
    return (c[:, 1:] + c[:, :-1]).mean(1) / 2


def third_classifier():
    """The MLP of bench/third_classifier.py if it was trained here (runs/ is not committed), else None."""
    path = ROOT / "runs" / "third-classifier.pt"
    if not path.exists():
        return None
    sys.path.insert(0, str(ROOT / "bench"))
    from third_classifier import load
    return load(path)


def run(model, clf, test, idx, target, kw: dict, batch: int = 50, third=None) -> dict:
    """One configuration on test images idx with per-image targets."""
    flips = valid = valid3 = 0
    rungs, held = [], []
    l1, rms, couts, feats = [], [], [], []
    seconds = 0.0
    for i in range(0, len(idx), batch):
        x = test.to_model(idx[i:i + batch])
        y, tgt = test.labels[idx[i:i + batch]], target[i:i + batch]
        w = torch.nn.functional.one_hot(tgt, model.num_classes).float()
        start = time.process_time()
        cf = counterfactual(model, x, w, seed=i, **kw)
        seconds += time.process_time() - start
        if cf.rung is not None:
            rungs.append(cf.rung)
        if cf.held is not None:
            held.append(cf.held)
        if third is not None:
            valid3 += (third.predict(cf.x_cf).argmax(-1) == tgt).sum().item()
        flips += (cf.probs_after.argmax(-1) == tgt).sum().item()
        valid += (clf.predict(cf.x_cf).argmax(-1) == tgt).sum().item()
        l1.append(cf.l1), rms.append(cf.l2), couts.append(cout(model, x, cf.x_cf, y, tgt))
        feats.append(fid.features(clf, cf.x_cf))
    n = len(idx)
    # Real images of the same target classes, in the same numbers (the first ones of each class not in idx).
    real = torch.cat([torch.nonzero(test.labels == k)[:, 0][torch.isin(torch.nonzero(test.labels == k)[:, 0], idx,
                                                                        invert=True)][: int((target == k).sum())]
                      for k in range(model.num_classes)])
    fd = fid.frechet_distance(fid.stats(torch.cat(feats)), fid.stats(fid.features(clf, test.to_model(real))))
    return {"n": n, "flip_joint": flips / n, "validity_separate": valid / n, "l1": torch.cat(l1).mean().item(),
            "rms": torch.cat(rms).mean().item(), "cout": torch.cat(couts).mean().item(), "fid": fd,
            "seconds_per_edit": seconds / n, "seconds": "process CPU time, one thread",
            "validity_third": None if third is None else valid3 / n,
            "rungs": None if not rungs else torch.bincount(torch.cat(rungs) + 1).tolist(),   # [none accepted, rung 0, …]
            "held": None if not held else torch.cat(held).float().mean().item()}   # best-of: share kept as held


def random_targets(test, n: int, num_classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test), generator=g)[:n]
    target = (test.labels[idx] + torch.randint(1, num_classes, (n,), generator=g)) % num_classes   # never y
    return idx, target


def c3lt_targets(test, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    idx, target = [], []
    for a, b in C3LT_PAIRS:
        pool = torch.nonzero(test.labels == a)[:, 0]
        idx.append(pool[torch.randperm(len(pool), generator=g)[:n]])
        target.append(torch.full((n,), b))
    return torch.cat(idx), torch.cat(target)


def table(runs: dict) -> str:
    head = ("| configuration | method | t* | s | λ | guide | N | flip (joint) | validity (separate) | L1 | RMS | COUT "
            "| FID | s / edit | validity (3rd: MLP) |\n|" + "---|" * 15 + "\n")
    rows = []
    for name, r in sorted(runs.items(), key=lambda kv: (kv[1]["set"], kv[1]["config"]["method"], kv[0])):
        c, m = r["config"], r["metrics"]
        rows.append(f"| {name} | {c['method']} | {c['t_star']} | {c['scale']:g} | {c['lam']:g} | {c['guide']} | {m['n']} "
                    f"| {m['flip_joint']:.0%} | {m['validity_separate']:.0%} | {m['l1']:.3f} | {m['rms']:.3f} "
                    f"| {m['cout']:.2f} | {m['fid']:.1f} | {m['seconds_per_edit']:.2f} "
                    f"| {'–' if m.get('validity_third') is None else format(m['validity_third'], '.0%')} |")
    return head + "\n".join(rows) + "\n"


def plot(runs: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # Shown in the app at ~560 px: 10-px text needs ≥ 9-pt fonts at this size (the legend was 8 pt, read as tiny)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    colours = {"sdedit": "#9aa5b1", "dime": "#4e79a7", "ace": "#e15759", "ddim-inversion": "#59a14f",
               "adaptive": "#f28e2b", "best-of": "#b07aa1"}
    largest = {}                       # one point per configuration: its run on the most images
    for r in runs.values():
        if r["set"] == "random" and r["metrics"]["n"] > largest.get(r["name"], {"metrics": {"n": 0}})["metrics"]["n"]:
            largest[r["name"]] = r
    for method, colour in colours.items():
        for guide, style in (("x_t", "o-"), ("shifted", "s--")):      # one curve per method and guide
            pts = sorted((r["metrics"]["l1"], r["metrics"]["validity_separate"]) for r in largest.values()
                         if r["config"]["method"] == method and r["config"].get("guide", "x_t") == guide
                         and (r["config"].get("grid") or r["config"].get("default")))
            if pts:
                ax.plot(*zip(*pts), style, color=colour, label=method + (" (shifted guide)" if guide != "x_t" else ""))
    for r in runs.values():
        if r["set"] == "random" and r.get("default"):
            ax.plot(r["metrics"]["l1"], r["metrics"]["validity_separate"], "*", ms=14, color="k", mfc="gold",
                    label=f"default ({r['metrics']['n']} images)")
    ax.axhline(0.9, color="k", lw=0.6, ls=":"), ax.axvline(0.10, color="k", lw=0.6, ls=":")
    ax.set(xlabel="mean L1 change (pixels in [0, 1])", ylabel="validity (separate classifier)",
           title="counterfactuals: believed by a second opinion vs. how much changed")
    ax.title.set_fontsize(11)
    ax.xaxis.label.set_fontsize(10), ax.yaxis.label.set_fontsize(10), ax.tick_params(labelsize=9)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def figure(model, clf, test, path: Path, n: int = 6, seed: int = 0) -> None:
    """The same n test images (random targets) edited by every method at its defaults, with the change maps:
    one row per method, the separate classifier's verdict above each counterfactual."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from jdx.counterfactual import METHODS
    idx, target = random_targets(test, n, model.num_classes, seed)
    x = test.to_model(idx)
    names = model.info.class_names
    w = torch.nn.functional.one_hot(target, model.num_classes).float()
    fig, axes = plt.subplots(2 * len(METHODS) + 1, n, figsize=(1.5 * n, 1.5 * (2 * len(METHODS) + 1)), dpi=100)
    for j in range(n):
        axes[0, j].imshow(x[j, 0], cmap="gray", vmin=-1, vmax=1)
        axes[0, j].set_title(f"{names[test.labels[idx[j]]]}\n→ {names[target[j]]}", fontsize=7)
    for i, method in enumerate(METHODS):
        cf = counterfactual(model, x, w, method=method, seed=seed)
        verdict = clf.predict(cf.x_cf).argmax(-1)
        for j in range(n):
            a, b = axes[2 * i + 1, j], axes[2 * i + 2, j]
            a.imshow(cf.x_cf[j, 0], cmap="gray", vmin=-1, vmax=1)
            ok = "✓" if verdict[j] == target[j] else "✗"
            a.set_title(f"{ok} {names[verdict[j]]}, L1 {cf.l1[j]:.2f}", fontsize=6)
            b.imshow((cf.x_cf[j, 0] - x[j, 0]) / 2, cmap="RdBu_r", vmin=-1, vmax=1)
        axes[2 * i + 1, 0].set_ylabel(method, fontsize=8)
        axes[2 * i + 2, 0].set_ylabel("change", fontsize=8)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="checkpoints/fmnist-joint")
    p.add_argument("--classifier", default="checkpoints/fmnist-classifier")
    p.add_argument("--data", default=None, help="data source instead of the checkpoint's (tests)")
    p.add_argument("--n", type=int, default=100, help="test images with random targets")
    p.add_argument("--c3lt-n", type=int, default=0, help="images per C3LT direction (6 directions; 0 skips)")
    p.add_argument("--configs", nargs="+", default=["grid"], help="grid, guides, default, or names from the grid")
    p.add_argument("--steps", type=int, default=None, help="override every configuration's DDIM steps (tests)")
    p.add_argument("--out", default="assets/results/counterfactuals")
    p.add_argument("--figure", default=None, help="only draw every method's edits of 6 test images to this PNG")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    model, clf = jdx.load(args.ckpt), jdx.load(args.classifier)
    third = third_classifier() if model.info.data.get("class_names") == FMNIST_CLASSES else None
    test = load_like(model.info.data, "test", args.data)
    if args.figure:
        return figure(model, clf, test, Path(args.figure))
    configs = {}
    for c in args.configs:
        if c == "grid":
            configs.update({k: dict(v, grid=True) for k, v in GRID.items()})
        elif c == "guides":
            configs.update(GUIDE_GRID)
        elif c == "default":
            configs["default"] = dict(default_config(), default=True)
        else:
            configs[c] = dict(GRID[c], grid=True) if c in GRID else GUIDE_GRID[c]
    command = "python bench/counterfactuals.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    sets = [("random", *random_targets(test, args.n, model.num_classes))] if args.n else []
    if args.c3lt_n and model.num_classes == 10:
        sets.append(("c3lt", *c3lt_targets(test, args.c3lt_n)))
    for name, kw in configs.items():
        kw = dict(kw)
        flags = {k: kw.pop(k) for k in ("grid", "default") if k in kw}
        d = PER_METHOD[kw["method"]]
        full = dict(t_star=d.t_star, scale=d.scale, lam=d.lam, steps=d.steps, guide=d.guide) | kw
        # Grid times are of T = 500 (the shipped model); a model with another T gets the same fraction.
        full["t_star"] = max(1, round(full["t_star"] * model.schedule.T / 500))
        if args.steps:
            full["steps"] = args.steps
        for set_name, idx, target in sets:
            key = f"{name}-{set_name}-n{len(idx)}"
            path = out / "runs" / f"{key}.json"
            if path.exists():
                continue
            metrics = run(model, clf, test, idx, target, full, third=third)
            extra = ({"candidates": CANDIDATES, "selection": f"smallest held (p ≥ {HOLD_P} on every shifted copy), "
                      "else most typical (k-NN)"} if full["method"] == "best-of" else {})
            path.write_text(json.dumps({"name": name, "set": set_name, "config": full | flags | extra, "metrics": metrics,
                                        "command": command, "device": "cpu, 1 thread"}, indent=1))
            print(key, json.dumps(metrics), flush=True)
    runs = {f.stem: json.loads(f.read_text()) for f in sorted((out / "runs").glob("*.json"))}
    for r in runs.values():
        r["config"].update({k: True for k in ("grid", "default") if r["config"].get(k)})
        if r["config"].get("default"):
            r["default"] = True
    (out / "counterfactuals.json").write_text(json.dumps(runs, indent=1))
    (out / "counterfactuals.md").write_text(
        "Counterfactual benchmark (random targets ≠ label; C3LT pairs T-shirt↔Pullover, Sneaker↔Ankle boot, "
        "Coat↔Shirt). Commands: see each run's `command` in counterfactuals.json.\n\n" + table(runs))
    plot(runs, out / "validity_vs_l1.png")
    print(table(runs))


if __name__ == "__main__":
    main()
