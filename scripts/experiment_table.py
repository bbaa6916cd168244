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

    seeds(runs)


def seeds(runs: dict) -> None:
    """The semi-supervised pairs over seeds (SEEDS="0 1 2" bash scripts/representation_experiments.sh): mean ± sample
    standard deviation of the test accuracy, each seed's figure, and the joint-minus-CE difference per seed."""
    import statistics
    got = {(n, key): [(int(name.rsplit("-s", 1)[1]), r["test_accuracy"]) for name, r in sorted(runs.items())
                      if r and name.startswith(f"semi{n}-{key}-s")] for n in ("10", "100") for key in ("joint", "ce")}
    if not any(got.values()):
        return
    print("\n| labels per class | model | seeds | test accuracy, mean ± sd | each seed |\n|---|---|---|---|---|")
    for (n, key), rows in got.items():
        acc = [a for _, a in rows]
        sd = f" ± {statistics.stdev(acc):.1%}" if len(acc) > 1 else " (one seed)"
        print(f"| {n} | {ROWS[key]} | {len(acc)} | {statistics.mean(acc):.1%}{sd} | "
              f"{', '.join(f'{a:.1%}' for a in acc)} |")
    for n in ("10", "100"):
        j, c = dict(got[(n, "joint")]), dict(got[(n, "ce")])
        diff = [j[s] - c[s] for s in sorted(set(j) & set(c))]
        if len(diff) > 1:
            print(f"\n{n} labels per class: joint − CE per seed {', '.join(f'{d:+.1%}' for d in diff)}; "
                  f"mean {statistics.mean(diff):+.1%} ± {statistics.stdev(diff):.1%} (sd over seeds)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/repr"))
