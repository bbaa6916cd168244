"""'This is not like my training data': an out-of-distribution score for every prediction.

Raw likelihood fails as an OOD score (Nalisnick et al. 2019): simple images — constant, smooth shapes —
get *higher* likelihood than the training data, because likelihood is dominated by how compressible an
image is. The input-complexity correction (Serrà et al., ICLR 2020) subtracts a general-purpose
compressor's code length:  S(x) = bits/dim under the model − bits/dim of PNG(x);  a training-like image is
one the model compresses much better than PNG does. Further candidates measured here: the joint model's
denoising error from a middle noise level (an image the model knows is reconstructed well), the
disagreement of its classifier across noise levels, and the Mahalanobis distance of the classifier's
pooled features to the nearest class (Lee et al., NeurIPS 2018) — the winner on every generated set. Each is standardised by its mean and spread on
training images; the OOD score is a fixed combination of them (chosen and measured in
assets/results/ood/, see `OOD_COMPONENTS`), and the threshold is a percentile of the training scores.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from .cdm import dequantize
from .data import to_uint8

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_DIR = ROOT / "assets" / "results" / "ood"


# ---------- the components, each (N,) for images x (N, C, H, W) in [−1, 1] --------------------------------

def png_bits_per_dim(x: Tensor) -> Tensor:
    """Code length of each image as an optimised 8-bit PNG, in bits per sub-pixel (Serrà et al.'s L(x))."""
    a = to_uint8(x)                                  # (N, H, W, C)
    out = []
    for img in a:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG", optimize=True)
        out.append(8 * len(buf.getvalue()) / img.size)
    return torch.tensor(out)


@torch.no_grad()
def cdm_bits_per_dim(cdm: nn.Module, x: Tensor, seed: int = 0) -> Tensor:
    """−log₂ p(x) / d from one CDM pass (Thm 3.2) on the uniformly dequantised image."""
    g = torch.Generator().manual_seed(seed)
    device = next(cdm.parameters()).device
    return cdm.bits_per_dim(dequantize(x.cpu(), g).to(device)).float().cpu()


@torch.no_grad()
def denoising_error(model: nn.Module, x: Tensor, frac: float = 0.2, draws: int = 2, seed: int = 0) -> Tensor:
    """Mean squared error of x̂₀ from x_t at t = frac·T, per image, averaged over `draws` noise draws."""
    g = torch.Generator().manual_seed(seed)
    t = max(1, int(round(frac * model.schedule.T)))
    err = torch.zeros(len(x))
    for _ in range(draws):
        eps = torch.randn(x.shape, generator=g).to(x.device)
        x_t = model.schedule.noise_to(x, t, eps)
        x0_hat = model.schedule.x0_from_eps(x_t, t, model.eps(x_t, t).float())
        err += (x0_hat - x).pow(2).flatten(1).mean(1).cpu()
    return err / draws


@torch.no_grad()
def level_disagreement(model: nn.Module, x: Tensor, fracs=(0.1, 0.2, 0.3), seed: int = 0) -> Tensor:
    """Mean total-variation distance between p(y | x) and p(y | x_t, t) over a few noise levels: the joint
    classifier's beliefs about a familiar image survive a little noise."""
    g = torch.Generator().manual_seed(seed)
    p0 = model.classify(x, 0).float().softmax(-1)
    tv = torch.zeros(len(x), device=x.device)
    for f in fracs:
        t = max(1, int(round(f * model.schedule.T)))
        x_t = model.schedule.noise_to(x, t, torch.randn(x.shape, generator=g).to(x.device))
        tv += 0.5 * (model.classify(x_t, t).float().softmax(-1) - p0).abs().sum(1)
    return (tv / len(fracs)).cpu()


@torch.no_grad()
def pooled_features(model: nn.Module, x: Tensor) -> Tensor:
    """The joint classifier's input at t = 0: pooled encoder + bottleneck features, (N, F)."""
    return model.features(x, 0).float()


class FeatureGaussians(NamedTuple):
    """Class-conditional Gaussians with a shared covariance over the joint model's pooled features
    (Lee et al., NeurIPS 2018): the distance of an image's features to the nearest class mean, in units
    of the training features' own spread, says whether the classifier has seen anything like it."""
    means: Tensor        # (K, F) per-class mean of training features
    precision: Tensor    # (F, F) inverse of the shared covariance (ridge-regularised)

    @classmethod
    def fit(cls, features: Tensor, labels: Tensor, num_classes: int, ridge: float = 1e-3) -> "FeatureGaussians":
        f = features.double()
        means = torch.stack([f[labels == k].mean(0) for k in range(num_classes)])
        r = f - means[labels]
        cov = r.T @ r / len(f)
        cov += torch.eye(len(cov), dtype=cov.dtype) * ridge * cov.trace() / len(cov)
        return cls(means.float(), torch.linalg.inv(cov).float())

    def distance(self, features: Tensor) -> Tensor:
        """min_k (z − μ_k)ᵀ Σ⁻¹ (z − μ_k) per row of features (N, F)."""
        d = features.float().cpu()[:, None, :] - self.means[None]                 # (N, K, F)
        return torch.einsum("nkf,fg,nkg->nk", d, self.precision, d).amin(1)

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"means": self.means.contiguous(), "precision": self.precision.contiguous()}, str(path))

    @classmethod
    def load(cls, path: Path) -> "FeatureGaussians":
        from safetensors.torch import load_file
        t = load_file(str(path))
        return cls(t["means"], t["precision"])


