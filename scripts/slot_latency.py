"""Median latency of each app handler called directly (no server, no HTTP): bench/app_latency.py's first
column, for a machine without Gradio (the lent GPUs have none and cannot fetch it): there a stand-in module
(scripts/gradio_stub) takes Gradio's place, which the handlers only use for errors, progress and updates.

    python3 scripts/slot_latency.py [--device cuda] [--repeats 5] [--out latency.md]

An endpoint that fails (e.g. attributions without captum) is listed with its error instead of a time."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
STUB = importlib.util.find_spec("gradio") is None or os.environ.get("JDX_STUB_GRADIO") == "1"
if STUB:
    sys.path.insert(0, str(ROOT / "scripts/gradio_stub"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma-separated api names to leave out (e.g. /attribute)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    os.environ["JDX_DEVICE"] = device
    import app_latency as bench        # bench/app_latency.py: the endpoints and their page defaults
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    lines = [f"Handler latency, called directly, median of {args.repeats} after one warm-up; device {name}, "
             f"torch {torch.__version__}; Gradio: {'stand-in (scripts/gradio_stub)' if STUB else 'installed'}; "
             f"load average {os.getloadavg()[0]:.1f}", "", "| endpoint | median |", "|---|---|"]
    print("\n".join(lines), flush=True)
    skip = {s for s in args.skip.split(",") if s}
    for what, api, a in bench.calls(bench.IMAGE):
        if api == "/scrub" or api in skip:
            continue
        t0 = time.perf_counter()
        try:
            s = bench.median_time(lambda: bench.direct(api, a), args.repeats)
            row = f"| {what} | {s * 1000:.0f} ms |"
        except Exception as e:  # one endpoint's failure must not cost the others' figures
            row = f"| {what} | failed after {time.perf_counter() - t0:.1f} s: {type(e).__name__}: {str(e)[:120]} |"
        lines.append(row)
        print(row, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
