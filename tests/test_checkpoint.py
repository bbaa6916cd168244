import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import jdx
from jdx import checkpoint
from jdx.checkpoint import CheckpointError
from jdx.cli import main
from jdx.diffusion import ScheduleConfig
from jdx.joint import HeadConfig, JointModel
from jdx.unet import UNetConfig


CFG = UNetConfig(image_size=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,))
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "assets" / "examples" / "3-dress-1.png"
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


def test_interrupted_save_keeps_a_loadable_pair(saved, monkeypatch):
    """The kill between replacing the weights and replacing the JSON, staged: the new weights load (with the
    config they carry) and the warning says what happened; the next save heals the pair."""
    m, stem = saved
    with torch.no_grad():
        m.head.net[-1].bias.add_(1.0)
    monkeypatch.setattr(checkpoint, "write_json", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(m, stem, DATA, {"command": "jdx train joint", "steps": 2})
    monkeypatch.undo()
    assert json.loads(stem.with_suffix(".json").read_text())["training"]["command"] == "jdx train joint"
    with pytest.warns(UserWarning, match="interrupted save"):
        m2 = jdx.load(stem)
    assert m2.info.training["steps"] == 2
    torch.testing.assert_close(m2.head.net[-1].bias, m.head.net[-1].bias, rtol=0, atol=0)
    checkpoint.save(m, stem, DATA, {"steps": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jdx.load(stem).info.training["steps"] == 3


def _legacy_pair(tmp_path, m) -> "Path":
    """A checkpoint as the first format wrote it: plain safetensors, the hash only in the JSON."""
    stem = checkpoint.save(m, tmp_path / "legacy", DATA)
    meta = json.loads(stem.with_suffix(".json").read_text())
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(stem.with_suffix(".safetensors")),
              metadata={"format": checkpoint.FORMAT, "kind": m.kind})
    meta["weights"]["sha256"] = checkpoint.sha256(stem.with_suffix(".safetensors"))
    stem.with_suffix(".json").write_text(json.dumps(meta))
    return stem


def test_json_without_sha256_is_an_explicit_choice(tmp_path, saved):
    m, _ = saved
    stem = _legacy_pair(tmp_path, m)
    jdx.load(stem)                                                  # the old format still loads, verified
    meta = json.loads(stem.with_suffix(".json").read_text())
    del meta["weights"]["sha256"]
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"no weights.sha256.*verify=False.*--no-verify"):
        jdx.load(stem)
    assert jdx.load(stem, verify=False).kind == "joint"
    assert main(["predict", str(stem), "--no-verify", str(EXAMPLE)]) == 0
    assert main(["predict", str(stem), str(EXAMPLE)]) == 2
    # weights written by this version check themselves: a JSON without the file hash still loads verified
    _, new = saved
    meta = json.loads(new.with_suffix(".json").read_text())
    del meta["weights"]["sha256"]
    new.with_suffix(".json").write_text(json.dumps(meta))
    assert jdx.load(new).kind == "joint"


def test_mismatch_names_the_tensor_and_both_shapes(saved):
    _, stem = saved
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["config"]["head"]["num_classes"] = 4
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"head\.net\.6\.weight: \(3, \d+\) in the weights, \(4, \d+\) in the model"):
        jdx.load(stem, verify=False)


@pytest.mark.parametrize("key,value,message", [
    (("schedule", "T"), 0, "schedule.T = 0: must be a whole number ≥ 1"),
    (("unet", "base_channels"), -8, "unet.base_channels = -8"),
    (("unet", "channel_mult"), [], "unet.channel_mult"),
    (("head", "dropout"), 1.5, r"head.dropout = 1.5: must be in \[0, 1\)"),
    (("schedule", "beta_end"), 2.0, "schedule.beta_end"),
])
def test_invalid_config_is_rejected_at_load(saved, key, value, message, capsys):
    _, stem = saved
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["config"][key[0]][key[1]] = value
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        jdx.load(stem, verify=False)
    assert main(["predict", str(stem), "--no-verify", str(EXAMPLE)]) == 2
    assert "invalid model config" in capsys.readouterr().err