class Components(NamedTuple):
    cdm_bpd: Tensor          # raw likelihood, bits/dim (lower = more typical: the score that fails)
    png_bpd: Tensor          # PNG code length, bits/dim
    complexity: Tensor       # cdm_bpd − png_bpd (Serrà et al.)
    denoise_error: Tensor    # x̂₀ MSE from t = 0.2 T (joint model)
    disagreement: Tensor     # classifier total variation across noise levels
    feature_distance: Tensor  # Mahalanobis distance of the classifier's features (NaN without fitted Gaussians)


def components(model: nn.Module, cdm: nn.Module | None, x: Tensor, seed: int = 0, batch: int = 200,
               gaussians: FeatureGaussians | None = None, only: tuple[str, ...] | None = None,
               features: Tensor | None = None) -> Components:
    """Every candidate, (N,) each; a candidate that is not in `only`, or lacks its model (no CDM, no fitted
    Gaussians), is NaN. features: x's pooled features (N, F) when the caller already has them (the app's
    prediction reads them in its classifier pass), so the encoder does not run twice."""
    want = set(only or Components._fields)
    parts = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(next(model.parameters()).device)
        nan = torch.full((len(xb),), float("nan"))
        bpd = cdm_bits_per_dim(cdm, xb, seed) if cdm is not None and want & {"cdm_bpd", "complexity"} else nan
        png = png_bits_per_dim(xb) if want & {"png_bpd", "complexity"} else nan
        err = denoising_error(model, xb, seed=seed) if "denoise_error" in want else nan
        tv = level_disagreement(model, xb, seed=seed) if "disagreement" in want else nan
        dist = nan
        if gaussians is not None and "feature_distance" in want:
            dist = gaussians.distance(pooled_features(model, xb) if features is None else features[i:i + batch])
        parts.append((bpd, png, bpd - png, err, tv, dist))
    return Components(*(torch.cat(p) for p in zip(*parts)))


# ---------- the detector: standardised components, combined, thresholded ----------------------------------

# Which components enter the score, and with which sign (+1: larger = less like the training data).
# Measured in assets/results/ood/auroc-fmnist-joint.md: the feature distance alone wins.
OOD_COMPONENTS = {"feature_distance": 1.0}


@dataclass
class Calibration:
    """Mean and spread of each component on training images, the combination, and the threshold."""
    checkpoint: str
    cdm: str | None
    mean: dict[str, float]
    std: dict[str, float]
    weights: dict[str, float] = field(default_factory=lambda: dict(OOD_COMPONENTS))
    threshold: float = 0.0          # OOD score above this → not like the training data
    percentile: float = 95.0        # of the training images' scores
    train_images: int = 0
    features: str | None = None     # FeatureGaussians safetensors (relative to the repository or absolute)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        return cls(**json.loads(Path(path).read_text()))


def standardised(c: Components, cal: Calibration) -> dict[str, Tensor]:
    return {k: (getattr(c, k) - cal.mean[k]) / cal.std[k] for k in cal.weights}


