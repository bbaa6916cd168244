"""Data: Fashion-MNIST from idx files, a folder of class sub-folders, and any user image → model input.

Model inputs are float tensors (B, C, H, W) in [−1, 1] (x₀ = 2·pixel/255 − 1, as DDPM). Data sets are
held in memory as uint8 (60k Fashion-MNIST images are 47 MB), batches are cut on the training device.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_PIXELS = 40_000_000   # decoding a larger image would take seconds and gigabytes; refuse it clearly


class DataError(RuntimeError):
    """A data set or image that cannot be used, with a message saying why and what to do."""


@dataclass
class Dataset:
    images: Tensor            # (N, C, H, W) uint8
    labels: Tensor            # (N,) int64
    class_names: list[str]
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def to_model(self, index: Tensor | slice | None = None) -> Tensor:
        """uint8 images → float model input in [−1, 1]."""
        x = self.images if index is None else self.images[index]
        return x.float() / 127.5 - 1


# ---------- Fashion-MNIST ----------------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (gzip or plain): magic (0x00 0x00 type ndim), big-endian dims, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise DataError(f"{path}: not an unsigned-byte idx file (magic {raw[:4].hex()})")
        shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(shape)):
            raise DataError(f"{path}: truncated idx file ({data.size} values, header says {shape})")
        return data.reshape(shape)
    except (OSError, EOFError, struct.error) as e:
        raise DataError(f"{path}: cannot read idx file ({e})") from e


def fashion_mnist_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("JDX_DATA", "").split(os.pathsep) if p]
    return dirs + [DEBIAN_DIR]


def find_idx(stem: str) -> Path:
    for d in fashion_mnist_dirs():
        for name in (f"{stem}.gz", stem):
            if (d / name).is_file():
                return d / name
    searched = ", ".join(str(d) for d in fashion_mnist_dirs())
    raise DataError(
        f"Fashion-MNIST file {stem}.gz not found (looked in: {searched}).\n"
        "Install it with:  sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu; files go to "
        f"{DEBIAN_DIR})\nor put the four idx .gz files of Fashion-MNIST in a folder and set JDX_DATA to it.")


def load_fashion_mnist(split: str = "train") -> Dataset:
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(find_idx(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(f"{prefix}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
    return Dataset(torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64)),
                   list(FASHION_MNIST_CLASSES), "fashion-mnist")


# ---------- a folder of class sub-folders ----------------------------------------------------------------

def load_image_folder(root: str | Path, image_size: int = 28, channels: int = 1, split: str = "train",
                      test_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """root/<class name>/<image files>; classes sorted by name. A seeded split holds test_fraction out."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected one sub-folder of images per class)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class sub-folder(s); need at least 2")
    files, labels = [], []
    for k, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(k)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(test_fraction * len(files))))
    keep = order[:n_test] if split == "test" else order[n_test:]
    images = torch.stack([image_to_uint8(files[i], image_size, channels, auto_invert=False) for i in keep.tolist()])
    return Dataset(images, torch.tensor([labels[i] for i in keep.tolist()]), classes, f"folder:{root.name}")


def load_dataset(name: str, split: str = "train", image_size: int = 28, channels: int = 1) -> Dataset:
    """'fashion-mnist' or a folder path."""
    if name == "fashion-mnist":
        return load_fashion_mnist(split)
    return load_image_folder(name, image_size, channels, split)


# ---------- any user image ↔ model tensors --------------------------------------------------------------


def load_like(meta: dict, split: str, source: str | None = None) -> "Dataset":
    """A split of the data set described by a checkpoint's "data" block (or of `source` instead), at that
    checkpoint's image size and channels."""
    return load_dataset(source or meta.get("source", "fashion-mnist"), split, meta.get("image_size", 28),
                        meta.get("channels", 1))

def open_image(source) -> Image.Image:
    """Open a path, bytes-like or PIL image with a clear error for anything that is not a usable picture."""
    if isinstance(source, Image.Image):
        img = source
    else:
        try:
            img = Image.open(source)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{source}: not a readable image ({e.__class__.__name__}: {e})") from e
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise DataError(f"{getattr(img, 'filename', 'image')}: {w}×{h} pixels is too large (limit {MAX_PIXELS:,})")
    if w < 2 or h < 2:
        raise DataError(f"{getattr(img, 'filename', 'image')}: {w}×{h} pixels is too small to show anything")
    try:
        img.seek(0)       # animated GIF/WebP: the first frame
        img.load()
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{getattr(img, 'filename', 'image')}: truncated or corrupt image data ({e})") from e
    return img


