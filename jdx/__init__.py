"""JDX — the Joint Diffusion eXplorer: one diffusion network that both generates and classifies."""
from .cdm import CDM, dequantize
from .checkpoint import CheckpointError, load, save
from .counterfactual import counterfactual
from .data import DataError, image_to_input, load_fashion_mnist, prepare_image, to_pil
from .diffusion import Schedule, ScheduleConfig
from .generate import generate
from .joint import DiffusionModel, JointModel
from .samplers import ddim, ddpm, timesteps

__all__ = ["load", "save", "CheckpointError", "DataError", "counterfactual", "generate", "image_to_input",
           "prepare_image", "load_fashion_mnist", "to_pil", "Schedule", "ScheduleConfig", "DiffusionModel",
           "JointModel", "CDM", "dequantize", "ddim", "ddpm", "timesteps"]
__version__ = "0.1.0"
