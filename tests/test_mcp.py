"""Agents as users: the app served with Gradio's MCP server (`python app.py --mcp`) lists the main views as
tools with descriptions, and an MCP client classifies an image through the predict tool."""
from __future__ import annotations

import asyncio
import base64
import ast
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shape_image

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("gradio")
pytest.importorskip("mcp", reason="the MCP extra is not installed: pip install 'gradio[mcp]'")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory, tiny_joint):
    from jdx.ui import agents, layout, models
    folder = tmp_path_factory.mktemp("mcp-ck")
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_joint.with_suffix(suffix), folder / f"tiny-joint{suffix}")
    for toy in (ROOT / "checkpoints").glob("toy-*"):                   # the 2-D views' small models
        shutil.copy(toy, folder / toy.name)
    old = models.CHECKPOINT_DIR
    models.CHECKPOINT_DIR = folder
    demo = layout.build("tiny-joint")
    offered = agents.expose(demo)
    assert {"predict", "counterfactual", "denoise", "representations"} <= set(offered)
    layout.launch(demo, prevent_thread_lock=True, quiet=True, mcp_server=True)
    yield demo.local_url + "gradio_api/mcp/"
    demo.close()
    models.CHECKPOINT_DIR = old


def session(url: str, work):
    async def go():
        async with streamable_http_client(url) as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                return await work(s)
    return asyncio.run(go())


def test_tools_are_the_main_views_with_descriptions(mcp_url):
    tools = session(mcp_url, lambda s: s.list_tools()).tools
    by_name = {t.name: t for t in tools}
    assert {"predict", "attribute", "counterfactual", "denoise", "gradients", "representations"} <= set(by_name)
    assert not {"scrub", "pick_example", "use_drawing", "gif"} & set(by_name)      # page helpers are not tools
    predict = by_name["predict"]
    assert "Classify" in predict.description and "data:image/png;base64" in predict.description
    assert set(predict.inputSchema["properties"]) == {"model_name", "image"}
    assert "t_star" in by_name["counterfactual"].inputSchema["properties"]


def test_predict_through_mcp(mcp_url, tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "vbar.png"
    Image.fromarray(shape_image(1, rng)).resize((64, 64), Image.Resampling.NEAREST).save(path)
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    result = session(mcp_url, lambda s: s.call_tool("predict", {"model_name": "tiny-joint", "image": uri}))
    assert not result.isError, result.content
    texts = [c.text for c in result.content if c.type == "text"]
    outputs = ast.literal_eval(texts[0])             # Gradio sends the outputs as one Python literal
    label = outputs[0] if isinstance(outputs, list) else outputs
    probs = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(probs) == {"square", "vbar", "hbar"} and abs(sum(probs.values()) - 1) < 1e-4
    assert label["label"] == max(probs, key=probs.get)
