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
    ap.add_argument("--class-size", type=int, default=30,
                    help="concurrent handler calls per button, the class of 30 (0: skip)")
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
    if args.class_size:
        lines += ["", f"A class of {args.class_size} at once: each handler called from its own thread within a "
                  "second (shared model passes, jdx/ui/batches.py); one alone = median of 3", "",
                  "| button | one alone | all answered | ratio |", "|---|---|---|---|"]
        for row in class_at_once(bench, args.class_size):
            lines.append(row)
            print(row, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


def class_at_once(bench, n: int) -> list[str]:
    """n threads call one handler at once, each with its own example, target and seed (as bench/app_latency.py's
    class of 30, without Gradio's server: the batching lives in the handlers)."""
    import statistics
    import threading
    from concurrent.futures import ThreadPoolExecutor
    cf = bench.CF
    jobs = [(str(e), (int(e.name[0]) + 1 + i % 9) % 10, i)
            for i, e in ((i, bench.EXAMPLES[i % len(bench.EXAMPLES)]) for i in range(n))]

    def counterfactual(job):
        w = [0] * 10
        w[job[1]] = 1
        return bench.direct("/counterfactual", (bench.MODEL, job[0], cf.t_star, cf.scale, job[2], *w, cf.method, cf.lam))

    def denoise(job):
        return bench.direct("/denoise", (bench.MODEL, job[0], "pure noise", 500, "ddim", 50, "no guidance", 8, job[2]))
    rows = []
    for name, fn in ((f"Make counterfactual ({cf.method})", counterfactual), ("Denoise (50-step DDIM)", denoise)):
        try:
            fn(jobs[0])                                                   # warm-up
            one = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn(jobs[0])
                one.append(time.perf_counter() - t0)
            barrier = threading.Barrier(n)

            def press(job):
                barrier.wait()
                return fn(job)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(press, jobs))
            wall = time.perf_counter() - t0
            alone = statistics.median(one)
            rows.append(f"| {name} | {alone:.2f} s | {wall:.2f} s | {wall / alone:.1f}× |")
        except Exception as e:  # the single-endpoint figures above must still come back
            rows.append(f"| {name} | failed: {type(e).__name__}: {str(e)[:120]} | | |")
    return rows


if __name__ == "__main__":
    main()
