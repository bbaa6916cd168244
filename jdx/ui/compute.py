"""All model work of the app runs on one long-lived thread.

Gradio calls handlers on a pool of worker threads, and a generator's every `next()` may land on a different
one. Each thread that runs PyTorch CPU ops gets its own OpenMP team, and idle teams spin: on a 2-core
machine two teams fighting for the cores made a 50-step denoising 4–5× slower than the same call alone.
One compute thread keeps one team (and on a GPU one stream of work); requests queue for it in order."""
from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

_NAME = "jdx-compute"
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME)


def run(fn, *args, **kwargs):
    """fn(*args, **kwargs) on the compute thread; the caller's context goes along (Gradio's progress bar
    finds its request through context variables)."""
    if threading.current_thread().name.startswith(_NAME):
        return fn(*args, **kwargs)
    return _EXECUTOR.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()


def on_compute_thread(fn):
    """Decorator: every call of fn runs on the compute thread (signature kept for Gradio)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        return run(fn, *args, **kwargs)
    return wrapped
