"""Markdown tables of the semi-supervised and domain-shift runs of scripts/representation_experiments.sh,
read from each run's checkpoint JSON (final evaluation on the full 10,000-image test set).
Usage: python scripts/experiment_table.py [runs/repr]"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = {
    "joint": "joint model: diffusion loss on every image + CE on the labels (U-Net from fmnist-ddpm)",
    "ce": "plain classifier, same encoder + head, CE on the labels only (from scratch)",
    "ce-pre": "same, CE only, starting from the diffusion-pre-trained U-Net",
    "joint-both": "joint: diffusion on source + target, CE on source (U-Net from fmnist-ddpm)",
    "joint-source": "joint: diffusion on source only, CE on source (ablation)",
}


def final(path: Path) -> dict | None:
    meta = json.loads(path.read_text())
    t = meta["training"]
    if t["steps"] < t["config"]["steps"]:
        return None                                  # still running
    return {**meta["metrics"], "steps": t["steps"], "minutes": t["wall_time_s"] / 60}


def main(root: Path) -> None:
    runs = {p.stem: final(p) for p in sorted(root.glob("*.json"))}
    print("| labels per class | model | test accuracy | steps | wall minutes (shared 2-core CPU) |\n|---|---|---|---|---|")
    for n in ("10", "100"):
        for key in ("joint", "ce", "ce-pre"):
            r = runs.get(f"semi{n}-{key}")
            if r:
                print(f"| {n} | {ROWS[key]} | {r['test_accuracy']:.1%} | {r['steps']} | {r['minutes']:.0f} |")
    r = runs.get("semi-all-ce")
    if r:
        print(f"| all | {ROWS['ce']} | {r['test_accuracy']:.1%} | {r['steps']} | {r['minutes']:.0f} |")
    print("\n| model | source test accuracy (Fashion-MNIST) | target test accuracy (inverted) | steps |\n|---|---|---|---|")
    for key in ("ce", "ce-pre", "joint-source", "joint-both"):
        r = runs.get(f"shift-{key}")
        if r:
            print(f"| {ROWS[key]} | {r['test_accuracy']:.1%} | {r['target_accuracy']:.1%} | {r['steps']} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/repr"))
