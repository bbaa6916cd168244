"""Latency of every main app endpoint, and many clients at once, against a launched `python app.py`.

    python bench/app_latency.py [--repeats 3] [--class-size 30] [--clients 16] [--rounds 3] [--device cpu|cuda]
        [--only predict,denoise] [--buttons counterfactual,denoise,denoise_guided] [--class-client gradio,http]
    [--no-first]

Table 1: per endpoint, the median time of the handler alone (called in this process, no HTTP), and its CPU time (all threads of the process),
of one event over Gradio's plain HTTP API (image uploaded once, as a browser does; POST + SSE stream) and of a full
gradio_client call (which uploads the image and downloads every output file each time) against the server
in a subprocess, beside the issue's target: with `ssl_verify=False` (plain HTTP: no certificate to check, and
gradio_client would otherwise parse the CA bundle for every request it sends, see CLIENT) and, in the column
"default client", with the library's defaults. Client and server share this machine's cores, as a browser on a
laptop does. Above it: the Representations view's *first* answers on a fresh server (a block and t nobody
asked for yet), and the machine's load average (other work on the machine inflates every figure).
Table 2, a class at once: `class-size` clients (gradio_client, or with --class-client http as a browser does) press "Make counterfactual" (each its own
example, target and seed) within a second, then "Denoise" (each its own seed), then a class-guided "Denoise"
(each its own class), then "Classify": wall time until the last answer against one request alone (target:
≤ 8×), and how many answers are identical to the one the same request got alone (the same printed text —
classes, percentages, L1 / the caption — and the same 8-bit pictures) or within one grey level (a shared
pass sums in another order; what differed goes to stderr).
Table 3: `clients` clients at once, each predict + counterfactual, for `rounds` rounds, with the server's
resident memory after each round (flat = no leak)."""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import io
import itertools
import json
import re
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from jdx.counterfactual import DEFAULT as CF  # noqa: E402  (the app's default method and settings)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
EXAMPLES = sorted((ROOT / "assets/examples").glob("*.png"))
IMAGE = str(ROOT / "assets/examples/7-sneaker-0.png")
MODEL = "fmnist-joint"
BAG = [0] * 8 + [1, 0]
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# gradio_client opens a new httpx client for every request (upload, queue join, event stream, each file it
# downloads), and each one parses the CA bundle for TLS: 52 ms of CPU here, ~150 ms a prediction, on the cores
# the server needs. The app is served over plain HTTP on this machine, where no certificate is ever checked, so
# the clients skip that set-up (`ssl_verify=False`); the column "default client" keeps the library's default.
CLIENT = {"verbose": False, "ssl_verify": False}
FRESH = "a seed nobody asked for yet"     # replaced by a new seed in every call
_SEEDS = itertools.count(1000)


def fresh(args):
    return tuple(next(_SEEDS) if v is FRESH else v for v in args)


def calls(image):
    """(name, api_name, args) — the endpoints a user drives, with the defaults of the page."""
    return [
        ("predict", "/predict", (MODEL, image)),
        ("representations (shipped t = 50, bottleneck)", "/representations", (MODEL, image, "mid", 50, 0)),
        ("attributions (IG + SmoothGrad)", "/attribute", (MODEL, image, "predicted class")),
        ("prediction vs. noise level", "/robustness", (MODEL, image)),
        ("denoise: 50-step DDIM trajectory", "/denoise", (MODEL, image, "pure noise", 500, "ddim", 50, "no guidance", 8, 0)),
        ("denoise: 50 steps, class-guided", "/denoise", (MODEL, image, "pure noise", 500, "ddim", 50, "Bag", 8, 0)),
        ("scrub (stored frame)", "/scrub", (10,)),
        ("gradients at t", "/gradients", (MODEL, image, 100, "predicted class", 8, 0)),
        (f"counterfactual ({CF.method}, t* {CF.t_star}, s {CF.scale:g}, λ {CF.lam:g}, {CF.steps} steps)", "/counterfactual",
         (MODEL, image, CF.t_star, CF.scale, 0, *BAG, CF.method, CF.lam)),
        ("noise-level classifier (CDM) at t", "/noise_level", (MODEL, image, "fmnist-cdm", 200, 0)),
        ("forward process", "/forward", (MODEL, image, 100, 0)),
        ("toy score field", "/toy_field", ("moons", 10)),
        ("toy noise-level classifier field", "/toy_cdm_field", ("moons", 10)),
        ("toy reverse process (7 frames)", "/toy_reverse", ("moons",)),
        ("auxiliary variables: 2-D particles at s (trajectories cached after the first call)", "/aux_particles",
         ("moons", 0.3, 0)),
        ("auxiliary variables: image forward + 100-step reverse (CLD), a seed asked for before (reverse cached)",
         "/aux_image", (image, "fmnist-mdm-cld", 0)),
        ("auxiliary variables: image (CLD), a seed nobody asked for yet (reverse computed)", "/aux_image",
         (image, "fmnist-mdm-cld", FRESH)),
    ]


