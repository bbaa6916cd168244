"""Agents as users: `python app.py --mcp` (or JDX_MCP=1) also serves the app's main views as MCP tools
through Gradio's MCP server (`pip install "gradio[mcp]"`), at http://127.0.0.1:7860/gradio_api/mcp/ (streamable
HTTP; SSE at …/gradio_api/mcp/sse).

Each tool is one view's main event; its description below says what it computes, what each argument means
and what comes back, in the words an agent needs to pick and call it. The page's helper events (the
gallery, the drawing canvas, the denoising scrubber, the GIF) stay callable over the HTTP API but are not
offered as tools."""
from __future__ import annotations

import os

import gradio as gr

from ..counterfactual import DEFAULT as CF, METHODS

IMAGE = ("image: the picture, as an http(s) URL or a data:image/png;base64 URI (any size; a light background "
         "is inverted to match the light-on-dark training data)")
MODEL = "model_name: a checkpoint from the model list, e.g. 'fmnist-joint' (joint: denoises and classifies)"

TOOLS = {
    "predict": f"""Classify a picture of a garment with the joint diffusion model's classifier (Fashion-MNIST:
T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot). Args: {MODEL}; {IMAGE}.
Returns the class probabilities p(y | x) (top classes with confidences) and a note: whether the picture is like
the training data (an OOD score; a label on an unlike picture means little) and what was done to the upload.""",
    "attribute": f"""Explain a prediction: Integrated Gradients and SmoothGrad attributions (captum) over the
28×28 input, red pixels pushing the class score up, blue down. Args: {MODEL}; {IMAGE}; target: 'predicted
class' or a class name. Returns a figure.""",
    "robustness": f"""How the prediction holds up as the picture is noised from t = 0 to T by the forward diffusion
process: p(y | x_t, t) for 21 noise levels. Args: {MODEL}; {IMAGE}. Returns a figure.""",
    "denoise": f"""Generate with the diffusion model: start from pure noise (or from the picture noised to t*) and
run a DDIM/DDPM sampler back to t = 0, optionally guided toward a class by the shared classifier. Args:
{MODEL}; {IMAGE}; start: 'pure noise' or 'my image, noised to t*'; t_star: the start noise level; sampler:
'ddim' or 'ddpm'; steps: sampler steps (e.g. 50); guide: 'no guidance' or a class name; scale: guidance
strength; seed. Returns the final sample, its clean-image estimate x̂₀, a caption and p(y | x̂₀) as sampling
goes.""",
    "gradients": f"""Look at the gradients that steer guided sampling at one noise level t: the classifier's gradient
∇ log p(y | x_t) and the denoiser's ε̂, in ε- and score-space. Args: {MODEL}; {IMAGE}; t: noise level;
target: class to steer toward; scale; seed. Returns x_t, x̂₀, two figures and a summary.""",
    "counterfactual": f"""Visual counterfactual: what would have to change for the model to call this picture another
class? The picture is noised to t* and denoised with the classifier's guidance toward a target class mixture.
Args: {MODEL}; {IMAGE}; t_star: how much may change (10–500, default {CF.t_star}); scale: guidance strength s
(default {CF.scale:g}); seed; then one weight per class in class order (T-shirt/top, Trouser, Pullover, Dress, Coat,
Sandal, Shirt, Sneaker, Bag, Ankle boot), e.g. 1 for the target class and 0 elsewhere; then the method
({', '.join(METHODS)}; default {CF.method}) and λ, how hard the edit keeps close to the picture (default {CF.lam:g}).
Returns the
before/after pair, a difference map, p(y | x) before and after, the edit's trajectory and a summary.""",
    "noise_level": f"""Noise-level classifier (CDM): noise the picture to t and ask a classifier of noise levels
p(t | x_t); its gradient is a denoiser and its output a likelihood (bits/dim). Args: {MODEL}; {IMAGE};
cdm_name: a CDM checkpoint, e.g. 'fmnist-cdm'; t: noise level; seed. Returns x_t, the CDM's and the diffusion
model's clean-image estimates, figures and a summary.""",
    "representations": f"""Are diffusion features good representations? Noise the picture to t, run the U-Net once and
place one block's features among 2,000 test images' (first two principal components, coloured by class).
Args: {MODEL}; {IMAGE}; block: a U-Net block name, e.g. 'mid'; t: noise level (0, 10, 25, 50, 100, 150 or
250 answer at once); seed. Returns the block's feature maps, the PCA figure and a summary naming the
majority class among the 25 nearest test images.""",
    "forward": f"""The forward diffusion process q(x_t | x_0) for the picture: x_t at noise level t, a strip of 9
levels and the ᾱ_t / SNR curves. Args: {MODEL}; {IMAGE}; t; seed.""",
    "toy_field": """2-D toy joint diffusion model: the learned score field at noise level t over the data, with the
classifier's regions. Args: name: 'moons', 'gmm' or 'spirals'; t: noise level. Returns a figure.""",
    "toy_cdm_field": """2-D toy noise-level classifier: its field −(∇ₓF + x) at t over its log-density, and how closely it
matches the denoiser's score field. Args: name: 'moons', 'gmm' or 'spirals'; t. Returns a figure.""",
    "toy_reverse": """2-D toy reverse process: particles moving from noise onto the data. Args: name: 'moons', 'gmm'
or 'spirals'; n: particles; sampler; seed; frames. Returns the last figure.""",
    "aux_particles": """Multivariate diffusions with auxiliary variables (VP-SDE, CLD, learned) on 2-D data: where the
particles and their auxiliary variables are at time s of the forward process. Args: data: 'moons'; s in
[0, 1]; seed. Returns two figures and a summary.""",
    "aux_image": """Multivariate diffusion on an image: the auxiliary variables along the forward process of the
picture and along a reverse sample. Args: image (URL or data URI); mdm_name: e.g. 'fmnist-mdm-cld'; seed.
Returns two pictures (rows: the image and its auxiliaries; columns: times s) and a summary.""",
}


def wanted(flag: bool = False) -> bool:
    """--mcp on the command line, or JDX_MCP=1 in the environment."""
    return flag or os.environ.get("JDX_MCP", "").lower() in ("1", "true", "yes")


def expose(demo: gr.Blocks) -> list[str]:
    """Give the main events their tool descriptions and keep the page's helper events out of the tool list
    (they stay callable over the HTTP API); → the api_names offered as tools."""
    offered = []
    for fn in demo.fns.values():
        if not fn.api_name or fn.api_visibility != "public":
            continue
        if fn.api_name in TOOLS:
            fn.api_description = " ".join(TOOLS[fn.api_name].split())
            offered.append(fn.api_name)
        else:
            fn.api_visibility = "undocumented"
    return sorted(offered)
