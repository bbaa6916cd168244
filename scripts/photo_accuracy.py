"""Accuracy of a classifier checkpoint on the photo-like test images (assets/photos/) through each upload
pipeline: none (pad + resize), invert (the old pipeline: invert a light background), auto (jdx.photo).

    python3 scripts/photo_accuracy.py checkpoints/fmnist-joint [checkpoints/fmnist-classifier]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import jdx
from jdx.data import PREPROCESS, prepare_image

PHOTOS = Path("assets/photos")


def main() -> None:
    labels = json.loads((PHOTOS / "labels.json").read_text())
    lines = ["| checkpoint | " + " | ".join(f"--preprocess {p}" for p in PREPROCESS) + " |",
             "|---|" + "---|" * len(PREPROCESS)]
    result = {}
    for ckpt in sys.argv[1:]:
        model = jdx.load(ckpt).eval()
        row = {}
        for mode in PREPROCESS:
            x = torch.stack([prepare_image(PHOTOS / f, 28, 1, preprocess=mode).pixels for f in labels]).float() / 127.5 - 1
            y = torch.tensor([v["index"] for v in labels.values()])
            with torch.no_grad():
                row[mode] = float((model.predict(x).argmax(1) == y).float().mean())
        result[Path(ckpt).name] = row
        lines.append(f"| {Path(ckpt).name} | " + " | ".join(f"{row[m]:.0%}" for m in PREPROCESS) + " |")
    (PHOTOS / "accuracy.json").write_text(json.dumps({"images": len(labels), "accuracy": result}, indent=1))
    (PHOTOS / "accuracy.md").write_text(f"Accuracy on {len(labels)} photo-like test images (assets/photos/)\n\n"
                                        + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