def combine(c: Components, cal: Calibration) -> Tensor:
    """The OOD score: the largest weighted, standardised component (an input is flagged when any one test
    says it is unusual)."""
    z = standardised(c, cal)
    return torch.stack([w * z[k] for k, w in cal.weights.items()]).amax(0)


def calibrate(model: nn.Module, cdm: nn.Module | None, x_train: Tensor, checkpoint: str, cdm_name: str | None,
              weights: dict[str, float] | None = None, percentile: float = 95.0, seed: int = 0,
              gaussians: FeatureGaussians | None = None, features: str | None = None) -> Calibration:
    """Standardise every component on x_train and put the threshold at its `percentile` of the combined
    score. Fit `gaussians` on *other* training images than x_train, or the threshold comes out too low."""
    c = components(model, cdm, x_train, seed, gaussians=gaussians)
    names = [k for k in Components._fields if torch.isfinite(getattr(c, k)).all()]
    cal = Calibration(checkpoint, cdm_name, {k: float(getattr(c, k).mean()) for k in names},
                      {k: float(getattr(c, k).std()) or 1.0 for k in names}, dict(weights or OOD_COMPONENTS),
                      percentile=percentile, train_images=len(x_train), features=features)
    cal.threshold = float(np.percentile(combine(c, cal).numpy(), percentile))
    return cal


def calibration_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's calibration is looked for: NAME.ood.json beside it, else
    assets/results/ood/calibration-NAME.json (the shipped checkpoints' files are never touched)."""
    from .checkpoint import stem_of
    stem = stem_of(checkpoint)
    beside = stem.parent / f"{stem.name}.ood.json"
    return beside if beside.is_file() else CALIBRATION_DIR / f"calibration-{stem.name}.json"


class OODResult(NamedTuple):
    score: Tensor            # (N,) higher = less like the training data
    in_distribution: Tensor  # (N,) bool: score ≤ threshold
    components: Components
    threshold: float


class Detector:
    """A calibrated OOD score for one joint checkpoint (and the CDM its calibration names)."""

    def __init__(self, model: nn.Module, cal: Calibration, cdm: nn.Module | None = None,
                 gaussians: FeatureGaussians | None = None):
        self.model, self.cal, self.cdm, self.gaussians = model, cal, cdm, gaussians

    @classmethod
    def for_model(cls, model: nn.Module, checkpoint: str | Path, path: Path | None = None) -> "Detector | None":
        """The detector calibrated for `checkpoint`, or None if it has no calibration file."""
        path = Path(path) if path else calibration_path(checkpoint)
        if not path.is_file():
            return None
        cal = Calibration.load(path)
        cdm = None
        if cal.cdm:
            from .checkpoint import load
            cdm_path = Path(cal.cdm) if Path(cal.cdm).is_absolute() else ROOT / cal.cdm
            cdm = load(cdm_path, next(model.parameters()).device).eval()
        gaussians = None
        if cal.features:
            f = Path(cal.features)
            gaussians = FeatureGaussians.load(f if f.is_absolute() else ROOT / f)
        return cls(model, cal, cdm, gaussians)

    def __call__(self, x: Tensor, seed: int = 0, every: bool = False, features: Tensor | None = None) -> OODResult:
        """The score of x (N, C, H, W), computing only the components the score uses (every prediction of the
        app and the CLI pays for this); every=True computes the other candidates too, to compare them.
        features: x's pooled features, where the caller already computed them (see `components`)."""
        only = None if every else tuple(self.cal.weights)
        c = components(self.model, self.cdm, x, seed, gaussians=self.gaussians, only=only, features=features)
        s = combine(c, self.cal)
        return OODResult(s, s <= self.cal.threshold, c, self.cal.threshold)


def calibration_for_cdm(cdm_name: str) -> Calibration | None:
    """A shipped calibration that uses this CDM (for the training images' statistics of its bits/dim and
    of the complexity-corrected score), or None."""
    for path in sorted(CALIBRATION_DIR.glob("calibration-*.json")):
        try:
            cal = Calibration.load(path)
        except (OSError, ValueError, TypeError):
            continue
        if cal.cdm and Path(cal.cdm).name == cdm_name:
            return cal
    return None