def direct(name: str, args):
    """The handler itself, as the server calls it (generators run to the end)."""
    from jdx.ui import auxiliary, counterfactual, denoise, gradients, learn, noise_level, predict
    from jdx.ui import representations
    fn = {"/representations": representations.representations, "/predict": predict.predict, "/attribute": predict.attribute, "/robustness": predict.robustness,
          "/denoise": denoise.denoise, "/gradients": gradients.gradients, "/counterfactual": counterfactual.counterfactual,
          "/forward": learn.forward, "/toy_field": learn.toy_field, "/toy_reverse": learn.toy_reverse,
          "/noise_level": noise_level.noise_level, "/toy_cdm_field": learn.toy_cdm_field,
          "/aux_particles": auxiliary.aux_particles, "/aux_image": auxiliary.aux_image}.get(name)
    if fn is None:
        return None
    out = fn(*args)
    if hasattr(out, "__next__"):
        out = list(out)
    return out


def upload(url: str, path: str) -> dict:
    """Upload a file once, as the browser does, and return the FileData the API takes."""
    boundary = "jdxbenchboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{Path(path).name}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + Path(path).read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "gradio_api/upload", body,
                                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    server_path = json.loads(urllib.request.urlopen(req).read())[0]
    return {"path": server_path, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(path).name}


def http_call(url: str, api: str, args):
    """One event over Gradio's plain HTTP API (POST, then read the SSE stream to `complete`): the server's
    latency without gradio_client's own overhead. → the outputs (files as FileData dicts with a URL)."""
    req = urllib.request.Request(url + "gradio_api/call" + api, json.dumps({"data": list(args)}).encode(),
                                 {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req).read())["event_id"]
    with urllib.request.urlopen(url + f"gradio_api/call{api}/{event}") as stream:
        kind = None
        for line in stream:
            if line.startswith(b"event:"):
                kind = line[6:].strip()
                if kind == b"error":
                    raise RuntimeError(f"{api} failed: {stream.read(500)!r}")
            elif line.startswith(b"data:") and kind == b"complete":
                return json.loads(line[5:])
    raise RuntimeError(f"{api}: the stream ended without an answer")


