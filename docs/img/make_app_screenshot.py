"""Regenerate the README's app screenshot docs/img/app.png (about a minute).

    .venv/bin/python docs/img/make_app_screenshot.py                  # the synthetic grid, as in the README
    .venv/bin/python docs/img/make_app_screenshot.py SCENARIO --days 85 --out app_idlib.png

Serves ``sim app SCENARIO`` on a free loopback port, steps it ``--days`` days in Debian's
headless chromium (Playwright), hovers the largest town to show its tooltip and saves a
screenshot of the page.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMG = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "synthetic_grid.yaml"))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", default="app.png")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "app", args.scenario, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("sim app did not start")
            time.sleep(0.3)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=ARGS, headless=True, viewport={"width": 1500, "height": 1760}
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            page.wait_for_selector(".sim-charts svg", timeout=180_000)
            step = page.get_by_role("button", name="Step")
            for k in range(1, args.days + 1):
                step.click()
                page.wait_for_function(f"() => document.querySelector('.sim-day').innerText.startsWith('Day {k} of')")
            time.sleep(1.5)
            towns = page.locator(".sim-map .town_markers_marks path")
            boxes = [b for i in range(towns.count()) if (b := towns.nth(i).bounding_box())]
            big = max(boxes, key=lambda b: b["width"] * b["height"])  # the largest town's tooltip
            page.mouse.move(big["x"] + big["width"] / 2, big["y"] + big["height"] / 2)
            time.sleep(0.8)
            page.screenshot(path=str(IMG / args.out))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"{IMG / args.out}: {(IMG / args.out).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
