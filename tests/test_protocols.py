"""The declared interfaces: what each shipped model supports, one result type across the family."""
from pathlib import Path

import pytest
import torch

import jdx
from jdx.protocols import (Classifier, Denoiser, ImageClassifier, Likelihood, MultivariateDenoiser,
                           NoiseLevelClassifier, require, supports)
from jdx.results import JointOutput, LossOutput

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = (Denoiser, Classifier, ImageClassifier, Likelihood, MultivariateDenoiser, NoiseLevelClassifier)
EXPECTED = {
    "fmnist-joint": {Denoiser, Classifier, ImageClassifier},
    "fmnist-ddpm": {Denoiser},
    "fmnist-cdm": {Denoiser, Likelihood, NoiseLevelClassifier},
    "fmnist-classifier": {ImageClassifier},
    "fmnist-mdm-cld": {MultivariateDenoiser, Likelihood},
    "toy-moons": {Denoiser, Classifier, ImageClassifier},
    "toy-moons-cdm": {Denoiser, NoiseLevelClassifier},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_models_declare_what_they_can_do(name):
    model = jdx.load(ROOT / "checkpoints" / name)
    assert {p for p in PROTOCOLS if supports(model, p)} == EXPECTED[name]


def test_require_names_model_purpose_and_capability():
    ddpm = jdx.load(ROOT / "checkpoints" / "fmnist-ddpm")
    require(ddpm, Denoiser, "sampling")
    with pytest.raises(ValueError, match=r"counterfactual guidance needs a Classifier .*fmnist-ddpm \(ddpm\) is not one"):
        require(ddpm, Classifier, "counterfactual guidance")


def test_cdm_forward_returns_the_base_class_result():
    cdm = jdx.load(ROOT / "checkpoints" / "fmnist-cdm")
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 300])
    out = cdm(x, t)
    assert isinstance(out, JointOutput) and out.features == []
    torch.testing.assert_close(out.eps, cdm.eps(x, t))
    assert out.logits.shape == (2, cdm.schedule.T + 2)
    ddpm_out = jdx.load(ROOT / "checkpoints" / "fmnist-ddpm")(x, t)
    assert type(ddpm_out) is type(out)


def test_loss_output_has_one_home():
    from jdx import cdm, classifier, joint
    from jdx.mdm import model
    assert joint.LossOutput is cdm.LossOutput is classifier.LossOutput is model.LossOutput is LossOutput


def test_capabilities_held_by_submodules_count():
    """A DDPM's `schedule` and an MDM's `diffusion` live in nn.Module's _modules, where Python ≥ 3.12's
    isinstance on a runtime protocol (a static lookup) does not look: supports() must still see them."""
    import inspect
    ddpm, mdm = jdx.load(ROOT / "checkpoints/fmnist-ddpm"), jdx.load(ROOT / "checkpoints/fmnist-mdm-vpsde")
    for model, name in ((ddpm, "schedule"), (mdm, "diffusion")):
        with pytest.raises(AttributeError):
            inspect.getattr_static(model, name)
    assert supports(ddpm, Denoiser) and supports(mdm, MultivariateDenoiser) and not supports(ddpm, Classifier)