def median_time(f, repeats: int, clock=time.perf_counter) -> float:
    f()                                  # warm-up: model load, first-call allocations
    ts = []
    for _ in range(repeats):
        t0 = clock()
        f()
        ts.append(clock() - t0)
    return statistics.median(ts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(device: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "JDX_DEVICE": device}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(1200):                # 10 minutes: a loaded machine starts slowly
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start within 10 minutes")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def concurrency(url: str, pid: int, clients: int, rounds: int):
    from gradio_client import Client, handle_file
    jobs = [(str(EXAMPLES[i % len(EXAMPLES)]), (int(EXAMPLES[i % len(EXAMPLES)].name[0]) + 1 + i % 9) % 10, i)
            for i in range(clients)]

    def run(job):
        path, target, seed = job
        c = Client(url, **CLIENT)
        label, _ = c.predict(MODEL, handle_file(path), api_name="/predict")
        w = [0] * 10
        w[target] = 1
        cf = c.predict(MODEL, handle_file(path), CF.t_star, CF.scale, seed, *w, CF.method, CF.lam, api_name="/counterfactual")
        # Labels compare exactly; probabilities of batched predictions differ only by float rounding.
        return label["label"], np.asarray(Image.open(cf[0][1])).tobytes(), cf[4]

    def predict_only(job):
        return Client(url, **CLIENT).predict(MODEL, handle_file(job[0]), api_name="/predict")[0]["label"]

    t0 = time.perf_counter()
    alone_p = [predict_only(j) for j in jobs]
    rows = [(f"{clients} predicts one after another", "—", f"{time.perf_counter() - t0:.1f}", f"{rss_mb(pid):.0f}")]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        together_p = list(pool.map(predict_only, jobs))
    rows.append((f"{clients} predicts at once (shared batches)", f"{sum(a == b for a, b in zip(alone_p, together_p))}/{clients}",
                 f"{time.perf_counter() - t0:.1f}", f"{rss_mb(pid):.0f}"))
    alone = [run(j) for j in jobs]
    rows.append(("predict + counterfactual, one client after another", "—", "—", f"{rss_mb(pid):.0f}"))
    for r in range(rounds):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            together = list(pool.map(run, jobs))
        wall = time.perf_counter() - t0
        same = sum(a == b for a, b in zip(alone, together))
        rows.append((f"round {r + 1}: {clients} clients at once, predict + counterfactual", f"{same}/{clients}", f"{wall:.1f}", f"{rss_mb(pid):.0f}"))
    return rows


TARGETS_MS = {"/predict": 200, "/representations": 3000, "/scrub": 2000}   # the issue's; every other main action 2 s


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def first_answers(client, handle_file) -> list[tuple[str, str]]:
    """The Representations view's first answer for blocks and levels nobody asked for yet (the model is
    loaded first by a predict): with the test set's projections shipped, one U-Net pass on the image."""
    client.predict(MODEL, handle_file(IMAGE), api_name="/predict")
    rows = []
    for block, t in (("mid", 50), ("enc4 L1 res", 100), ("dec3 L1", 250), ("enc0 conv_in", 0)):
        t0 = time.perf_counter()
        client.predict(MODEL, handle_file(IMAGE), block, t, 0, api_name="/representations")
        rows.append((f"first answer, block {block}, t = {t}", f"{(time.perf_counter() - t0) * 1000:.0f}"))
    return rows


def class_at_once(url: str, n: int, buttons: str = "counterfactual,denoise,denoise_guided,predict",
                  client: str = "gradio") -> list[tuple[str, ...]]:
    """n clients press the same button within a second; each answer is compared with the same request alone.
    client "gradio": gradio_client (uploads the picture and downloads every output file on each press);
    "http": as a browser does — each client's picture uploaded once beforehand (when the student picked it),
    then per press one POST, the event stream and the answer's pictures fetched by URL. The clients share
    this machine's cores with the server; gradio_client's cost more of them."""
    from gradio_client import Client, handle_file
    jobs = [(str(EXAMPLES[i % len(EXAMPLES)]), (int(EXAMPLES[i % len(EXAMPLES)].name[0]) + 1 + i % 9) % 10, i)
            for i in range(n)]
    if client == "http":
        uploaded = [upload(url, job[0]) for job in jobs]

        def ask(i, api, *args):
            return http_call(url, api, (MODEL, uploaded[i], *args))

        def picture(v):
            return np.asarray(Image.open(io.BytesIO(urllib.request.urlopen(v["url"]).read()))).astype(int)
    else:
        # generous timeouts: 30 uploads at once on a small CPU wait longer than httpx's default 5 s
        clients = [Client(url, **CLIENT, httpx_kwargs={"timeout": 600}) for _ in range(n)]

        def ask(i, api, *args):
            return clients[i].predict(MODEL, handle_file(jobs[i][0]), *args, api_name=api)

        def picture(v):
            return np.asarray(Image.open(v)).astype(int)

    # An answer is (what the page prints, the 8-bit pictures): identical = the same text (classes, their
    # percentages, L1 to 3 decimals; the Denoise caption: t, class, %) and the same bytes of every picture.
    # ask(i, …) presses as client i (the picture of job i); pressing job j's request as client 0 is "alone".
    def counterfactual(i, job):
        _, target, seed = job
        w = [0] * 10
        w[target] = 1
        out = ask(i, "/counterfactual", CF.t_star, CF.scale, seed, *w, CF.method, CF.lam)
        return out[4], picture(out[0][1])

    def denoise(i, job, guide="no guidance"):
        out = ask(i, "/denoise", "pure noise", 500, "ddim", 50, guide, 8, job[2])
        return out[2], picture(out[0])

    def denoise_guided(i, job):
        return denoise(i, job, NAMES[job[1]])

    def predict(i, job):
        label, _ = ask(i, "/predict")
        return str([(d["label"], f"{d['confidence']:.0%}") for d in label["confidences"]]), np.zeros(1, int)

    rows = []
    for name, fn in ((f"Make counterfactual ({CF.method}, t* {CF.t_star}, s {CF.scale:g}, {CF.steps} steps)", counterfactual),
                     ("Denoise (50-step DDIM from noise)", denoise),
                     ("Denoise, class-guided (50 steps, s 8, each its own class)", denoise_guided),
                     ("Classify (predict)", predict)):
        if fn.__name__ not in buttons.split(","):
            continue
        fn(0, jobs[0])                                                 # warm-up
        one = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn(0, jobs[0])
            one.append(time.perf_counter() - t0)
        one_s = statistics.median(one)
        alone = [fn(i, j) for i, j in enumerate(jobs)]
        barrier = threading.Barrier(n)

        def press(i):
            barrier.wait()                                             # all within a second
            return fn(i, jobs[i])
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            together = list(pool.map(press, range(n)))
        wall = time.perf_counter() - t0
        same = [a[1].shape == b[1].shape and a[0] == b[0] for a, b in zip(alone, together)]
        exact = sum(s and np.array_equal(a[1], b[1]) for s, a, b in zip(same, alone, together))
        near = sum(s and np.abs(a[1] - b[1]).max() <= 1 for s, a, b in zip(same, alone, together))
        for i, (s, a, b) in enumerate(zip(same, alone, together)):
            if not (s and np.array_equal(a[1], b[1])):                 # what differed, for the notes
                print(f"  {fn.__name__} client {i}: text {'same' if a[0] == b[0] else f'{a[0]!r} vs {b[0]!r}'}; "
                      f"pixels differing {int((a[1] != b[1]).sum()) if a[1].shape == b[1].shape else 'shape'}, "
                      f"max |Δ| {int(np.abs(a[1] - b[1]).max()) if a[1].shape == b[1].shape else '—'} grey levels",
                      file=sys.stderr, flush=True)
        rows.append((name, client, f"{one_s:.2f}", f"{wall:.1f}", f"{wall / one_s:.1f}×", f"{exact}/{n}", f"{near}/{n}",
                     load()))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--class-size", type=int, default=30, help="clients pressing one button at once (0: skip)")
    ap.add_argument("--buttons", default="counterfactual,denoise,denoise_guided,predict",
                    help="the class's buttons (comma-separated: counterfactual, denoise, denoise_guided, predict)")
    ap.add_argument("--class-client", default="gradio",
                    help="the class's clients, comma-separated: gradio (gradio_client), http (as a browser does)")
    ap.add_argument("--no-first", action="store_true", help="skip the Representations first-answer table")
    ap.add_argument("--clients", type=int, default=0, help="clients for the predict + counterfactual rounds (0: skip)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated api_names for table 1 (default: all)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    os.environ["JDX_DEVICE"] = args.device
    from jdx.ui.layout import serving_threads
    if args.device == "cpu":
        torch.set_num_threads(serving_threads())   # the handler column: as many threads as the server uses
    from gradio_client import Client, handle_file

    proc, url = start_server(args.device)
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    try:
        client, default_client = Client(url, **CLIENT), Client(url, verbose=False)
        if not args.no_first:
            print(f"\nRepresentations on a fresh server ({args.device}: {dev}; {load()})\n")
            print("| request | gradio_client (ms) |\n|---|---:|")
            for r in first_answers(client, handle_file):
                print("| " + " | ".join(r) + " |", flush=True)
        file_data = upload(url, IMAGE)
        rows = []
        only = {f"/{a.strip('/')}" for a in args.only.split(",") if a}
        before = load()
        for name, api, a in calls(IMAGE):
            if only and api not in only:
                continue
            t_direct = None if api == "/scrub" else median_time(lambda: direct(api, fresh(a)), args.repeats)
            # the handler's CPU time (all threads of this process: the compute thread included), which other
            # work on the machine inflates far less than wall time
            t_cpu = None if api == "/scrub" else median_time(lambda: direct(api, fresh(a)), args.repeats, time.process_time)
            a_http = tuple(file_data if v == IMAGE else v for v in a)
            t_http = None if api == "/scrub" else median_time(lambda: http_call(url, api, fresh(a_http)), args.repeats)
            a_client = tuple(handle_file(v) if v == IMAGE else v for v in a)
            t_client = median_time(lambda: client.predict(*fresh(a_client), api_name=api), args.repeats)
            t_default = median_time(lambda: default_client.predict(*fresh(a_client), api_name=api), args.repeats)
            ms = lambda v: "—" if v is None else f"{v * 1000:.0f}"   # noqa: E731
            target = TARGETS_MS.get(api, 2000)
            rows.append((name, api, ms(t_direct), ms(t_cpu), ms(t_http), ms(t_client), ms(t_default), f"≤ {target}",
                         "yes" if t_client * 1000 <= target else "no"))
        print(f"\nEndpoint latency, median of {args.repeats} ({args.device}: {dev}; torch {torch.__version__}; "
              f"{before} before, {load()} after)\n")
        print("| endpoint | api_name | handler (ms) | handler CPU (ms) | HTTP API (ms) | gradio_client (ms) "
              "| default client (ms) | target (ms) | met |\n|---|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |", flush=True)
        if args.class_size:
            print(f"\nA class of {args.class_size}: every client presses the same button within a second "
                  f"(each its own example, target and seed)\n")
            print("| button | clients | one alone (s, median of 3) | all answered (s) | ratio | identical to alone "
                  "| within one grey level | load |\n|---|---|---:|---:|---:|---:|---:|---|")
            for kind in args.class_client.split(","):
                for r in class_at_once(url, args.class_size, args.buttons, kind):
                    print("| " + " | ".join(r) + " |", flush=True)
        if args.clients:
            print(f"\n{args.clients} concurrent clients (each its own example and target)\n")
            print("| run | answers equal to alone | wall (s) | server RSS (MB) |\n|---|---:|---:|---:|")
            for r in concurrency(url, proc.pid, args.clients, args.rounds):
                print("| " + " | ".join(r) + " |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
