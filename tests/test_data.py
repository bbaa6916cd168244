import gzip
import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from jdx import data
from jdx.data import DataError, image_to_input, prepare_image, restore_like


def write_idx(path, arr: np.ndarray):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_jdx_data(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setenv("JDX_DATA", str(tmp_path))
    d = data.load_fashion_mnist("test")
    assert d.images.shape == (4, 1, 28, 28) and d.images.dtype == torch.uint8 and len(d.class_names) == 10
    x = d.to_model()
    assert x.min() >= -1 and x.max() <= 1


def test_truncated_idx_is_reported(tmp_path):
    p = tmp_path / "x-idx3-ubyte.gz"
    header = struct.pack(">HBBIII", 0, 8, 3, 5, 28, 28)
    with gzip.open(p, "wb") as f:
        f.write(header + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(p)


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("JDX_DATA", str(tmp_path))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist()


@pytest.mark.skipif(not (data.DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    d = data.load_fashion_mnist("test")
    assert d.images.shape == (10000, 1, 28, 28) and torch.bincount(d.labels).tolist() == [1000] * 10


def _png(img: Image.Image, fmt="PNG", **kw) -> io.BytesIO:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    b.seek(0)
    return b


@pytest.mark.parametrize("make", [
    lambda: Image.new("L", (28, 28), 0),
    lambda: Image.new("RGB", (100, 40), (250, 250, 250)),                     # light, non-square
    lambda: Image.new("RGBA", (30, 30), (255, 0, 0, 0)),                      # transparent
    lambda: Image.new("P", (50, 50), 3),
    lambda: Image.fromarray((np.random.default_rng(0).random((31, 17)) * 65535).astype(np.uint16)),
    lambda: Image.fromarray(np.random.default_rng(1).random((20, 20)).astype(np.float32)),
])
def test_any_image_becomes_model_input(make):
    x = image_to_input(make())
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_formats(fmt):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    assert image_to_input(_png(img, fmt)).shape == (1, 1, 28, 28)


def test_fashion_mnist_image_is_unchanged():
    a = np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)
    a[0], a[-1], a[:, 0], a[:, -1] = 0, 0, 0, 0                            # dark border: no inversion
    assert torch.equal(prepare_image(Image.fromarray(a)).pixels[0], torch.from_numpy(a))


def test_light_background_is_inverted():
    img = Image.new("L", (28, 28), 255)
    img.paste(0, (10, 10, 18, 18))
    p = prepare_image(img)
    assert p.inverted and p.pixels[0, 0, 0] == 0 and p.pixels[0, 14, 14] == 255
    assert not prepare_image(img, auto_invert=False).inverted


def test_animated_gif_uses_first_frame():
    frames = [Image.new("L", (28, 28), v) for v in (10, 200)]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:])
    b.seek(0)
    assert prepare_image(b, auto_invert=False).pixels.float().mean().item() == pytest.approx(10, abs=2)


@pytest.mark.parametrize("payload,match", [
    (b"", "not a readable image"), (b"hello, not an image", "not a readable image"),
])
def test_bad_bytes(payload, match):
    with pytest.raises(DataError, match=match):
        image_to_input(io.BytesIO(payload))


def test_truncated_png():
    raw = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))).getvalue()
    with pytest.raises(DataError, match="truncated|not a readable"):
        image_to_input(io.BytesIO(raw[: len(raw) // 2]))


def test_tiny_and_huge(monkeypatch):
    with pytest.raises(DataError, match="too small"):
        image_to_input(Image.new("L", (1, 1)))
    monkeypatch.setattr(data, "MAX_PIXELS", 10_000)
    with pytest.raises(DataError, match="too large"):
        image_to_input(Image.new("L", (200, 200)))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16"])
def test_restore_like_keeps_size_and_mode(mode):
    base = Image.new("RGB", (45, 30), (240, 240, 240))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray(np.full((30, 45), 60000, np.uint16))
    p = prepare_image(img)
    out = restore_like(p.pixels.float() / 127.5 - 1, p)
    assert out.size == (45, 30) and out.mode == img.mode


def test_to_uint8_round_trip():
    u = torch.randint(0, 256, (2, 1, 5, 5), dtype=torch.uint8)
    assert np.array_equal(data.to_uint8(u.float() / 127.5 - 1), u.movedim(1, -1).numpy())


def test_restore_edit_carries_only_the_change_onto_a_photo():
    """An edit of a photo goes back as original + change: pixels the edit did not touch keep the photo's
    values (pasting the model's view put a contrast-normalised grey square over it), and for an input already
    like the training data it is the edited image itself."""
    from jdx.data import restore_edit
    rng = np.random.default_rng(0)
    photo = np.full((90, 120, 3), 200, np.uint8) + rng.integers(0, 30, (90, 120, 3), dtype=np.uint8)
    photo[20:75, 40:80] = (90, 60, 40)                                    # a dark object on a light, textured ground
    p = prepare_image(Image.fromarray(photo))
    x = p.pixels.float() / 127.5 - 1
    unchanged = np.asarray(restore_edit(x, x.clone(), p))
    assert unchanged.shape == photo.shape and np.array_equal(unchanged, photo)
    x_cf = x.clone()
    x_cf[:, 12:16, 12:16] = -1.0                                          # a black hole in the object, in the model view
    edited = np.asarray(restore_edit(x, x_cf, p)).astype(int)
    changed = np.abs(edited - photo).max(-1) > 0
    assert 0 < changed.mean() < 0.2                                       # only the patch's footprint moved
    small = Image.fromarray(rng.integers(0, 40, (28, 28), dtype=np.uint8))   # dark ground: like the data
    q = prepare_image(small)
    y = q.pixels.float() / 127.5 - 1
    y_cf = y.clone()
    y_cf[:, 5:9, 5:9] = 0.5
    assert np.array_equal(np.asarray(restore_edit(y, y_cf, q)), np.asarray(restore_like(y_cf, q)))


@pytest.mark.parametrize("colour", [(20, 20, 20), (40, 40, 40), (230, 230, 230)])
def test_a_transparent_background_is_background_for_dark_and_light_objects(colour):
    """A garment cut out on a transparent sheet: the model sees a bright garment on black whatever its colour
    (composited over black, a dark one vanished into a black picture)."""
    img = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    img.paste(Image.new("RGBA", (24, 36), (*colour, 255)), (18, 12))
    x = image_to_input(img)[0, 0]
    assert x[14, 14] > 0.5 and x[1, 1] < -0.9, (float(x[14, 14]), float(x[1, 1]))
    said = prepare_image(img).steps[0]                       # and the preparation says so
    assert said.startswith("transparent background filled with " + ("white" if colour[0] < 128 else "black"))