def _alpha_background(rgba: Image.Image) -> int:
    """0 (black) or 255 (white): the level the visible pixels of an RGBA image stand out from."""
    a = np.asarray(rgba, dtype=np.float64)
    alpha = a[..., 3] / 255
    luma = (a[..., :3] @ [0.299, 0.587, 0.114] * alpha).sum() / max(alpha.sum(), 1e-9)
    return 0 if luma >= 128 else 255


def _transparent_background(img: Image.Image) -> int | None:
    """_alpha_background for an image with some transparent pixel; None for one without."""
    if img.mode not in ("RGBA", "LA", "PA") or img.getchannel("A").getextrema()[0] == 255:
        return None
    return _alpha_background(img.convert("RGBA"))


def _transparency_step(level: int | None) -> tuple[str, ...]:
    """The preparation step that says what became of transparent pixels (level: _transparent_background)."""
    if level is None:
        return ()
    return (f"transparent background filled with {'white' if level else 'black'} (the object is "
            f"{'dark' if level else 'light'})",)


def _to_8bit(img: Image.Image, level: int | None = None) -> Image.Image:
    """Palette, 16-bit and float images → 8-bit RGB or L; alpha composited over black or white, whichever the
    visible pixels stand out from (level: that choice, when the caller already made it)."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if img.mode != "F" else (a.min(), max(a.max(), a.min() + 1e-12))
        if img.mode == "I" and a.max() <= 255:
            hi = 255.0
        img = Image.fromarray(np.clip((a - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA"):
        # Transparent means "no object here": composite over whichever of black and white the visible pixels
        # stand out from, then the usual pipeline (inversion included) treats it as background. Over black
        # always, a dark object on a transparent sheet vanished into a black picture.
        rgba = img.convert("RGBA")
        level = _alpha_background(rgba) if level is None else level
        background = Image.new("RGBA", rgba.size, (level, level, level, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return img


class Prepared(NamedTuple):
    """A user image as the model sees it, plus what it takes to map an edit back onto the original."""
    pixels: Tensor             # (C, size, size) uint8, prepared as the training data are
    original: Image.Image      # the decoded image (first frame), in its own mode and size
    inverted: bool             # light background → inverted to match the data's dark background
    box: tuple[int, int, int, int]  # where the original (or its crop) sits in the padded square (l, t, r, b)
    crop: tuple[int, int, int, int] | None = None   # the object's box in the original, when cropped
    steps: tuple[str, ...] = ()                     # what was done, in words (the CLI's JSON, the app)
    stages: tuple = ()                              # ((caption, small PIL image), …) of the photo pipeline
    preprocess: str = "auto"

    def record(self) -> dict:
        """What was done, for a JSON line: {"preprocess", "inverted", "cropped", "steps"}."""
        return {"preprocess": self.preprocess, "inverted": self.inverted, "cropped": self.crop is not None,
                "steps": list(self.steps)}


PREPROCESS = ("auto", "invert", "none")   # invert: only the inversion of a light background (the old pipeline)


def prepare_image(source, image_size: int = 28, channels: int = 1, auto_invert: bool = True,
                  preprocess: str = "auto") -> Prepared:
    """Any image → (C, size, size) uint8, prepared as the training data are.

    preprocess="auto": an image already at the model's size is only inverted if its background is light
    (Fashion-MNIST shows bright objects on black); any other picture goes through the photo pipeline
    (jdx.photo: background from the border, invert if light, suppress background and shadow, crop to the
    object, pad to a square, resize). preprocess="invert": invert a light background, pad to a square with
    the border colour and resize. preprocess="none" (or auto_invert=False): pad and resize, nothing else.
    The result records every step.
    """
    if preprocess not in PREPROCESS:
        raise DataError(f"preprocess must be one of {', '.join(PREPROCESS)}, not {preprocess!r}")
    if not auto_invert:
        preprocess = "none"
    original = open_image(source)
    level = _transparent_background(original)          # computed once: the composite and the step use it
    img = _to_8bit(original, level)
    img = img.convert("L") if channels == 1 else img.convert("RGB")
    if preprocess == "auto" and img.size != (image_size, image_size):
        from .photo import fashion_mnist_view
        view = fashion_mnist_view(img)
        arr = np.asarray(view.image.resize((image_size, image_size), Image.Resampling.LANCZOS), dtype=np.uint8)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        steps = _transparency_step(level) + tuple(view.steps) + (f"resized to {image_size}×{image_size}",)
        stages = tuple(view.stages) + ((f"{image_size}×{image_size} input", Image.fromarray(
            arr[0] if channels == 1 else arr.transpose(1, 2, 0)).resize((96, 96), Image.Resampling.NEAREST)),)
        return Prepared(torch.from_numpy(arr.copy()), original, view.inverted, view.box, view.crop, steps, stages,
                        preprocess)
    a = np.asarray(img).reshape(img.height, img.width, -1)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])          # (n, C) border pixels
    inverted = bool(preprocess != "none" and border.mean() > 127)
    steps = list(_transparency_step(level))
    if inverted:
        img, border = ImageOps.invert(img), 255 - border
        steps.append("inverted (light background → dark, as in Fashion-MNIST)")
    w, h = img.size
    side = max(w, h)
    box = ((side - w) // 2, (side - h) // 2, (side - w) // 2 + w, (side - h) // 2 + h)
    if w != h:
        fill = tuple(int(v) for v in np.median(border, axis=0))
        square = Image.new(img.mode, (side, side), fill[0] if channels == 1 else fill)
        square.paste(img, box[:2])
        img = square
        steps.append(f"padded to a {side}×{side} square with the border colour")
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
        steps.append(f"resized to {image_size}×{image_size}")
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return Prepared(torch.from_numpy(arr.copy()), original, inverted, box, None, tuple(steps), (), preprocess)


def image_to_uint8(source, image_size: int = 28, channels: int = 1, auto_invert: bool = True,
                   preprocess: str = "auto") -> Tensor:
    return prepare_image(source, image_size, channels, auto_invert, preprocess).pixels


def restore_like(x: Tensor, prepared: Prepared) -> Image.Image:
    """A model-space image (C, size, size) → the original's size and mode (undo pad, resize and inversion)."""
    img = to_pil(x)
    if prepared.crop is not None:          # the model saw a crop: paste the edit back where the object was
        l, t, r, b = prepared.crop
        side = max(r - l, b - t)
        patch = img.resize((side, side), Image.Resampling.BICUBIC).crop(prepared.box)
        base = _to_8bit(prepared.original).convert(img.mode)
        if prepared.inverted:
            base = ImageOps.invert(base)
        base.paste(patch, (l, t))
        img = base
    else:
        side = max(prepared.original.size)
        img = img.resize((side, side), Image.Resampling.BICUBIC).crop(prepared.box)
    if prepared.inverted:
        img = ImageOps.invert(img)
    return _in_mode(img, prepared.original)


