"""Screenshots of the plain TensorBoard on a logdir, as a browser shows it (docs/ pictures).

    python scripts/dashboard_screenshot.py http://localhost:6006 docs/

Needs Playwright (``pip install playwright``, not a torchgd dependency) and a Chromium
(``/usr/bin/chromium``, Debian's package ``chromium``). It opens the Time Series tab (the
default), the Custom Scalars tab and the HParams tab, waits until the charts are drawn, and
saves ``dashboard-<tab>.png``. The tests check the same dashboard through TensorBoard's own
HTTP API (tests/test_tensorboard.py); these pictures are what a person sees.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

TABS = {"timeseries": "#timeseries", "custom-scalars": "#custom_scalars", "hparams": "#hparams"}
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader"]  # fmt: skip


def main(base: str, out: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, anchor in TABS.items():
            page.goto(f"{base}/{anchor}")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(6000)  # the charts draw after the data arrives
            page.screenshot(path=str(Path(out) / f"dashboard-{name}.png"))
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
