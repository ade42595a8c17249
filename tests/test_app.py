"""The browser app (:mod:`sim.viz.app`): its model factory, its drawing, ``sim app``, and the page.

The fast tests check that the app's controls build exactly the model ``sim run`` builds
from the same file and ``--set`` overrides, and that drawing touches only the town
arrays. The browser test (``-m browser``) starts ``sim app`` on a free loopback port and
drives the page in Debian's headless chromium through Playwright, with every request
that leaves the machine blocked: the page must work offline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from mesa.discrete_space import Cell

import sim.viz.app as app
from sim.run.simulate import simulate
from sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
GRID_YAML = ROOT / "scenarios" / "synthetic_grid.yaml"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def fast_grid(tmp_path: Path) -> Path:
    """The synthetic grid as a scenario file, made small (about 2,300 agents, 30 days)."""
    path = tmp_path / "fast_grid.yaml"
    path.write_text(f"extends: {GRID_YAML}\nhouseholds: {{sample_fraction: 0.05}}\ndays: 30\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- model factory


def test_controls_build_the_model_sim_run_builds(fast_grid: Path, identical: Callable) -> None:
    """Controls -> ``--set`` overrides -> the same data, day by day, as ``sim run --set``."""
    model = app.AppModel(str(fast_grid), policy="random", rally=0.5, pretext_blame=0.4, seed="7")
    assert model.overrides == [
        "air_campaign.policy=random",
        "mechanisms.rally=0.5",
        "mechanisms.pretext_blame=0.4",
        "seed=7",
    ]
    model.run(3)
    run = simulate(load_scenario(fast_grid, model.overrides), days=3)
    assert run.seed == model.seed == 7
    identical(model.collector.frames(), run.frames)
    running, command = app.run_summary(model)
    assert "policy random · seed 7 · rally 0.5 · regime blame 1" in running
    assert command.startswith(f"same run: sim run {fast_grid} --set air_campaign.policy=random")
    assert "--set seed=7" in command
    model.release()


def test_defaults_are_the_scenario_file(fast_grid: Path) -> None:
    """Untouched controls add no overrides; the control defaults are the file's values."""
    model = app.AppModel(str(fast_grid))
    sc = load_scenario(fast_grid).scenario
    assert model.overrides == []
    assert model.seed == sc.seed
    assert model.scenario == sc
    params = app.model_params(sc, fast_grid)
    assert params["policy"]["value"] == sc.air_campaign.policy
    assert "calendar" not in params["policy"]["values"]  # no dated strikes in this file
    for name in ("rally", "regime_blame", "suppression", "pretext_blame", "exit"):
        assert params[name]["value"] == getattr(sc.mechanisms, name)
        assert params[name]["min"] <= params[name]["value"] <= params[name]["max"]
    assert params["pretext_blame"]["max"] == 1.0  # a share
    assert params["seed"]["value"] == str(sc.seed)
    # The same defaults re-create the same model (what Reset does with untouched controls).
    values = {k: v["value"] if isinstance(v, dict) else v for k, v in params.items()}
    again = app.AppModel(**values)
    assert again.overrides == [] and again.scenario == sc
    model.release()
    again.release()


def test_seed_box_text(fast_grid: Path) -> None:
    """Text that is not a seed falls back to the file's seed and says so."""
    sc = load_scenario(fast_grid).scenario
    assert app.parse_seed(" 42 ", sc.seed) == (42, "")
    assert app.parse_seed("", sc.seed) == (sc.seed, "")
    seed, notice = app.parse_seed("abc", sc.seed)
    assert seed == sc.seed and "not an integer" in notice
    seed, notice = app.parse_seed("-1", sc.seed)
    assert seed == sc.seed and "out of range" in notice
    assert app.control_overrides(sc, rally=0.1 + 0.2) == ["mechanisms.rally=0.3"]
    with pytest.raises(TypeError, match="unknown mechanism"):
        app.control_overrides(sc, rallye=1.0)


# --------------------------------------------------------------------------- drawing


@pytest.fixture
def no_cell_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if drawing touches grid cells' agent lists (each access copies a list in Mesa 3.3)."""

    def forbidden(self: Cell) -> None:
        raise AssertionError("drawing must read the town arrays, not the grid cells")

    monkeypatch.setattr(Cell, "agents", property(forbidden))
    monkeypatch.setattr(Cell, "is_empty", property(forbidden))


def test_drawing_reads_town_arrays_only(fast_grid: Path, no_cell_access: None) -> None:
    """Map in both colourings and the charts draw from arrays, strikes and displaced shown."""
    model = app.AppModel(str(fast_grid), policy="random")
    for mode in app.COLOUR_MODES:
        app.draw_town_map(model, mode)  # day 0: nothing collected yet
    app.draw_charts(model)
    model.run(6)
    assert model.collector.town["strikes"][:6].sum() > 0
    fig = app.draw_town_map(model, "resistance")
    ax = fig.axes[0]
    labels = {t.get_text() for t in ax.texts}
    assert set(model.town_state.names) <= {label.split(" (")[0] for label in labels}
    assert any("Day 6 of 30" in label for label in labels)
    assert app.draw_charts(model).axes
    model.release()


