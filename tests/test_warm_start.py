"""Warm starts (--init) between model kinds, and --stop-at turns, on tiny models."""
import pytest
import torch

import jdx
from jdx.cli import main
from jdx.train import TrainConfig, build_model, init_weights
from conftest import TINY


def tiny_mdm(diffusion: str, seed: int):
    torch.manual_seed(seed)
    cfg = TrainConfig(kind="mdm", diffusion=diffusion, image_size=16, base_channels=8, channel_mult=(1, 2),
                      num_res_blocks=1, attention_levels=(), dropout=0.0)
    return build_model(cfg, 3)


@pytest.mark.parametrize("target", ["learned", "cld", "malda"])
def test_mdm_from_vpsde_copies_the_network_and_the_data_channels(target):
    source, fresh = tiny_mdm("vpsde", 0), tiny_mdm(target, 1)
    weights = init_weights(source, fresh, "vpsde")
    fresh_sd, source_sd = fresh.state_dict(), source.state_dict()
    assert set(weights) == set(fresh_sd)
    K = fresh.diffusion.K
    copied = 0
    for k, v in weights.items():
        if k.startswith("diffusion."):
            assert torch.equal(v, fresh_sd[k]), k                   # the asked diffusion keeps its own init
        elif k.endswith("conv_in.weight"):
            assert v.shape[1] == K
            assert torch.equal(v[:, :1], source_sd[k]) and torch.equal(v[:, 1:], fresh_sd[k][:, 1:])
        elif k.startswith("net.unet.out.2."):
            assert torch.equal(v[:1], source_sd[k]) and torch.equal(v[1:], fresh_sd[k][1:])
        else:
            assert torch.equal(v, source_sd[k]), k
            copied += 1
    assert copied > 0.9 * len([k for k in weights if k.startswith("net.")])
    fresh.load_state_dict(weights)                                  # loads strictly


def test_mdm_of_the_same_diffusion_is_copied_whole_and_a_ddpm_is_refused():
    a, b = tiny_mdm("learned", 0), tiny_mdm("learned", 1)
    weights = init_weights(a, b, "a")
    assert all(torch.equal(weights[k], v) for k, v in a.state_dict().items())
    ddpm = build_model(TrainConfig(kind="ddpm", image_size=16, base_channels=8, channel_mult=(1, 2),
                                   num_res_blocks=1, attention_levels=()), 3)
    with pytest.raises(ValueError, match="architecture differs"):
        init_weights(ddpm, b, "ddpm")


def test_warm_started_mdm_and_cdm_record_what_they_started_from(tmp_path, shapes_dir):
    net = ["--attention-levels=", "--dropout", "0"]
    mdm = TINY[:8] + net + ["--batch-size", "8", "--eval-n", "8", "--quiet", "--steps", "1"]
    vpsde = tmp_path / "vpsde"
    assert main(["train", "mdm", "--diffusion", "vpsde", "--data", str(shapes_dir), "--out", str(vpsde)] + mdm) == 0
    learned = tmp_path / "learned"
    assert main(["train", "mdm", "--diffusion", "learned", "--data", str(shapes_dir), "--out", str(learned),
                 "--init", str(vpsde)] + mdm) == 0
    first = jdx.load(learned).info.training["history"][0]
    assert first["init"] == str(vpsde) and first["init_kind"] == "mdm"
    assert first["init_config"]["diffusion"]["name"] == "vpsde" and first["init_steps"] == 1
    assert first["init_training"][0].startswith("jdx train mdm --diffusion vpsde")

    ddpm, cdm = tmp_path / "ddpm", tmp_path / "cdm"
    assert main(["train", "ddpm", "--data", str(shapes_dir), "--out", str(ddpm), "--steps", "1"] + TINY) == 0
    assert main(["train", "cdm", "--data", str(shapes_dir), "--out", str(cdm), "--steps", "1", "--init", str(ddpm)]
                + TINY) == 0
    first = jdx.load(cdm).info.training["history"][0]
    assert first["init"] == str(ddpm) and first["init_kind"] == "ddpm" and "unet" in first["init_config"]


def test_stop_at_pauses_with_the_schedule_of_steps(tmp_path, shapes_dir):
    out = tmp_path / "p"
    args = ["train", "ddpm", "--data", str(shapes_dir), "--out", str(out), "--steps", "5"] + TINY
    assert main(args + ["--stop-at", "2"]) == 0
    t = jdx.load(out).info.training
    assert t["steps"] == 2 and t["config"]["steps"] == 5
    assert main(args + ["--resume", "--stop-at", "4"]) == 0 and jdx.load(out).info.training["steps"] == 4
    assert main(args + ["--resume"]) == 0 and jdx.load(out).info.training["steps"] == 5
