"""A separate plain CNN classifier whose penultimate features serve FID (Inception weights are not
available offline; for MNIST-like data a small classifier's features are the usual practice) and whose
verdict independently checks guided samples and counterfactuals."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .results import LossOutput


@dataclass
class ClassifierConfig:
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    width: int = 32          # channels of the first conv stage; doubled in the second
    feature_dim: int = 256   # dimension of the FID feature space
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)


class ClassifierOutput(NamedTuple):
    logits: Tensor     # (B, num_classes)
    features: Tensor   # (B, feature_dim) — the FID features


def conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


class FeatureClassifier(nn.Module):
    kind = "classifier"

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = c = config
        w = c.width
        self.stages = nn.Sequential(conv_stage(c.in_channels, w), conv_stage(w, 2 * w), conv_stage(2 * w, 4 * w))
        side = c.image_size // 8                                   # three 2× max-pools, floor division
        self.features = nn.Sequential(nn.Flatten(), nn.Dropout(c.dropout), nn.Linear(4 * w * side * side, c.feature_dim), nn.ReLU())
        self.fc = nn.Linear(c.feature_dim, c.num_classes)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def config_dict(self) -> dict:
        return {"classifier": self.config.to_dict()}

    def forward(self, x: Tensor) -> ClassifierOutput:
        z = self.features(self.stages(x))      # (B, feature_dim)
        return ClassifierOutput(self.fc(z), z)

    @torch.no_grad()
    def predict(self, x: Tensor, t: int = 0, generator=None) -> Tensor:
        return self(x).logits.float().softmax(-1)


class ClassifierObjective(nn.Module):
    """Plain cross-entropy; same LossOutput fields as the diffusion objectives so one loop trains all."""

    def __init__(self, model: FeatureClassifier):
        super().__init__()
        self.model = model

    def forward(self, x0: Tensor, x_lab: Tensor, y: Tensor):
        logits = self.model(x_lab).logits.float()
        loss = F.cross_entropy(logits, y)
        zero = loss.new_zeros(())
        return LossOutput(loss, zero, loss.detach(), (logits.argmax(-1) == y).sum(), y.shape[0])
