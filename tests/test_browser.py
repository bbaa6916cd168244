"""The page in a real browser: Playwright drives Debian's chromium through every tab with the shipped
checkpoints, checks what appears, and saves screenshots (JDX_SCREENSHOTS=assets/screenshots refreshes the
README's pictures). Skips when chromium or Playwright is missing; .ci/run installs both."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def url():
    from jdx.ui.layout import build, launch
    demo = build("fmnist-joint")
    launch(demo, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def page(url, tmp_path_factory):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1700, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    out = Path(os.environ.get("JDX_SCREENSHOTS", "") or ROOT / ".pytest_cache" / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_predict_tab_upload(page):
    page.get_by_text("JDX — the Joint Diffusion eXplorer").first.wait_for()
    page.locator("#input-image input[type=file]").set_input_files(str(ROOT / "assets/examples/7-sneaker-0.png"))
    label = page.locator(".output-class").first          # gr.Label's headline: the top class
    sync_api.expect(label).to_have_text("Sneaker", timeout=60_000)
    # The attribution and robustness plots follow the label (matplotlib figures arrive as images).
    sync_api.expect(page.locator("#predict-plots img")).to_have_count(2, timeout=60_000)
    shot(page, "predict")


def test_denoise_tab_streams_and_scrubs(page):
    tab(page, "Denoise")
    page.locator("#denoise-btn").click()
    caption = page.locator("#denoise-caption")
    sync_api.expect(caption).to_contain_text("t = 0", timeout=90_000)
    # Scrub back to the first frame: the caption follows without recomputing.
    scrub = page.locator("#denoise-scrub input[type=number]")
    scrub.fill("0")
    scrub.press("Enter")
    sync_api.expect(caption).to_contain_text("frame 0 of", timeout=30_000)
    shot(page, "denoise")


def test_counterfactual_slider(page):
    tab(page, "Counterfactual")
    slider = page.locator("#cf-w8 input[type=range]")      # Bag
    slider.scroll_into_view_if_needed()                     # the mouse only reaches what is on screen
    box = slider.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()                                         # release → recompute
    summary = page.locator("#cf-summary")
    sync_api.expect(summary).to_contain_text("→", timeout=90_000)
    assert "Sneaker" in summary.inner_text() and "Bag" in summary.inner_text()
    shot(page, "counterfactual")


def test_gradients_and_learn_tabs(page):
    tab(page, "Gradients")
    page.locator("#gradients-btn").click()
    sync_api.expect(page.get_by_text("of the score").first).to_be_visible(timeout=60_000)
    shot(page, "gradients")
    tab(page, "Noise-level classifier")
    page.locator("#cdm-btn").click()
    sync_api.expect(page.locator("#cdm-summary")).to_contain_text("bits/dim", timeout=60_000)
    shot(page, "noise-level")
    tab(page, "Representations")
    page.locator("#rep-btn").click()
    sync_api.expect(page.locator("#rep-summary")).to_contain_text("nearest to yours", timeout=120_000)
    shot(page, "representations")
    tab(page, "Auxiliary variables")
    page.locator("#aux-btn").click()
    sync_api.expect(page.locator("#aux-summary")).to_contain_text("cld (K=2)", timeout=120_000)
    page.locator("#aux-image-btn").click()
    sync_api.expect(page.locator("#aux-image-summary")).to_contain_text("variables per pixel", timeout=120_000)
    sync_api.expect(page.locator("#aux-bpd")).to_contain_text("fmnist-mdm-cld")
    shot(page, "auxiliary")
    tab(page, "Learn")
    sync_api.expect(page.locator("#learn-forward img")).not_to_have_count(0, timeout=60_000)
    page.locator("#toy-reverse-btn").click()
    sync_api.expect(page.locator("#toy-moving img")).to_have_count(1, timeout=60_000)
    shot(page, "learn")