def test_map_uses_coordinates(tmp_path: Path) -> None:
    """Scenarios with latitude and longitude are drawn on a map, not grid cells."""
    path = tmp_path / "geo.yaml"
    path.write_text(
        "name: geo\nseed: 3\ndays: 5\nstart_date: 2018-01-01\n"
        "households: {sample_fraction: 0.05}\n"
        "towns:\n"
        "  - {name: Idlib, lat: 35.9306, lon: 36.6339, persons: 9000, stance: hts}\n"
        "  - {name: Kafranbel, lat: 35.6139, lon: 36.5653, persons: 3000, stance: resisting}\n"
        "  - {name: Dana, lat: 36.2144, lon: 36.7697, persons: 3000, stance: hts, border: true}\n",
        encoding="utf-8",
    )
    model = app.AppModel(str(path))
    assert app.day_label(model) == "Day 0 of 5 · starts 2018-01-01"
    model.run(2)
    assert app.day_label(model) == "Day 2 of 5 · 2018-01-02"
    ax = app.draw_town_map(model).axes[0]
    assert ax.get_xlabel() == "longitude"
    lo, hi = ax.get_xlim()
    assert lo < 36.5653 and hi > 36.7697
    x, y, aspect = app.town_positions(model)
    assert len(x) == 3
    np.testing.assert_allclose(y, [35.9306, 35.6139, 36.2144])
    assert aspect > 1.2  # one degree of longitude is shorter than one of latitude here
    model.release()


# --------------------------------------------------------------------------- command line


def test_sim_app_bad_scenario(run_cli: Callable, tmp_path: Path) -> None:
    """A bad scenario file gives one error line and exit status 2, no server."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntowns: []\n", encoding="utf-8")
    for args in ((bad,), (tmp_path / "missing.yaml",), (GRID_YAML, "--port", "70000")):
        result = run_cli("app", *args, timeout=60)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


# --------------------------------------------------------------------------- the page in a browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sim app exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"sim app did not listen on port {port} within {timeout:.0f} s")


@pytest.fixture
def app_server() -> Iterator[str]:
    """``sim app`` on a free loopback port (the real command, in a subprocess); its address.

    The server's output goes to ``test-artifacts/app-server.log``.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "app-server.log"
    port = _free_port()
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sim", "app", str(GRID_YAML), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, log, timeout=60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(errors="replace"), f"errors in {log}"


@pytest.fixture
def chromium_ready() -> None:
    """Skip without chromium or Playwright, except in CI where the test must run."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Python Playwright (pip install -e '.[test]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message + "; CI must run this test")
        pytest.skip(message)


def _day(text: str) -> int:
    """The day number in the map header ('Day 12 of 120 · ...')."""
    return int(text.split()[1])


def _wait_until(condition: Callable[[], bool], message: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.25)


@pytest.mark.browser
def test_app_in_browser(chromium_ready: None, app_server: str) -> None:
    """Load the page offline, step, recolour, play and pause, change the policy and reset."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = app_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            outside: list[str] = []

            def loopback_only(route) -> None:
                if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", loopback_only)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, timeout=60_000)
            map_img = page.locator(".sim-map img")
            chart_img = page.locator(".sim-charts img")
            day = page.locator(".sim-day")
            expect(map_img).to_be_visible(timeout=60_000)
            expect(chart_img).to_be_visible(timeout=60_000)
            expect(day).to_contain_text("Day 0 of 120")
            charts_at_start = chart_img.screenshot()

            step = page.get_by_role("button", name="Step")
            for k in (1, 2, 3):
                step.click()
                expect(day).to_contain_text(f"Day {k} of 120", timeout=20_000)
            expect(page.get_by_text("Step: 3")).to_be_visible()
            assert chart_img.screenshot() != charts_at_start, "charts did not change after 3 days"

            map_before = map_img.screenshot()
            page.get_by_role("button", name="resistance").click()
            expect(page.locator(".sim-colour-mode .v-btn--active")).to_have_text("resistance")
            _wait_until(lambda: map_img.screenshot() != map_before, "map did not recolour")

            page.get_by_role("button", name="▶").click()
            _wait_until(lambda: _day(day.inner_text()) >= 5, "play did not advance", 30)
            page.get_by_role("button", name="❚❚").click(timeout=10_000)
            expect(step).to_be_enabled(timeout=20_000)
            # The day being stepped when pause arrives still finishes and renders (a frame
            # takes a second or two on a busy machine): wait for 3 s without change.
            shown: list[int] = []

            def settled() -> bool:
                shown.append(_day(day.inner_text()))
                return len(shown) > 12 and len(set(shown[-13:])) == 1

            _wait_until(settled, "the day counter kept moving after pause", 30)
            assert 5 <= shown[-1] < 120, f"paused at day {shown[-1]}"
            time.sleep(2)
            assert _day(day.inner_text()) == shown[-1], "still running after pause"

            page.locator(".v-select").filter(has_text="Targeting policy").click()
            page.locator(".v-menu__content .v-list-item").filter(has_text="random").first.click()
            page.get_by_role("button", name="Reset").click()
            expect(day).to_contain_text("Day 0 of 120", timeout=30_000)
            info = page.locator(".sim-run-info")
            expect(info).to_contain_text("policy random")
            command = page.locator(".sim-run-command")
            expect(command).to_contain_text("--set air_campaign.policy=random")
            step.click()
            expect(day).to_contain_text("Day 1 of 120", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "app.png"))
            assert not outside, f"the page asked for outside addresses: {outside}"
            assert not errors, f"errors in the page: {errors}"
        finally:
            browser.close()
