import json
import shutil

import pytest
import torch

import jdx
from jdx import checkpoint
from jdx.checkpoint import CheckpointError
from jdx.diffusion import ScheduleConfig
from jdx.joint import HeadConfig, JointModel
from jdx.unet import UNetConfig

CFG = UNetConfig(image_size=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,))
DATA = {"name": "test", "image_size": 16, "channels": 1, "class_names": list("abc")}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = JointModel(CFG, ScheduleConfig(T=50), HeadConfig(num_classes=3)).eval()
    with torch.no_grad():                       # non-trivial BatchNorm statistics must survive too
        m.head.net[1].running_mean.normal_()
    return m, checkpoint.save(m, tmp_path / "m", DATA, {"command": "jdx train joint"}, {"test_accuracy": 0.5})


def test_round_trip_gives_identical_outputs(saved):
    m, stem = saved
    x, t = torch.randn(4, 1, 16, 16), torch.tensor([0, 3, 10, 49])
    for path in (stem, f"{stem}.json", f"{stem}.safetensors"):
        m2 = jdx.load(path)
        torch.testing.assert_close(m2(x, t).eps, m(x, t).eps, rtol=0, atol=0)
        torch.testing.assert_close(m2(x, t).logits, m(x, t).logits, rtol=0, atol=0)
    info = jdx.load(stem).info
    assert info.class_names == list("abc") and info.metrics["test_accuracy"] == 0.5
    assert info.training["command"] == "jdx train joint"


def test_fp16_weights_load_back_to_float32(tmp_path, saved):
    m, _ = saved
    stem = checkpoint.save(m, tmp_path / "half", DATA, dtype=torch.float16)
    m2 = jdx.load(stem)
    assert next(m2.parameters()).dtype == torch.float32
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([1, 2])
    torch.testing.assert_close(m2(x, t).eps, m(x, t).eps, atol=5e-2, rtol=5e-2)


def test_no_temp_files_left_behind(saved):
    _, stem = saved
    assert sorted(p.name for p in stem.parent.iterdir()) == ["m.json", "m.safetensors"]


def test_missing_files(tmp_path, saved):
    _, stem = saved
    with pytest.raises(CheckpointError, match="nope.json"):
        jdx.load(tmp_path / "nope")
    stem.with_suffix(".safetensors").unlink()
    with pytest.raises(CheckpointError, match="m.safetensors: weights file not found"):
        jdx.load(stem)


def test_truncated_weights(saved):
    _, stem = saved
    w = stem.with_suffix(".safetensors")
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        jdx.load(stem)
    with pytest.raises(CheckpointError, match="m.safetensors: not a readable"):
        jdx.load(stem, verify=False)


def test_corrupted_weights(saved):
    _, stem = saved
    w = stem.with_suffix(".safetensors")
    raw = bytearray(w.read_bytes())
    raw[-10] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        jdx.load(stem)


def test_corrupted_json(saved):
    _, stem = saved
    js = stem.with_suffix(".json")
    js.write_text(js.read_text()[:50])
    with pytest.raises(CheckpointError, match="m.json: not valid JSON"):
        jdx.load(stem)


def test_mismatched_architecture(tmp_path, saved):
    _, stem = saved
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["config"]["unet"]["base_channels"] = 16
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        jdx.load(stem)


def test_weights_from_another_checkpoint(tmp_path, saved):
    _, stem = saved
    other = checkpoint.save(JointModel(CFG, ScheduleConfig(T=50), HeadConfig(num_classes=3)), tmp_path / "o", DATA)
    shutil.copy(other.with_suffix(".safetensors"), stem.with_suffix(".safetensors"))
    with pytest.raises(CheckpointError, match="another checkpoint"):
        jdx.load(stem)


def test_update_metrics_keeps_weights_valid(saved):
    _, stem = saved
    checkpoint.update_metrics(stem, {"fid": 12.5})
    assert jdx.load(stem).info.metrics == {"test_accuracy": 0.5, "fid": 12.5}
