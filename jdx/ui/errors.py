"""When an action fails, its old results go: a red error beside the previous image's plots reads as if those
plots answered the new input. `clear_on_failure(event, outputs)` empties the outputs when (and only when) the
event raises — a `.failure()` listener, so a successful request costs nothing extra (Predict's 200 ms budget).
The listener is a Python function outside the queue (it must not wait behind model work): a browser-only
(js) listener that returns nulls runs, but Gradio 6.31 leaves the outputs as they were."""
from __future__ import annotations

from typing import Sequence

import gradio as gr


# Trigger mode of every event that shows the current state of its inputs (the image, the sliders). Gradio's
# default for an event whose first trigger is a click is "once": a new image or slider position that arrives
# while the previous request is pending is dropped, and the old answer stays beside the new input (a CI run
# showed the previous picture's label beside a bad upload's error). "always_last" runs the latest inputs once
# the pending request is done.
FOLLOW = "always_last"


def _empty(n: int):
    return lambda: None if n == 1 else (None,) * n


def clear_on_failure(event, outputs: Sequence[gr.components.Component]):
    """Empty `outputs` when `event` (the dependency an event listener returned) fails; returns the event, so
    a chain (`.success(…)`) can continue from it."""
    outputs = list(outputs)
    event.failure(_empty(len(outputs)), None, outputs, api_name=False, show_progress="hidden", queue=False)
    return event
