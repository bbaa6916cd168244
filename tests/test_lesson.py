"""The guided lesson: seven steps, each with what to look for and a question; the live steps answer on a
tiny joint model."""
from __future__ import annotations


import numpy as np
import torch
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
    pic, said = lesson.lesson_guidance("tiny-joint", str(path), "")          # none picked: the runner-up
    assert said.startswith("No class picked: steering toward **") and "second choice" in said
    pic, said = lesson.lesson_guidance("tiny-joint", str(path), "square")
    assert "**square**" in said and pic.width > 2.5 * pic.height
    with pytest.raises(Exception, match="unknown class .cat.; classes: 0=hbar"):
        lesson.lesson_guidance("tiny-joint", str(path), "cat")
    pair, said = lesson.lesson_counterfactual("tiny-joint", str(path), 20)     # which side is which, in words
    assert said.startswith("**Left:** your picture; **right:** the edit.") and pair.shape[1] > 2 * pair.shape[0]


def test_the_example_picker_names_classes_not_files():
    names = ["T-shirt/top", "Trouser"]
    assert lesson.example_label("0-t-shirt-top-2.png", names) == "T-shirt/top 3"
    assert lesson.example_label("1-trouser-0.png", names) == "Trouser 1"
    assert lesson.example_label("drawing.png", names) == "drawing.png"


def test_the_guidance_step_warns_of_a_steered_model_only_when_the_steering_classifier_got_there():
    names = ["a", "b", "c"]
    to_b, to_a = torch.tensor([0.1, 0.8, 0.1]), torch.tensor([0.8, 0.19, 0.01])
    assert lesson.guidance_verdict(names, 1, to_b, to_b).endswith("— it agrees.")
    assert "this steered the model, not the picture" in lesson.guidance_verdict(names, 1, to_b, to_a)
    weak = lesson.guidance_verdict(names, 1, to_a, to_a)        # the walkthrough's case: 19 % for the target
    assert "did not get there: it still says **a** 80%" in weak and "steered the model" not in weak
    assert weak.endswith("it does not see b either.")
    assert lesson.guidance_verdict(names, 1, to_b) == "The classifier that steered it, on the guided result: **b** 80%."


def test_the_likelihood_step_scores_the_page_image_alone(tiny_joint, tmp_path, app_checkpoints):
    """Step 7 answers for the page's image (the one every other step shows) and says only the likelihood; its
    picker loads an example into that image instead of scoring a different picture of its own."""
    from pathlib import Path
    ck = Path(__file__).resolve().parents[1] / "checkpoints"
    app_checkpoints(**{"tiny-joint": tiny_joint, "fmnist-cdm": ck / "fmnist-cdm"})
    path = tmp_path / "blob.png"
    Image.fromarray(shape_image(0, np.random.default_rng(0))).save(path)
    fig, said = lesson.lesson_likelihood("tiny-joint", str(path))
    assert said.startswith("Your image: raw likelihood") and "bits/dim" in said and "True t" not in said
    assert fig is not None
    assert lesson.example_path("8-bag-0.png").endswith("8-bag-0.png")
    with pytest.raises(Exception, match="pick an example"):
        lesson.example_path("cat.png")
