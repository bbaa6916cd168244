"""The README's Python quick-start runs as written (on a generated photo.jpg)."""
import os
import re
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_quick_start(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    img = Image.new("RGB", (90, 120), (250, 250, 250))             # a light product-photo-like picture
    img.paste((60, 60, 60), (25, 10, 65, 110))                      # a dark, trouser-like bar
    img.save(tmp_path / "photo.jpg")
    os.symlink(ROOT / "checkpoints", tmp_path / "checkpoints")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() in {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                               "Shirt", "Sneaker", "Bag", "Ankle boot"}
    assert Image.open(tmp_path / "edited.png").size == (224, 224)
