"""JDX app: `python app.py` serves http://127.0.0.1:7860 (set JDX_HOST to listen elsewhere,
JDX_CHECKPOINT to pick the starting model, JDX_CHECKPOINTS for another checkpoint folder).
`python app.py --mcp` (or JDX_MCP=1) also serves the main views as MCP tools for agents, at
http://127.0.0.1:7860/gradio_api/mcp/ (needs `pip install "gradio[mcp]"`; see jdx/ui/agents.py)."""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from jdx.ui import agents  # noqa: E402
from jdx.ui.layout import build, launch  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="The Joint Diffusion eXplorer app.")
    ap.add_argument("--mcp", action="store_true", help="also serve the main views as MCP tools")
    mcp = agents.wanted(ap.parse_args().mcp)
    demo = build()
    if mcp:
        agents.expose(demo)
    launch(demo, mcp_server=mcp)
