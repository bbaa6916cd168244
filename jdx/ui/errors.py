"""When an action fails, its old results go: a red error beside the previous image's plots reads as if those
plots answered the new input. `clear_on_failure(event, outputs)` empties the outputs when (and only when) the
event raises — a `.failure()` listener, so a successful request costs nothing extra (Predict's 200 ms budget).
The listener is a Python function outside the queue (it must not wait behind model work): a browser-only
(js) listener that returns nulls runs, but Gradio 6.31 leaves the outputs as they were."""
from __future__ import annotations

import functools
import inspect
import itertools
import json
import threading
import typing
from collections import OrderedDict
from typing import Sequence

import gradio as gr


# Trigger mode of every event that shows the current state of its inputs (the image, the sliders). Gradio's
# default for an event whose first trigger is a click is "once": a new image or slider position that arrives
# while the previous request is pending is dropped, and the old answer stays beside the new input (a CI run
# showed the previous picture's label beside a bad upload's error). "always_last" runs the latest inputs once
# the pending request is done.
FOLLOW = "always_last"


def follow(triggers, fn, inputs, outputs, **kwargs):
    """gr.on(triggers, fn, inputs, outputs, trigger_mode=FOLLOW, **kwargs) that other listeners may share
    triggers with. Gradio 6's front end re-runs a deferred ("always_last") event by dispatching its *trigger*
    again, to every listener of that trigger: two such listeners of one trigger re-run each other for ever (the
    image's change re-ran Predict, the Learn view and the lesson every few seconds, which starved a CI run's
    Denoise). So the triggers go to a listener that runs in the browser alone — never pending, so never
    deferred — and fn follows it with .then: a deferred follower re-runs itself only. The follower still sees
    which component triggered it (gr.EventData.target), so automatic triggers stay quiet (models.if_image)."""
    hub = gr.on(triggers, None, None, None, js="() => []", queue=False, trigger_mode="multiple",
                api_visibility="private", show_progress="hidden")
    return hub.then(fn, inputs, outputs, trigger_mode=FOLLOW, **kwargs)


def _empty(n: int):
    return lambda: None if n == 1 else (None,) * n


def clear_on_failure(event, outputs: Sequence[gr.components.Component]):
    """Empty `outputs` when `event` (the dependency an event listener returned) fails; returns the event, so
    a chain (`.success(…)`) can continue from it."""
    outputs = list(outputs)
    event.failure(_empty(len(outputs)), None, outputs, api_name=False, show_progress="hidden", queue=False)
    return event


def clear_when(triggers: list, outputs: Sequence[gr.components.Component], press: str) -> None:
    """Empty a view's answer in the browser (no request) when one of `triggers` fires — its picture or model
    changed — and say in the last output, the view's summary, what to `press` (Markdown) for a new one. The
    views that do not rerun on their own showed the previous picture's answer, or another model's, with no
    word (walkthrough)."""
    outputs = list(outputs)
    note = f"The picture or the model changed: press {press} for the new answer."
    js = "() => [" + "null, " * (len(outputs) - 1) + json.dumps(note) + "]"
    gr.on(triggers, None, None, outputs, js=js, queue=False, api_visibility="private", show_progress="hidden")


class Latest:
    """Answers that arrive after their input changed are dropped. A slow follow-up (the Predict view's
    attributions, ~0.7 s) started for the previous picture would otherwise land after the new picture's answer
    — or beside its error. Gradio's `cancels=` cannot do this reliably: its cancel clears the *newest*
    submission of the cancelled event and then fires the event's failure listeners, which blanked the new
    picture's attributions. So the server keeps, per browser session, a token of the latest input change."""

    def __init__(self, size: int = 4096):
        self._token: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._counter = itertools.count(1)

    def changed(self, request: gr.Request) -> None:
        """Listener for the input's change (queue=False: it must not wait behind model work)."""
        with self._lock:
            self._token[request.session_hash] = next(self._counter)
            self._token.move_to_end(request.session_hash)
            while len(self._token) > self._size:
                self._token.popitem(last=False)

    def _now(self, request: gr.Request | None) -> int | None:
        with self._lock:
            return None if request is None else self._token.get(request.session_hash)

    def only_current(self, fn):
        """fn, whose answer is replaced by 'no update' (gr.skip) when its input changed while it ran."""
        sig = inspect.signature(fn)
        req = inspect.Parameter("_jdx_request", inspect.Parameter.KEYWORD_ONLY, annotation=gr.Request)

        @functools.wraps(fn)
        def wrapped(*args, _jdx_request: gr.Request | None = None, **kwargs):
            before = self._now(_jdx_request)
            out = fn(*args, **kwargs)
            return out if self._now(_jdx_request) == before else gr.skip()
        wrapped.__signature__ = sig.replace(parameters=list(sig.parameters.values()) + [req])
        wrapped.__annotations__ = {**typing.get_type_hints(fn), "_jdx_request": gr.Request}
        return wrapped
