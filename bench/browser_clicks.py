"""What a person waits for after clicking a gallery example, in Chromium, against a launched `python app.py`:
the time until Predict's top class shows the new picture's class and until every Predict pane has settled
(no progress overlay left). Start the app first (`python app.py`, or set --url).

    python bench/browser_clicks.py [--url http://127.0.0.1:7860/] [--rounds 2]

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (never `playwright install`)."""
from __future__ import annotations

import argparse
import statistics
import time

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
# (gallery index, the class its picture shows): the examples are sorted by file name, three per class
CLICKS = ((24, "Bag"), (9, "Dress"), (21, "Sneaker"), (3, "Trouser"))
BUSY = "#predict-plots .progress-text, #predict-plots .eta-bar, #predict-plots .wrap.translucent"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860/")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    label, settled = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(args.url)
        expect(page.locator(".output-class").first).to_have_text("Sneaker", timeout=90_000)   # the opening example
        page.wait_for_function(f"() => !document.querySelector('{BUSY}')", timeout=90_000)
        thumbs = page.locator("#examples button.thumbnail-item")
        for _ in range(args.rounds):
            for k, name in CLICKS:
                t0 = time.perf_counter()
                thumbs.nth(k).click()
                expect(page.locator(".output-class").first).to_have_text(name, timeout=60_000)
                label.append(time.perf_counter() - t0)
                page.wait_for_function(f"() => !document.querySelector('{BUSY}')", timeout=60_000)
                settled.append(time.perf_counter() - t0)
        browser.close()
    print(f"\nA gallery click in Chromium (1400×1000), {len(label)} clicks\n")
    print("| until | median (s) | max (s) |\n|---|---:|---:|")
    print(f"| Predict's top class shows the new picture's | {statistics.median(label):.2f} | {max(label):.2f} |")
    print(f"| every Predict pane has settled | {statistics.median(settled):.2f} | {max(settled):.2f} |")


if __name__ == "__main__":
    main()
