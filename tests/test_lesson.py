"""The guided lesson: seven steps, each with what to look for and a question; the live steps answer on a
tiny joint model."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from tests.conftest import shape_image

pytest.importorskip("gradio")
from jdx.ui import lesson  # noqa: E402


def test_seven_steps_each_with_a_look_and_a_question():
    assert len(lesson.STEPS) == 7
    assert all(s.look and s.ask.endswith("?") for s in lesson.STEPS)


def test_live_steps_on_a_tiny_model(tiny_joint, tmp_path, app_checkpoints):
    app_checkpoints(**{"tiny-joint": tiny_joint})
    path = tmp_path / "vbar.png"
    Image.fromarray(shape_image(1, np.random.default_rng(0))).save(path)
    clean = np.asarray(lesson.lesson_forward("tiny-joint", str(path), 0))
    noisy = np.asarray(lesson.lesson_forward("tiny-joint", str(path), 40))
    half = clean.shape[1] // 2
    assert np.array_equal(clean[:, :half - 2], noisy[:, :half - 2])      # left: the image itself
    assert not np.array_equal(clean[:, half + 2:], noisy[:, half + 2:])  # right: noised to t
    for pic in (lesson.lesson_prediction("tiny-joint", str(path), 20), lesson.lesson_step("tiny-joint", str(path), 10)):
        assert pic.width > 2.5 * pic.height                            # three pictures side by side
    pic, said = lesson.lesson_guidance("tiny-joint", str(path), "square")
    assert "**square**" in said and pic.width > 2.5 * pic.height
    with pytest.raises(Exception, match="unknown class .cat.; classes: 0=hbar"):
        lesson.lesson_guidance("tiny-joint", str(path), "cat")