def restore_edit(x: Tensor, x_cf: Tensor, prepared: Prepared) -> Image.Image:
    """The edit x → x_cf carried onto the original: original + (restore(x_cf) − restore(x)), in the original's
    size and mode. Pasting restore(x_cf) itself put the model's view of a photo (cropped, contrast-normalised,
    a grey square) over the photo; the difference leaves every pixel the edit did not touch as it was. For
    an input already like the training data restore(x) is the original, so this equals restore_like(x_cf)."""
    delta = (np.asarray(restore_like(x_cf, prepared).convert("L"), np.int16)
             - np.asarray(restore_like(x, prepared).convert("L"), np.int16))
    base = _to_8bit(prepared.original)
    base = base.convert("L" if base.mode in ("L", "LA", "I", "I;16", "1") else "RGB")
    a = np.asarray(base, np.int16)
    out = np.clip(a + (delta if a.ndim == 2 else delta[..., None]), 0, 255).astype(np.uint8)
    return _in_mode(Image.fromarray(out), prepared.original)


def _in_mode(img: Image.Image, original: Image.Image) -> Image.Image:
    """An 8-bit L/RGB picture in the original's mode (its alpha channel, 16-bit depth, palette)."""
    mode = original.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in original.info):
        alpha = original.convert("RGBA").getchannel("A")
        img = img.convert("RGBA" if mode != "LA" else "LA")
        img.putalpha(alpha)
        return img.convert(mode) if mode in ("RGBA", "LA") else img
    if mode.startswith("I;16") or mode == "I":
        img16 = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)   # 8 → 16 bit: ×257
        return img16 if mode.startswith("I;16") else img16.convert("I")
    return img.convert(mode) if mode in ("L", "RGB", "P", "CMYK", "1") else img.convert("RGB")


def image_to_input(source, image_size: int = 28, channels: int = 1, auto_invert: bool = True,
                   preprocess: str = "auto") -> Tensor:
    """Any image → model input (1, C, size, size) in [−1, 1], normalised exactly as training data."""
    return image_to_uint8(source, image_size, channels, auto_invert, preprocess)[None].float() / 127.5 - 1


def to_uint8(x: Tensor) -> np.ndarray:
    """Model tensor(s) in [−1, 1], (C, H, W) or (B, C, H, W) → uint8 (H, W, C) or (B, H, W, C)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def to_pil(x: Tensor, scale: int = 1) -> Image.Image:
    """(C, H, W) model tensor → PIL image, enlarged with nearest neighbour (crisp pixels)."""
    a = to_uint8(x)
    img = Image.fromarray(a[..., 0], "L") if a.shape[-1] == 1 else Image.fromarray(a, "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img
