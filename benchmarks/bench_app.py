"""Speed of the app as a user sees it: Step, Play and Reset in headless Chromium.

    .venv/bin/python benchmarks/bench_app.py                  # Idlib at its default scale
    .venv/bin/python benchmarks/bench_app.py --steps 5 SCENARIO
    .venv/bin/python benchmarks/bench_app.py --quick          # Idlib at 2% of households, 2 steps

Starts ``sim app`` on a free loopback port (the real command, in a subprocess), drives
the page in Debian's chromium through Playwright (headless, no GPU, a fresh profile,
every request off the machine refused) and measures:

* **step**: from the click on *Step* until the day counter shows the new day and both
  Vega views (map and charts) have applied that day's data: seconds per step (median
  and worst over ``--steps`` steps);
* **play**: days advanced per second of wall time while playing (``--play-seconds``);
* **reset**: from the click on *Reset* until the page shows day 0 of a new model and the
  map has been redrawn: seconds.

Prints a table against the targets (step <= 0.25 s, play >= 4 days/s, reset < 2 s) and
writes ``benchmarks/out/bench_app.json`` (or ``--out``). Targets are reported, never
asserted in tests; ``--quick`` (a small sample of the households, 2 steps, 3 seconds of
play) only shows that every part runs, and ``tests/test_benchmarks.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TARGETS = {"step_s": 0.25, "play_days_per_s": 4.0, "reset_s": 2.0}

#: Resolves when the page shows ``day`` in the header and both views re-rendered after ``since``.
DAY_DRAWN = """([day, since]) => {
  const head = document.querySelector('.sim-day');
  if (!head || !head.innerText.startsWith(`Day ${day} of`)) return false;
  const views = [...document.querySelectorAll('.sim-map .sim-vega, .sim-charts .sim-vega')];
  return views.length === 2 && views.every(v => Number(v.dataset.rendered || 0) > since);
}"""
MAP_TITLE = (
    "() => { const t = document.querySelector('.sim-map .map_header_marks text'); return t ? t.textContent : ''; }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sim app exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"sim app did not listen on {port} within {timeout:.0f} s")


def now_ms(page) -> float:
    return page.evaluate("() => Date.now()")


def measure(url: str, steps: int, play_seconds: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-app-chromium-") as profile, sync_playwright() as pw:
        # A fresh profile folder (Playwright passes it as --user-data-dir).
        browser = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1500, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.route(
                "**/*",
                lambda r: (
                    r.continue_() if r.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")) else r.abort()
                ),
            )
            t0 = time.perf_counter()
            page.goto(url, timeout=180_000)
            page.wait_for_function(DAY_DRAWN, arg=[0, 0], timeout=180_000)
            load_s = time.perf_counter() - t0
            step = page.get_by_role("button", name="Step")
            times = []
            for k in range(1, steps + 1):
                since = now_ms(page)
                t = time.perf_counter()
                step.click()
                page.wait_for_function(DAY_DRAWN, arg=[k, since], timeout=60_000, polling="raf")
                times.append(time.perf_counter() - t)
            title = page.evaluate(MAP_TITLE)

            day_before = steps
            page.get_by_role("button", name="▶").click()
            t = time.perf_counter()
            time.sleep(play_seconds)
            shown = int(page.locator(".sim-day").inner_text().split()[1])
            played = time.perf_counter() - t
            page.get_by_role("button", name="❚❚").click()
            page.get_by_role("button", name="Step").wait_for(state="visible")
            time.sleep(1.0)

            since = now_ms(page)
            t = time.perf_counter()
            page.get_by_role("button", name="Reset").click()
            page.wait_for_function(DAY_DRAWN, arg=[0, since], timeout=120_000, polling="raf")
            reset_s = time.perf_counter() - t
        finally:
            browser.close()
    return {
        "page_load_s": round(load_s, 2),
        "step_s_median": round(statistics.median(times), 3),
        "step_s_max": round(max(times), 3),
        "step_s_all": [round(v, 3) for v in times],
        "play_days_per_s": round((shown - day_before) / played, 2),
        "reset_s": round(reset_s, 2),
        "map_title_after_steps": title,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "idlib_2017_2018.yaml"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--play-seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="2%% of the households, 2 steps, 3 s of play")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_app.json")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    if args.quick:
        args.steps, args.play_seconds = 2, 3.0
        small = tempfile.NamedTemporaryFile("w", prefix="bench-app-", suffix=".yaml", delete=False)
        with small:
            small.write(f"extends: {Path(args.scenario).resolve()}\nhouseholds: {{sample_fraction: 0.02}}\n")
        args.scenario = small.name
    port = free_port()
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "PYTHONUNBUFFERED": "1"}
    log = tempfile.NamedTemporaryFile(prefix="bench-app-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "app", args.scenario, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        result = measure(f"http://127.0.0.1:{port}/", args.steps, args.play_seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if args.quick:
            os.unlink(args.scenario)
    result.update(
        scenario=str(args.scenario),
        quick=args.quick,
        machine=f"{platform.node()} ({os.cpu_count()} cores), load {os.getloadavg()[0]:.1f}",
        server_log=log.name,
    )
    rows = [
        (
            "step (click -> day drawn), median",
            f"{result['step_s_median']:.3f} s",
            f"<= {TARGETS['step_s']} s",
            result["step_s_median"] <= TARGETS["step_s"],
        ),
        ("step, worst", f"{result['step_s_max']:.3f} s", "", None),
        (
            "play",
            f"{result['play_days_per_s']:.2f} days/s",
            f">= {TARGETS['play_days_per_s']} days/s",
            result["play_days_per_s"] >= TARGETS["play_days_per_s"],
        ),
        (
            "reset (click -> day 0 drawn)",
            f"{result['reset_s']:.2f} s",
            f"< {TARGETS['reset_s']} s",
            result["reset_s"] < TARGETS["reset_s"],
        ),
        ("first page load", f"{result['page_load_s']:.2f} s", "", None),
    ]
    print(f"bench_app: {result['scenario']}  [{result['machine']}]")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("met" if ok else "NOT met")
        print(f"  {name:36s} {value:>14s}   {target:18s} {verdict}")
    print(f"  map title after the steps: {result['map_title_after_steps']!r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
