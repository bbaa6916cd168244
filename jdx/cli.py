"""`jdx` command line: every subcommand parses, calls the library, and prints or writes the result."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .attribution import DEFAULT as ATTRIBUTION_DEFAULT
from .counterfactual import (CANDIDATES as CF_CANDIDATES, DEFAULT as CF_DEFAULT, METHODS as CF_METHODS,
                             PER_METHOD as CF_PER_METHOD)
from .counterfactual_methods import GUIDES as CF_GUIDES
from .data import PREPROCESS, DataError, load_like, restore_edit, to_uint8
from .device import cpu_threads, device_name, pick_device
from .inputs import model_input
from .protocols import Classifier, Denoiser, ImageClassifier, Likelihood, MultivariateDenoiser, supports
from .train import TrainConfig

# Defaults chosen from the measurements in README.md (guided samples and counterfactuals of the shipped model).
GUIDANCE = 8.0          # class-guided sampling scale s (91% guided accuracy at 8 vs 86% at 4, README)
CF_T_STAR = CF_DEFAULT.t_star        # counterfactual noise level t* and guidance scale s: see jdx.counterfactual
CF_GUIDANCE = CF_DEFAULT.scale
FEATURE_CLASSIFIER = "checkpoints/fmnist-classifier"
DDPM_CHECKPOINT = "checkpoints/fmnist-ddpm"
EVAL_GPU_FID, EVAL_CPU_FID = 10000, 1000   # FID samples by default (see notes: CPU sampling rate)


class UsageError(Exception):
    pass


def _seed_and_device(args) -> torch.device:
    torch.manual_seed(args.seed)
    return pick_device(args.device)


def resolve_class(value: str, names: list[str]) -> int:
    """A class index or a (case-insensitive) class name or unique prefix → index (jdx.checkpoint.class_index)."""
    try:
        return checkpoint.class_index(value, names)
    except ValueError as e:
        raise UsageError(str(e)) from e


def class_weights(args, model) -> list[float] | None:
    names = model.info.class_names
    if args.weights and args.cls is not None:
        raise UsageError("give --class or --weights, not both")
    if args.weights:
        w = [float(v) for v in args.weights.split(",")]
        if len(w) != len(names) or min(w) < 0 or sum(w) <= 0:
            raise UsageError(f"--weights needs {len(names)} non-negative numbers, not all zero")
        return w
    if args.cls is not None:
        w = [0.0] * len(names)
        w[resolve_class(args.cls, names)] = 1.0
        return w
    return None


def load_model(path: str, device: torch.device, verify: bool = True):
    return checkpoint.load(path, device, verify)


# ---------- subcommands ------------------------------------------------------------------------------------

def cmd_train(args) -> None:
    if args.kind in ("toy", "toy-cdm", "toy-mdm"):
        return train_toy_cmd(args)
    args.lr = TrainConfig().lr if args.lr is None else args.lr
    args.mixed_var = TrainConfig().mixed_var if args.mixed_var is None else args.mixed_var
    from .train import train
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    command = "jdx " + " ".join(shlex.quote(a) for a in args.argv)
    stem = train(cfg, resume=args.resume, command=command, quiet=args.quiet)
    print(f"checkpoint: {stem}.safetensors + {stem}.json")


def train_toy_cmd(args) -> None:
    from tqdm import tqdm

    from .toy import TOY_LR, ToyConfig, train_toy_checkpoint
    diffusion = None
    if args.kind == "toy-mdm":
        from .mdm import DIFFUSIONS, DiffusionConfig
        diffusion = DiffusionConfig(args.diffusion, args.K or DIFFUSIONS[args.diffusion], args.aux_var, args.init_aux_var)
    bar = tqdm(total=args.steps, desc=f"train {args.kind} {args.data}", disable=args.quiet)

    def progress(step, mse, ce=0.0):
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(mse=f"{mse:.4f}", ce=f"{ce:.3f}")
    try:
        stem, kept = train_toy_checkpoint(
            args.kind, args.data, args.out, steps=args.steps, batch=args.batch_size,
            lr=TOY_LR if args.lr is None else args.lr, seed=args.seed,
            T=args.T if args.T != TrainConfig().T else ToyConfig().T, lam=args.lam, w_ce=args.w_ce,
            diffusion=diffusion, mixed_var=args.mixed_var, progress=progress,
            command="jdx " + " ".join(shlex.quote(a) for a in args.argv))
    finally:
        bar.close()
    print(", ".join(f"{k} {v:.4f}" for k, v in kept.items()) + f"; checkpoint: {stem}.safetensors + {stem}.json")


def cmd_eval(args) -> None:
    from tqdm import tqdm

    from .evaluate import accuracy, counterfactual_flips, sample_quality
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    report = {"checkpoint": str(model.info.path), "kind": model.kind, "device": str(device)}
    # CPU-sized defaults: 10,000 FID samples in batches of 500 kept a CPU silent for over 10 minutes.
    cpu = device.type == "cpu"
    args.fid_samples = args.fid_samples if args.fid_samples is not None else (EVAL_CPU_FID if cpu else EVAL_GPU_FID)
    fid_batch = args.batch or (50 if cpu else 500)          # small on a CPU, so that the progress bar moves
    args.batch = args.batch or 500
    print(f"jdx eval on {device_name(device)}: {args.fid_samples} FID samples × {args.steps} steps in batches of "
          f"{fid_batch}, {args.cf_n} counterfactuals (see jdx eval --help to size the run)", file=sys.stderr)
    if supports(model, MultivariateDenoiser):
        report.update(mdm_report(args, model, device))
        return _finish_eval(args, report, device)
    test = load_like(model.info.data, "test", args.data)
    if args.limit:
        test.images, test.labels = test.images[: args.limit], test.labels[: args.limit]
    if supports(model, ImageClassifier):
        report["test_accuracy"] = accuracy(model, test)
        report["test_images"] = len(test)
    joint = supports(model, Denoiser, Classifier)     # generates and classifies: guidance, counterfactuals
    if joint:
        levels = sorted({t * model.schedule.T // 500 for t in (0, 25, 50, 100, 200, 300, 400, 500)})
        report["accuracy_vs_t"] = {str(t): accuracy(model, test, t, seed=args.seed)
                                   for t in tqdm(levels, desc="accuracy vs t", leave=False)}
    diffusion = supports(model, Denoiser)
    needs_clf = (diffusion and args.fid_samples > 0) or (joint and args.cf_n > 0)
    clf = load_model(args.feature_classifier, device, args.verify) if needs_clf else None
    if diffusion and args.fid_samples > 0:
        train_set = load_like(model.info.data, "train", args.data)
        report.update(sample_quality(model, clf, train_set, test, args.fid_samples, args.steps, fid_batch,
                                     args.seed, args.guidance if joint else 0.0))
    if joint and args.cf_n > 0:
        report.update(counterfactual_flips(model, clf, test, args.cf_n, args.cf_noise, args.cf_guidance,
                                           args.cf_steps, seed=args.seed))
    if diffusion:
        report.update(likelihood_report(args, model, test, device))
    _finish_eval(args, report, device)


def mdm_report(args, model, device) -> dict:
    """Image MDM: test bits/dim (--limit images, --bpd-repeats ELBO draws each); 2-D MDM: held-out NLL."""
    if not model.is_image:
        from .mdm.toy import toy_nll
        nll, se = toy_nll(model, model.info.data["name"], seed=10**6 + args.seed)
        return {"test_nll_nats": nll, "test_nll_se": se}
    from .evaluate import test_bpd
    test = load_like(model.info.data, "test", args.data)
    x = test.to_model()[: args.limit or None]
    out = test_bpd(model, x, args.bpd_repeats, args.batch, args.seed, progress=not args.json)
    d = model.diffusion
    out["diffusion"] = {"name": d.config.name, "K": d.K, "Q": d.Q().tolist(), "D": d.D().tolist()}
    return out


def _finish_eval(args, report: dict, device) -> None:
    if args.write:
        measured = {k: v for k, v in report.items() if k not in ("checkpoint", "device")}
        # Each --write run appends what it measured, with its command and device, so that figures merged from
        # several runs (a GPU FID, a CPU counterfactual sweep) each keep their provenance.
        runs = checkpoint.read_meta(args.ckpt).get("metrics", {}).get("evaluations", [])
        runs.append({"command": "jdx " + " ".join(shlex.quote(a) for a in args.argv),
                     "device": device_name(device),
                     "measured": sorted(measured)})
        checkpoint.update_metrics(args.ckpt, measured | {"evaluations": runs})
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>28}: {json.dumps(v) if isinstance(v, dict) else v}")


def likelihood_report(args, model, test, device) -> dict:
    """CDM: test bits/dim in one pass each, its histogram and OOD AUROC; any diffusion model: denoising MSE
    vs. t (beside --compare's) and, with --elbo-n, the DDPM variational bound."""
    from .evaluate import default_comparison
    from .likelihood import auroc, bits_per_dim, ddpm_bound, denoising_mse, histogram, ood_sets
    out = {}
    x = test.to_model()
    one_pass = supports(model, Likelihood)           # CDM: bits/dim in one pass (Thm 3.2)
    if one_pass:
        bpd, method = bits_per_dim(model, x, args.seed)
        out.update({"nll_bpd": bpd.mean().item(), "nll_method": method, "nll_images": len(x),
                    "nll_histogram": histogram(bpd)})
        if args.ood_n > 0:
            out["ood_bpd"], out["ood_auroc"] = {}, {}
            for name, x_ood in ood_sets(x, min(args.ood_n, len(x)), args.seed).items():
                b = bits_per_dim(model, x_ood, args.seed)[0]
                out["ood_bpd"][name], out["ood_auroc"][name] = b.mean().item(), auroc(bpd, b)
    if args.elbo_n > 0 and not one_pass:
        out.update(ddpm_bound(model, x[: args.elbo_n], args.seed))
    mse_n = args.mse_n if args.mse_n is not None else (1000 if one_pass else 0)
    if mse_n > 0:
        T = model.schedule.T
        ts = sorted({max(1, round(f * T)) for f in (0.002, 0.02, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)})
        out["denoising_mse"] = denoising_mse(model, x[:mse_n], ts, args.seed)
        out["denoising_mse_images"] = mse_n
        compare = args.compare if args.compare is not None else default_comparison(model, DDPM_CHECKPOINT)
        if compare:
            other = load_model(compare, device, args.verify)
            out["compare"] = {"checkpoint": compare, "kind": other.kind,
                              "denoising_mse": denoising_mse(other, x[:mse_n], ts, args.seed)}
    return out


def cmd_likelihood(args) -> None:
    from .likelihood import bits_per_dim
    from .ood import png_bits_per_dim
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    if not (supports(model, Denoiser) and "image_size" in model.info.data):
        raise UsageError(f"{args.ckpt} is a {model.kind} model: bits/dim needs an image diffusion model "
                         "(a Denoiser: cdm, ddpm or joint checkpoint)")
    for path in args.images:
        x, prep = model_input(model, path, args.preprocess)
        bpd, method = bits_per_dim(model, x, args.seed, progress=not args.json)
        png = float(png_bits_per_dim(x)[0])
        if args.json:
            print(json.dumps({"image": path, "bpd": round(float(bpd[0]), 5), "method": method,
                              "png_bpd": round(png, 5), "complexity_corrected": round(float(bpd[0]) - png, 5),
                              **prep.record()}))
        else:
            done = "; ".join(prep.steps) or "no preprocessing"
            print(f"{path}: {float(bpd[0]):.3f} bits/dim ({method}); PNG {png:.3f} bits/dim, corrected "
                  f"{float(bpd[0]) - png:+.3f}   [{done}]")


def cmd_probe(args) -> None:
    from .probes import heat_map, sweep
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    if not (supports(model, Denoiser) and "image_size" in model.info.data):     # an image U-Net on the schedule
        raise UsageError(f"{args.ckpt} is a {model.kind} model: probes need a U-Net checkpoint (joint, ddpm or cdm)")
    train, test = (load_like(model.info.data, split, args.data) for split in ("train", "test"))
    g = torch.Generator().manual_seed(args.seed)
    pick = lambda d, n: torch.randperm(len(d), generator=g)[: n or len(d)]   # noqa: E731
    tr, te = pick(train, args.train_n), pick(test, args.test_n)
    n_blocks = len(model.unet.block_names)
    blocks = list(range(n_blocks)) if not args.blocks else list(args.blocks)
    if any(not 0 <= b < n_blocks for b in blocks):
        raise UsageError(f"--blocks must be in 0…{n_blocks - 1}: " + ", ".join(f"{i}={n}" for i, n in enumerate(model.unet.block_names)))
    T = model.schedule.T
    ts = list(args.t) if args.t else sorted({round(f * T) for f in (0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)})
    if any(not 0 <= t <= T for t in ts):
        raise UsageError(f"--t must be in 0…{T}")
    result = sweep(model, (train.to_model(tr), train.labels[tr]), (test.to_model(te), test.labels[te]), blocks, ts,
                   args.pool, args.head, Path(args.cache) if args.cache else None, args.seed, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    block, t, acc = result.best()
    report = {"checkpoint": str(model.info.path), "kind": model.kind, "head": args.head, "pool": args.pool,
              "train_images": len(tr), "test_images": len(te), "blocks": result.blocks, "block_index": blocks,
              "t": result.ts, "accuracy": result.accuracy.tolist(), "pixel_probe_accuracy": result.pixels,
              "best": {"block": block, "t": t, "accuracy": acc},
              "command": "jdx " + " ".join(shlex.quote(a) for a in args.argv)}
    checkpoint.write_json(out / "probe.json", report)
    heat_map(result, f"{model.info.name}, {args.head} probe, pool {args.pool}").savefig(out / "probe.png")
    print(f"best: {block} at t = {t}: {acc:.1%} (pixels {result.pixels:.1%}); wrote {out / 'probe.json'} and {out / 'probe.png'}")


def cmd_sample(args) -> None:
    from .generate import generate
    from .viz import grid
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    require_images(args, model)
    if supports(model, MultivariateDenoiser):
        images, w = mdm_images(args, model, device), None
    else:
        if args.sampler in ("em", "ode"):
            raise UsageError(f"--sampler {args.sampler} is for multivariate diffusions (mdm); use ddim or ddpm")
        w = class_weights(args, model)
        scale = args.guidance if w is not None else 0.0
        images = generate(model, args.n, weights=w, scale=scale, sampler=args.sampler or "ddim", steps=args.steps,
                          seed=args.seed).images.cpu()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        # labels: the target class for single-class guidance, else the model's own verdict (-1: no classifier)
        if w is not None and max(w) == sum(w):
            labels = np.full(args.n, int(np.argmax(w)))
        elif supports(model, ImageClassifier):
            labels = model.predict(images.to(device)).argmax(-1).cpu().numpy()
        else:
            labels = np.full(args.n, -1)
        np.savez_compressed(out, images=to_uint8(images), labels=labels)
    elif out.suffix.lower() in (".png", ".jpg", ".webp"):
        grid(images, nrow=min(args.n, 10)).save(out)
    else:
        raise UsageError(f"--out must end in .png or .npz, not {out.suffix!r}")
    print(f"wrote {args.n} samples to {out}")


def require_images(args, model) -> None:
    if "image_size" not in model.info.data:
        raise UsageError(f"{args.ckpt} is a 2-D {model.kind} model: it draws points, not images (the app's Toy "
                         "views show them)")


def mdm_images(args, model, device) -> torch.Tensor:
    """Images from an image MDM: --sampler em (Euler–Maruyama, default) or ode (the probability-flow ODE)."""
    from .mdm.sampling import sample_images
    if args.sampler in ("ddim", "ddpm"):
        raise UsageError(f"--sampler {args.sampler} is for discrete-time models; a multivariate diffusion samples "
                         "with em (default) or ode")
    return sample_images(model, args.n, args.steps, args.sampler or "em", torch.Generator().manual_seed(args.seed),
                         device).cpu()


def cmd_predict(args) -> None:
    from .ood import Detector
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    if not supports(model, ImageClassifier):
        raise UsageError(f"{args.ckpt} is a {model.kind} model: it has no classifier")
    names = model.info.class_names
    detector = None
    if args.ood and supports(model, Classifier):
        detector = Detector.for_model(model, args.ckpt, args.ood_calibration)
        if detector is None and args.ood_calibration:
            raise UsageError(f"{args.ood_calibration}: no such OOD calibration file")
    g = torch.Generator().manual_seed(args.seed)
    for path in args.images:
        x, prep = model_input(model, path, args.preprocess)
        probs = model.predict(x.to(device), args.t, generator=g)[0].cpu()
        k = int(probs.argmax())
        ood = detector(x.to(device), args.seed) if detector is not None else None
        if args.json:
            line = {"image": path, "label": names[k], "index": k, "probs": [round(float(p), 6) for p in probs]}
            if ood is not None:
                line.update({"ood_score": round(float(ood.score[0]), 4), "in_distribution": bool(ood.in_distribution[0]),
                             "ood_threshold": round(ood.threshold, 4)})
            print(json.dumps({**line, **prep.record()}))
        else:
            top = probs.argsort(descending=True)[:3].tolist()
            print(f"{path}: {names[k]} ({probs[k]:.1%})   " + ", ".join(f"{names[i]} {probs[i]:.1%}" for i in top[1:]))
            if prep.steps:
                print(f"    preprocessed: {'; '.join(prep.steps)}")
            if ood is not None and not bool(ood.in_distribution[0]):
                print(f"    warning: unlike the training data (OOD score {float(ood.score[0]):.2f} > threshold "
                      f"{ood.threshold:.2f}); the prediction is not to be trusted")


def cmd_attribute(args) -> None:
    from .attribution import METHODS, attribute, to_png
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    if not supports(model, Classifier, ImageClassifier):
        raise UsageError(f"{args.ckpt} is a {model.kind} model: attributions need a classifier at noise levels "
                         "(a joint checkpoint)")
    if args.method not in METHODS:
        raise UsageError(f"unknown method {args.method!r}; choose from: {', '.join(METHODS)}")
    names = model.info.class_names
    target = resolve_class(args.target, names) if args.target is not None else None
    T = model.schedule.T
    if not 0 <= args.t <= T:
        raise UsageError(f"--t must be in 0…{T}, got {args.t}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        x, prep = model_input(model, path, args.preprocess)
        maps, k = attribute(model, x.to(device), target, args.method, args.t, args.seed)
        a = maps[0].numpy().astype(np.float32)
        stem = out / Path(path).stem
        np.save(stem.with_suffix(".npy"), a)
        to_png(a, stem.with_suffix(".png"))
        line = {"image": path, "method": args.method, "target": names[int(k[0])], "index": int(k[0]), "t": args.t,
                "npy": str(stem.with_suffix(".npy")), "png": str(stem.with_suffix(".png")),
                "attributes": "raw logit", **prep.record()}
        print(json.dumps(line) if args.json else f"{path}: {args.method} of the {names[int(k[0])]} logit → "
              f"{line['npy']}, {line['png']}")


def cmd_counterfactual(args) -> None:
    from .counterfactual import counterfactual
    from .second_opinion import find_judge, real_scale, scale_words, verdict
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    names = model.info.class_names
    k = resolve_class(args.target, names)
    d = CF_PER_METHOD[args.method]      # settings not given on the command line: the method's defaults
    t_star, scale = d.t_star if args.noise is None else args.noise, d.scale if args.guidance is None else args.guidance
    lam, steps = d.lam if args.lam is None else args.lam, d.steps if args.steps is None else args.steps
    guide = args.guide or d.guide
    # The second opinion: a separately trained classifier (found beside the checkpoint unless named), or none.
    judge = (None if args.judge == "none" else find_judge(model) if args.judge is None
             else load_model(args.judge, device, args.verify))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.jsonl", "w") as summary:
        for path in args.images:
            x, prep = model_input(model, path)
            w = [0.0] * len(names)
            w[k] = 1.0
            cf = counterfactual(model, x, w, method=args.method, t_star=t_star, scale=scale, lam=lam, steps=steps,
                                guide=guide, seed=args.seed)
            target_path = out / f"{Path(path).stem}.png"
            restore_edit(cf.x[0].cpu(), cf.x_cf[0].cpu(), prep).save(target_path)   # the change, onto the original
            before, after = cf.probs_before[0].cpu(), cf.probs_after[0].cpu()
            p_sep = None if judge is None else judge.predict(cf.x_cf.to(next(judge.parameters()).device))[0].cpu()
            v = verdict(names, w, before, after, p_sep, float(cf.l1[0]))
            row = {"image": path, "out": str(target_path), "target": names[k], "target_index": k,
                   "before": names[int(before.argmax())], "after": names[int(after.argmax())],
                   "p_target_before": float(before[k]), "p_target_after": float(after[k]),
                   "probs_before": [round(float(p), 6) for p in before], "probs_after": [round(float(p), 6) for p in after],
                   "l1": float(cf.l1[0]), "l2": float(cf.l2[0]), "method": args.method, "t_star": t_star,
                   "guidance": scale, "lam": lam, "steps": steps, "guide": guide,
                   "judge": None if judge is None else judge.info.name, "separate": v.separate,
                   "p_target_separate": None if p_sep is None else float(p_sep[k]),
                   "probs_separate": None if p_sep is None else [round(float(p), 6) for p in p_sep],
                   "agree": v.agree, "weak": v.weak, "invisible": v.invisible, "missed": v.missed,
                   # how far real images of the two classes lie apart: (5th percentile, median) L1, for scale
                   "real_scale": real_scale(names, v.before, v.joint),
                   "warnings": v.warnings,
                   # adaptive: the ladder rung it stopped at; best-of: the candidate kept and whether it was held
                   "rung": None if cf.rung is None else int(cf.rung[0]),
                   "held": None if cf.held is None else bool(cf.held[0])}
            summary.write(json.dumps(row) + "\n")
            if args.json:
                print(json.dumps(row))
                continue
            second = ("no second opinion" if p_sep is None else
                      f"separate classifier: {v.separate} (p[{names[k]}] {row['p_target_separate']:.1%})")
            print(f"{path}: {row['before']} → {row['after']} (p[{names[k]}] {row['p_target_before']:.1%} → "
                  f"{row['p_target_after']:.1%}, mean |Δ| {row['l1']:.3f}); {second} → {target_path}")
            for warning in v.warnings:
                print(f"  warning: {warning}")
            if v.flipped and (words := scale_words(names, v.before, v.joint, row["l1"])) is not None:
                print(f"  for scale: {words}")


def cmd_trajectory(args) -> None:
    from .generate import generate
    from .viz import save_gif, trajectory_frames, trajectory_strip
    device = _seed_and_device(args)
    model = load_model(args.ckpt, device, args.verify)
    require_images(args, model)
    if not supports(model, Denoiser):
        raise UsageError(f"{args.ckpt} is a {model.kind} model: a trajectory walks the discrete DDPM/DDIM schedule "
                         "(ddpm, joint or cdm checkpoints); `jdx sample --sampler em|ode` draws a multivariate "
                         "diffusion's images, and the app's Auxiliary variables view shows its path")
    w = class_weights(args, model)
    x_T, t_start = None, None
    if args.image:
        x0, _ = model_input(model, args.image)
        g = torch.Generator().manual_seed(args.seed)
        t_start = args.noise
        x_T = model.schedule.noise_to(x0, t_start, torch.randn(x0.shape, generator=g))
    gen = generate(model, 1, weights=w, scale=args.guidance if w is not None else 0.0, sampler=args.sampler or "ddim",
                   steps=args.steps, seed=args.seed, x_T=x_T, t_start=t_start, record=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        save_gif(trajectory_frames(gen.steps, gen.images), out)
    elif out.suffix.lower() == ".png":
        trajectory_strip(gen.steps, gen.images, k=args.frames).save(out)
    else:
        raise UsageError(f"--out must end in .gif or .png, not {out.suffix!r}")
    print(f"wrote the {len(gen.steps)}-step trajectory to {out}")


# ---------- parser -----------------------------------------------------------------------------------------

def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    p.add_argument("--threads", type=int, default=None,
                   help="PyTorch CPU threads (default: $JDX_THREADS, else the cores other processes leave idle)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="load checkpoints without checking their weights' hash (e.g. a hand-written JSON without one)")


def _preprocess_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preprocess", default="auto", choices=list(PREPROCESS),
                   help="auto (default): a model-sized image is inverted if its background is light, any other "
                   "picture goes through the photo pipeline (background, invert, crop, pad, resize); invert: "
                   "only invert a light background; none: pad and resize only. The JSON records what was done")


# --steps means one thing for every family: the number of reverse steps of the sampler.
STEPS_HELP = ("N reverse steps (default 50; at most the model's T), each one network evaluation: DDPM, DDIM, the CDM (a forward and a "
              "backward pass: ε̂ is a gradient) and em; guidance adds the classifier's gradient (an encoder pass) "
              "per step; ode is Heun's method, two evaluations per step")


def _class_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class", dest="cls", help="target class: index or name (e.g. 7 or Sneaker)")
    p.add_argument("--weights", help="class mixture weights w0,…,w9 (normalised to sum 1)")
    p.add_argument("--guidance", type=float, default=GUIDANCE, help=f"guidance scale s (default {GUIDANCE})")
    p.add_argument("--sampler", default=None, choices=["ddim", "ddpm", "em", "ode"],
                   help="ddim (default) or ddpm; for multivariate diffusions em (default) or ode")
    p.add_argument("--steps", type=int, default=50, help=STEPS_HELP)


def _tuple(s: str) -> tuple:
    return tuple(int(v) for v in s.split(",") if v != "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jdx", description="JDX — the Joint Diffusion eXplorer")
    sub = parser.add_subparsers(dest="command", required=True)

    d = TrainConfig()
    p = sub.add_parser("train", help="train a joint, diffusion-only (ddpm), noise-level classifier (cdm) or feature classifier model")
    p.add_argument("kind", choices=["joint", "ddpm", "classifier", "cdm", "mdm", "toy", "toy-cdm", "toy-mdm"],
                   help="toy / toy-cdm: a 2-D MLP joint model / noise-level classifier on --data moons|gmm|spirals "
                        "(for the app's Learn view)")
    p.add_argument("--data", default=d.data, help="'fashion-mnist' or a folder with one sub-folder per class")
    p.add_argument("--out", default=None, help="checkpoint stem (default checkpoints/fmnist-KIND)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default {d.lr:g}; for the 2-D toy kinds, whose small MLPs learn 10× faster, 2e-3)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--lam", type=float, default=d.lam, help="λ, weight of the classifier loss (paper: 0.001)")
    p.add_argument("--w-ce", type=float, default=d.w_ce, help="CDM: weight of the noise-level cross-entropy (paper: 0.001)")
    p.add_argument("--labels-per-class", type=int, default=0, help="semi-supervised: N labels per class")
    p.add_argument("--diffusion-weight", type=float, default=d.diffusion_weight,
                   help="joint: weight of the diffusion loss; 0 trains the same encoder as a plain classifier")
    p.add_argument("--shift", default="", choices=["", "invert", "rotate"],
                   help="domain shift: half the training images become an unlabelled shifted target")
    p.add_argument("--no-target-diffusion", dest="target_diffusion", action="store_false",
                   help="with --shift: keep the target images out of the diffusion loss (ablation)")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--diffusion", default=d.diffusion, choices=["vpsde", "cld", "alda", "malda", "learned"],
                   help="mdm / toy-mdm: the multivariate diffusion (default vpsde)")
    p.add_argument("--K", type=int, default=d.K, help="mdm: variables per pixel (default: the diffusion's own)")
    p.add_argument("--aux-var", type=float, default=d.aux_var, help="mdm: stationary variance of the auxiliaries")
    p.add_argument("--init-aux-var", type=float, default=d.init_aux_var, help="mdm: variance of q(v0 | x)")
    p.add_argument("--mixed-var", type=float, default=None,
                   help="mdm / toy-mdm: the score net corrects the exact noise prediction for N(0, MIXED_VAR) data "
                        "(Dockhorn et al.'s mixed score); 0: the net predicts the noise alone. Default: 0 for mdm, "
                        "the data's variance for toy-mdm")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-n", type=int, default=d.eval_n)
    p.add_argument("--save-every-s", type=float, default=d.save_every_s)
    p.add_argument("--no-amp", dest="amp", action="store_false", help="fp32 instead of bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop and save after this wall time")
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop and save at this step (the schedule stays that of --steps); continue with --resume")
    p.add_argument("--lr-minutes", type=float, default=0.0,
                   help="anneal the learning rate over this much training time instead of over --steps")
    p.add_argument("--save-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--channels", type=int, default=d.channels, choices=[1, 3])
    p.add_argument("--base-channels", type=int, default=d.base_channels)
    p.add_argument("--channel-mult", type=_tuple, default=d.channel_mult)
    p.add_argument("--num-res-blocks", type=int, default=d.num_res_blocks)
    p.add_argument("--attention-levels", type=_tuple, default=d.attention_levels)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--head-dropout", type=float, default=d.head_dropout)
    p.add_argument("--schedule", default=d.schedule, choices=["linear", "cosine"])
    p.add_argument("--T", type=int, default=d.T)
    p.add_argument("--resume", action="store_true", help="continue from NAME.train-state.pt")
    p.add_argument("--init", default="", help="fine-tune: start from this checkpoint's weights, fresh optimizer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="test accuracy, FID vs. the real-vs-real floor, guided and counterfactual accuracy")
    p.add_argument("ckpt")
    p.add_argument("--json", action="store_true")
    p.add_argument("--feature-classifier", default=FEATURE_CLASSIFIER)
    p.add_argument("--fid-samples", type=int, default=None,
                   help=f"0 skips FID (default {EVAL_GPU_FID} on a GPU, {EVAL_CPU_FID} on a CPU)")
    p.add_argument("--steps", type=int, default=50, help="reverse DDIM steps for the FID samples, one network "
                   "evaluation each (default 50)")
    p.add_argument("--batch", type=int, default=0, help="images per batch (default 500; FID samples on a CPU: 50)")
    p.add_argument("--guidance", type=float, default=GUIDANCE, help="scale for the guided-sample accuracy")
    p.add_argument("--cf-n", type=int, default=200, help="counterfactual images (0 skips)")
    p.add_argument("--cf-noise", type=int, default=CF_T_STAR)
    p.add_argument("--cf-guidance", type=float, default=CF_GUIDANCE)
    p.add_argument("--cf-steps", type=int, default=25)
    p.add_argument("--limit", type=int, default=0, help="use only the first N test images")
    p.add_argument("--data", default=None, help="evaluate on this data set instead of the one it was trained on")
    p.add_argument("--write", action="store_true", help="record the results in the checkpoint's JSON")
    p.add_argument("--bpd-repeats", type=int, default=4, help="mdm: ELBO draws per test image (default 4)")
    p.add_argument("--ood-n", type=int, default=1000, help="CDM: images per out-of-distribution set for the AUROC")
    p.add_argument("--elbo-n", type=int, default=0,
                   help="ddpm/joint: test images for the variational bound in bits/dim (T network passes each)")
    p.add_argument("--mse-n", type=int, default=None, help="test images for denoising MSE vs. t (default: 1000 for a CDM)")
    p.add_argument("--compare", default=None, help="denoising MSE of this checkpoint beside the evaluated one "
                   f"(default {DDPM_CHECKPOINT} when it exists and fits; '' for none)")
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("probe", help="linear (or attention) probes on every block's features at every noise level")
    p.add_argument("ckpt")
    p.add_argument("--blocks", type=_tuple, default=(), help="block indices (default: all; see the error for names)")
    p.add_argument("--t", type=_tuple, default=(), help="noise levels (default: 0, 2, 5, 10, 20, 30, 50 %% of T)")
    p.add_argument("--pool", type=int, default=2, choices=[1, 2, 4], help="average-pool each map to p×p")
    p.add_argument("--head", default="linear", choices=["linear", "attention"])
    p.add_argument("--train-n", type=int, default=10000, help="training images for the probes (0: all)")
    p.add_argument("--test-n", type=int, default=0, help="test images (0: all)")
    p.add_argument("--data", default=None)
    p.add_argument("--cache", default=None, help="feature cache folder (default ~/.cache/jdx/features)")
    p.add_argument("--out", required=True, help="folder for probe.json and probe.png")
    p.add_argument("--quiet", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("likelihood", help="bits/dim of images: one pass for a CDM, the variational bound otherwise")
    p.add_argument("ckpt")
    p.add_argument("images", nargs="+")
    p.add_argument("--json", action="store_true", help='one JSON object per line: {"image": path, "bpd": x, '
                   '"png_bpd", "complexity_corrected", "preprocess", "inverted", "cropped", "steps"}')
    _preprocess_option(p)
    _common(p)
    p.set_defaults(func=cmd_likelihood)

    p = sub.add_parser("sample", help="generate images, optionally guided toward a class or class mixture")
    p.add_argument("ckpt")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npz (images uint8 N×H×W×C; labels: "
                   "the guided class, else the model's prediction, -1 without a classifier)")
    _class_options(p)
    _common(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("predict", help="classify images with a joint (or feature classifier) checkpoint")
    p.add_argument("ckpt")
    p.add_argument("images", nargs="+")
    p.add_argument("--t", type=int, default=0, help="noise the image to t first (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object per line (with ood_score, in_distribution "
                   "and what preprocessing did)")
    p.add_argument("--no-ood", dest="ood", action="store_false", help="skip the out-of-distribution score")
    p.add_argument("--ood-calibration", default=None,
                   help="OOD calibration JSON (default: assets/results/ood/calibration-NAME.json)")
    _preprocess_option(p)
    _common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("attribute", help="attribution maps of the classifier's raw logit (.npy + .png per image)")
    p.add_argument("ckpt")
    p.add_argument("images", nargs="+")
    p.add_argument("--method", default=ATTRIBUTION_DEFAULT,
                   help=f"default {ATTRIBUTION_DEFAULT!r}; see README for the randomisation-check table")
    p.add_argument("--target", default=None, help="class index or name (default: the predicted class)")
    p.add_argument("--t", type=int, default=0, help="explain the classifier at noise level t (default 0)")
    p.add_argument("--out", required=True, help="folder for STEM.npy (float32 H×W, signed) and STEM.png")
    p.add_argument("--json", action="store_true")
    _preprocess_option(p)
    _common(p)
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser("counterfactual", help="visual counterfactual: the smallest edit the classifier calls TARGET")
    p.add_argument("ckpt")
    p.add_argument("images", nargs="+")
    p.add_argument("--target", required=True, help="target class: index or name")
    p.add_argument("--method", choices=CF_METHODS, default=CF_DEFAULT.method,
                   help=f"sdedit, dime (keeps close to the input), ace (DiME + a mask of where it may change), "
                        f"ddim-inversion, adaptive (DiME, harder where the joint model does not accept the edit), "
                        f"best-of ({CF_CANDIDATES} DiME edits, the smallest one the joint classifier holds on shifted copies kept, else the most typical) (default {CF_DEFAULT.method})")
    p.add_argument("--noise", type=int, default=None, help=f"t*, how much may change (default: the method's; "
                                                           f"{CF_DEFAULT.method}: {CF_T_STAR})")
    p.add_argument("--guidance", type=float, default=None, help=f"guidance scale s (default: the method's; "
                                                                f"{CF_DEFAULT.method}: {CF_GUIDANCE:g})")
    p.add_argument("--lam", type=float, default=None, help=f"λ, keep close: weight of ‖x̂₀ − x‖₁ (default: the "
                                                           f"method's; {CF_DEFAULT.method}: {CF_DEFAULT.lam:g})")
    p.add_argument("--steps", type=int, default=None, help=f"DDIM steps from t* to 0 (default {CF_DEFAULT.steps})")
    p.add_argument("--guide", choices=CF_GUIDES, default=None,
                   help=f"where the classifier's gradient is taken: x_t (the noisy classifier), shifted (its mean over "
                        f"shifted and mirrored copies), x0_hat, unet, noisy (default: the method's; "
                        f"{CF_DEFAULT.method}: {CF_DEFAULT.guide})")
    p.add_argument("--out", required=True, help="folder for <stem>.png and summary.jsonl")
    p.add_argument("--judge", default=None, metavar="CKPT|none",
                   help="the separately trained classifier that gives a second opinion (default: the classifier "
                        "checkpoint for the same data beside CKPT; none: no second opinion)")
    p.add_argument("--json", action="store_true", help="print one JSON line per image (as in summary.jsonl)")
    _common(p)
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser("trajectory", help="the denoising trajectory (x_t and x̂₀) as a GIF or PNG strip")
    p.add_argument("ckpt")
    p.add_argument("image", nargs="?", help="start from this image noised to --noise (default: pure noise)")
    p.add_argument("--out", required=True)
    p.add_argument("--noise", type=int, default=300, help="t* when an image is given")
    p.add_argument("--frames", type=int, default=10, help="columns of the PNG strip")
    _class_options(p)
    _common(p)
    p.set_defaults(func=cmd_trajectory)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    threads = torch.get_num_threads()
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        if getattr(args, "command", None) == "train" and args.out is None and not args.kind.startswith("toy"):
            args.out = f"checkpoints/fmnist-{args.kind}"
        torch.set_num_threads(cpu_threads(args.threads))
        args.func(args)
    except BrokenPipeError:
        return _reader_gone()
    except (UsageError, CheckpointError, DataError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"jdx {argv[0] if argv else ''}: error: {e}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)       # main() also runs inside tests and notebooks
        try:
            sys.stdout.flush()               # a closed pipe shows here, not as a traceback at interpreter exit
        except BrokenPipeError:
            _reader_gone()
    return 0


def _reader_gone() -> int:
    """The reader of stdout went away (`jdx … | head`): stop quietly like other Unix tools, 128 + SIGPIPE."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141
