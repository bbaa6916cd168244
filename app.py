"""JDX app: `python app.py` serves http://127.0.0.1:7860 (set JDX_HOST to listen elsewhere,
JDX_CHECKPOINT to pick the starting model, JDX_CHECKPOINTS for another checkpoint folder)."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from jdx.ui.layout import build, launch  # noqa: E402

if __name__ == "__main__":
    launch(build())
