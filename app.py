"""JDX app (a minimal first page; the full explorer is the app issue): classify an image with the shipped
joint diffusion model and draw class-guided samples from the same network.

    python app.py            # http://127.0.0.1:7860
"""
from __future__ import annotations

import os
from functools import lru_cache

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import torch  # noqa: E402

import jdx  # noqa: E402
from jdx.generate import generate  # noqa: E402
from jdx.train import pick_device  # noqa: E402
from jdx.viz import grid  # noqa: E402

CHECKPOINT = os.environ.get("JDX_CHECKPOINT", "checkpoints/fmnist-joint")


@lru_cache(maxsize=4)
def model(path: str = CHECKPOINT):
    return jdx.load(path, pick_device("auto"))


def predict(image):
    if image is None:
        raise gr.Error("Upload an image first.")
    m = model()
    try:
        x = jdx.image_to_input(image)
    except jdx.DataError as e:
        raise gr.Error(str(e))
    probs = m.predict(x.to(next(m.parameters()).device))[0].cpu()
    return {name: float(p) for name, p in zip(m.info.class_names, probs)}, jdx.to_pil(x[0], scale=8)


def sample(class_name: str, guidance: float, seed: int):
    m = model()
    k = m.info.class_names.index(class_name)
    w = torch.nn.functional.one_hot(torch.tensor(k), m.num_classes).float()
    images = generate(m, 8, weights=w, scale=guidance, steps=50, seed=int(seed)).images
    return grid(images.cpu(), nrow=8, scale=4)


def build() -> gr.Blocks:
    m = model()
    with gr.Blocks(title="JDX — Joint Diffusion eXplorer") as demo:
        gr.Markdown("# JDX — the Joint Diffusion eXplorer\nOne diffusion network that both **classifies** and "
                    f"**generates**. Model: `{m.info.name}` on `{next(m.parameters()).device}`.")
        with gr.Tab("Predict"):
            with gr.Row():
                inp = gr.Image(type="pil", label="Image (any size; light backgrounds are inverted)")
                with gr.Column():
                    label = gr.Label(num_top_classes=5, label="p(y | x)")
                    seen = gr.Image(label="what the model sees (28×28)")
            gr.Button("Classify").click(predict, inp, [label, seen], api_name="predict")
        with gr.Tab("Generate"):
            cls = gr.Dropdown(m.info.class_names, value=m.info.class_names[0], label="class")
            s = gr.Slider(0, 20, value=8, step=0.5, label="guidance scale")
            seed = gr.Number(value=0, precision=0, label="seed")
            out = gr.Image(label="guided samples")
            gr.Button("Generate").click(sample, [cls, s, seed], out, api_name="sample")
    return demo


if __name__ == "__main__":
    build().queue().launch(server_name=os.environ.get("JDX_HOST", "127.0.0.1"), max_file_size="20mb")
