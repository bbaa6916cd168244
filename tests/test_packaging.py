"""The wheel is complete (jdx.ui, jdx.mdm) and installs and runs outside the repo; its pins agree with
requirements.txt."""
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirement_map(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
        out[name.lower()] = line[len(name):].replace(" ", "")
    return out


def test_pyproject_pins_agree_with_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirement_map(project["dependencies"]) == _requirement_map((ROOT / "requirements.txt").read_text().splitlines())
    assert _requirement_map(project["dependencies"])["torch"].startswith("==")


def test_wheel_installs_and_runs_outside_the_repo(tmp_path):
    # Build from a copy: an in-tree build would leave build/ and jdx.egg-info/ in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(ROOT / "jdx", src / "jdx", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel offline here: {built.stderr.strip().splitlines()[-1:]}")
    wheel, = (tmp_path / "dist").glob("jdx-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    for package in ("jdx", "jdx/ui", "jdx/mdm"):
        assert (site / package / "__init__.py").is_file(), f"{package} missing from the wheel"
    # The installed copy, not the checkout: PYTHONPATH is only the install target, cwd is outside the repo.
    env = {**os.environ, "PYTHONPATH": str(site), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    cli = subprocess.run([sys.executable, str(site / "bin" / "jdx"), "--help"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert cli.returncode == 0 and "counterfactual" in cli.stdout, cli.stderr
    code = ("import jdx, jdx.mdm, jdx.ui.layout, pathlib; print(pathlib.Path(jdx.__file__).parent); "
            "print(pathlib.Path(jdx.ui.layout.__file__).parent)")
    app = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert app.returncode == 0, app.stderr
    assert app.stdout.split() == [str(site / "jdx"), str(site / "jdx" / "ui")]