# A zygote: one Python that has imported torch and jdx and run one warm-up training (10 s on a busy machine:
# torch, the optimizer's lazy import of torch._dynamo, first-call kernels) forks each training run, so that
# twenty `jdx train` runs fit in a test. Each child is `jdx.cli.main(["train", …])`, exactly what
# `python3 -m jdx train …` runs; the zygote SIGKILLs it at a random moment and reports back.
ZYGOTE = r"""
import os, random, signal, sys, time
import torch
from jdx.cli import main
torch.set_num_threads(1)
js, argv, rng = sys.argv[1], sys.argv[2:], random.Random(0)
warm = list(argv)
warm[warm.index("--out") + 1] += "-warm-up"
warm[warm.index("--steps") + 1] = "1"
stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
main(warm)                      # what every child would do first; forked children inherit it warm
sys.stdout = stdout
for line in sys.stdin:
    resume = ["--resume"] if line.strip() == "resume" else []
    start = time.time()
    pid = os.fork()
    if pid == 0:
        sys.stdout = sys.stderr = open(os.devnull, "w")
        os._exit(main(argv + resume))
    # wait for this run's first save (start-up is not what is under test), then kill at a random moment
    while time.time() - start < 60 and not (os.path.exists(js) and os.path.getmtime(js) >= start):
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.4))          # 3–8 save cycles of this model: any phase of a save
    if line.strip() == "resume" and rng.random() < 0.5:
        # aim at the riskiest moment: right after the weights file is replaced (the JSON is written next)
        w, seen = js[:-5] + ".safetensors", os.path.getmtime(js[:-5] + ".safetensors")
        while time.time() - start < 60 and os.path.getmtime(w) == seen:
            pass
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    print("killed" if os.WIFSIGNALED(status) else f"exited {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def test_training_killed_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path, shapes_dir):
    """≥ 20 SIGKILLs at random moments of a `jdx train` that saves every step; after each, the checkpoint loads
    (and its step count never goes back)."""
    import subprocess
    import sys
    out = tmp_path / "k"
    # The smallest joint model (8×8 images, one level, 4 channels, batch 2, fp32): a step and a save take
    # ~50 ms, so the kills fall in many different saves; what is under test is the save, not the model.
    argv = ["train", "joint", "--data", str(shapes_dir), "--out", str(out), "--steps", "100000", "--save-every-s",
            "0", "--eval-every", "100000", "--image-size", "8", "--base-channels", "4", "--channel-mult", "1",
            "--num-res-blocks", "1", "--attention-levels", "", "--T", "50", "--batch-size", "2", "--eval-n", "4",
            "--no-amp", "--quiet", "--threads", "1"]
    # --threads 1: `jdx train` picks its threads from the load average, so on an idle machine the warm-up ran
    # two OpenMP threads, and a child forked from a process with a live OpenMP team hangs in its first conv
    # (libgomp does not survive fork). The test only passed while the machine was busy.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(out.with_suffix(".json")), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path)
    kills, loads, interrupted, steps = 0, 0, 0, 0
    try:
        while kills < 20:
            state = out.with_suffix(".train-state.pt").is_file()
            zygote.stdin.write("resume\n" if state else "fresh\n")
            zygote.stdin.flush()
            assert zygote.stdout.readline().strip() == "killed"
            kills += 1
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = jdx.load(out)
            interrupted += any("interrupted save" in str(w.message) for w in caught)
            assert model.info.training["steps"] >= steps
            steps = model.info.training["steps"]
            loads += 1
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    print(f"{kills} kills, {loads} loads, {interrupted} between the weights and the JSON, last step {steps}")
    assert loads == 20 and steps >= 10


def test_class_index_one_lookup_for_names_indices_and_prefixes():
    names = ["T-shirt/top", "Trouser", "Sneaker", "Sandal"]
    assert [checkpoint.class_index(v, names) for v in ("2", 3, "sneaker", "SNEAK", "T-shirt/top", "tr")] == [2, 3, 2, 2, 0, 1]
    for bad, message in (("4", "out of range"), ("-1", "out of range"), ("s", "unknown class"), ("", "unknown class"),
                         ("Banana", "0=T-shirt/top, 1=Trouser")):
        with pytest.raises(ValueError, match=message):
            checkpoint.class_index(bad, names)
