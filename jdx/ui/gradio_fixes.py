"""A fix for Gradio 6's image cache under concurrent requests.

Gradio stores each output image at cache/<hash of its bytes>/image.<fmt> and writes it in place
(truncate, then write). Two requests that return the same picture at the same moment — a class of
students classifying the same example — write the same path, and a browser fetching it in between gets
an empty or short file ("peer closed connection … received 0 bytes", seen in tests/test_app.py). Writing
to a private temporary file and renaming it over the target makes every reader see a whole file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils


def save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)                    # atomic on POSIX: readers see the old or the new whole file
    return str(target)


def install() -> None:
    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically
