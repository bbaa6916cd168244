"""All model work of the app runs on one long-lived thread.

Gradio calls handlers on a pool of worker threads, and a generator's every `next()` may land on a different
one. Each thread that runs PyTorch CPU ops gets its own OpenMP team, and idle teams spin: on a 2-core
machine two teams fighting for the cores made a 50-step denoising 4–5× slower than the same call alone.
One compute thread keeps one team (and on a GPU one stream of work); requests queue for it in order."""
from __future__ import annotations

import contextvars
import functools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

_NAME = "jdx-compute"
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME)
# A class's big shared batches run in two halves side by side, the second on a helper thread with its own
# one-thread team (set_threads turns this on where two teams fit the cores). Two one-thread teams do not wait on
# each other the way one two-thread team's barriers did (that slowed Denoise when anything else ran), and rows are
# independent, so a row's answer does not depend on its half: 30 counterfactuals took 12.5 s instead of 22.0 s
# in one process, every pixel the same.
_HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME + "-helper")
SPLIT_AT = 8                      # rows: below this a half-batch costs nearly what the whole one does
_split = False


def run(fn, *args, **kwargs):
    """fn(*args, **kwargs) on the compute thread; the caller's context goes along (Gradio's progress bar
    finds its request through context variables)."""
    if threading.current_thread().name.startswith(_NAME):
        return fn(*args, **kwargs)
    return _EXECUTOR.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()


def set_threads(n: int) -> None:
    """PyTorch CPU threads n for the calling thread and the compute thread. OpenMP keeps a team size per
    thread: the compute thread, started while the page was built (it prepares the first example), kept the
    default of all cores after the main thread asked for fewer, and its two-thread team then fought the web
    server for the second core (session 13: a class-guided Denoise took 2.4 s over HTTP, 1.5 s after this).
    A class's shared passes keep the same count: two threads for big batches sped 30 counterfactuals up by
    16 % in one run and slowed 30 class-guided Denoise runs by 38 % (their per-step passes interleave with 30
    streams), and with gradio_client's clients on the same cores the counterfactuals were 8 % slower."""
    global _split
    torch.set_num_threads(n)
    run(torch.set_num_threads, n)
    _HELPER.submit(torch.set_num_threads, n).result()
    _split = 2 * n <= (os.cpu_count() or 1) and os.environ.get("JDX_SPLIT", "1") != "0"   # 0: one team (A/B)


def on_compute_thread(fn):
    """Decorator: every call of fn runs on the compute thread (signature kept for Gradio)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        return run(fn, *args, **kwargs)
    return wrapped


def in_callers_context(fn):
    """fn, called from any thread, runs in the context of the thread that wrapped it: a per-user callback
    (Gradio's progress bar finds its request through context variables) survives a shared batch."""
    ctx = contextvars.copy_context()
    return lambda *args, **kwargs: ctx.run(fn, *args, **kwargs)


def rows(value, i: int):
    """Row i of a batched result, keeping the batch dimension: tensors sliced, named tuples, tuples and lists
    (e.g. a trajectory of steps) taken apart field by field, anything else (a time step, a name) as it is."""
    if isinstance(value, torch.Tensor):
        return value[i:i + 1]
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(rows(v, i) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(rows(v, i) for v in value)
    return value


class Batcher:
    """Requests that arrive together share one model pass: callers hand in (key, x); the compute thread takes
    every waiting input with the same key, runs fn(key, join(xs)) once and hands each caller split(out, i).
    By default x is a tensor (1, …), join concatenates and split slices row i; a batched function may take
    the list of inputs as it is (join=list) and return anything `rows` can take apart. Inputs are prepared
    (and bad ones rejected) in the caller's thread, so one user's broken upload never fails another user's
    request; while one batch runs, the next gathers."""

    def __init__(self, fn, max_batch: int = 64, join=torch.cat, split=rows):
        self.fn, self.max_batch, self.join, self.split = fn, max_batch, join, split
        self._pending: list[tuple[object, object, Future]] = []
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []          # what was batched, for the benchmark

    def __call__(self, key, x):
        done: Future = Future()
        with self._lock:
            self._pending.append((key, x, done))
        _EXECUTOR.submit(self._drain)
        return done.result()

    def _drain(self) -> None:
        with self._lock:
            if not self._pending:
                return                            # an earlier drain already served this caller
            key = self._pending[0][0]
            chosen = [i for i, p in enumerate(self._pending) if p[0] == key][: self.max_batch]
            mine = [self._pending[i] for i in chosen]
            self._pending = [p for i, p in enumerate(self._pending) if i not in set(chosen)]
        self.batch_sizes.append(len(mine))
        if _split and len(mine) >= SPLIT_AT:
            half = (len(mine) + 1) // 2
            second = _HELPER.submit(self._serve, key, mine[half:])
            self._serve(key, mine[:half])
            second.result()
        else:
            self._serve(key, mine)

    def _serve(self, key, mine: list) -> None:
        """One model pass for these callers; each hears its row, or the error."""
        try:
            out = self.fn(key, self.join([x for _, x, _ in mine]))
            for i, (_, _, fut) in enumerate(mine):
                fut.set_result(self.split(out, i))
        except Exception as e:                    # noqa: BLE001 — every waiting caller hears about it
            for _, _, fut in mine:
                fut.set_exception(e)
