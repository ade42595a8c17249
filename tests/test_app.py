"""The browser app (:mod:`sim.viz.app`): its model factory, its drawing, ``sim app``, and the page.

The fast tests check that the app's controls build exactly the model ``sim run`` builds
from the same file and ``--set`` overrides, and that drawing touches only the town
arrays. The browser test (``-m browser``) starts ``sim app`` on a free loopback port and
drives the page in Debian's headless chromium through Playwright, with every request
that leaves the machine blocked: the page must work offline.
"""

from __future__ import annotations

import datetime as dt
import json
import math
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
from sim.viz import maps

ROOT = Path(__file__).resolve().parents[1]
GRID_YAML = ROOT / "scenarios" / "synthetic_grid.yaml"
# The shipped, calibrated file: its many-digit mechanism values are off the sliders' 0.05 grid, which the
# browser test must cover (a slider snapping to its grid once sent 1.2 for a calibrated 1.18056).
IDLIB_YAML = ROOT / "scenarios" / "idlib_2017_2018.yaml"
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
    # regime blame was not touched: the line shows the file's value (the schema default), not a set one
    untouched = load_scenario(fast_grid).scenario.mechanisms.regime_blame
    assert f"policy random · seed 7 · rally 0.5 · regime blame {untouched:g}" in running
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
    """Map and chart data come from arrays; strikes, displaced and the day are in them."""
    from sim.viz.vega import chart_data, map_data

    model = app.AppModel(str(fast_grid), policy="random")
    for mode in app.COLOUR_MODES:
        _, layout = app.map_view(model, mode)
        map_data(model, layout, app.COLOUR_MODES[mode][0], app.map_title(model))  # day 0: nothing collected yet
    assert chart_data(model) == {"series": [], "now": []}
    model.run(6)
    assert model.collector.town["strikes"][:6].sum() > 0
    data = map_data(model, layout, "resist_share", app.map_title(model))
    assert [t["town"] for t in data["towns"]] == list(model.town_state.names)
    assert data["strikes"], "strikes of the past week are marked"
    assert data["header"] == [{"title": f"{model.scenario.name}: Day 6 of 30 · no start date"}]
    struck = model.collector.town["strikes"][:6].sum(axis=0)
    assert [t["strikes_cum"] for t in data["towns"]] == struck.astype(int).tolist()
    np.testing.assert_allclose([t["value"] for t in data["towns"]], model.town_state.resist_share, atol=1e-4)
    series = chart_data(model)["series"]
    assert [r["day"] for r in series] == [1, 2, 3, 4, 5, 6]
    assert "date" not in series[0]  # no calendar: days on the x axis
    model.release()


def _geo_scenario(tmp_path: Path) -> Path:
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
    return path


def test_charts_use_dates_and_agree_with_the_header(tmp_path: Path) -> None:
    """A calendar scenario's charts have a date axis; the last point is the header's date."""
    from sim.viz.vega import chart_data

    model = app.AppModel(str(_geo_scenario(tmp_path)))
    spec = app.charts_view(model)
    panels = [p for row in spec["vconcat"] for p in row["hconcat"]]
    assert len(panels) == 4
    for panel in panels:
        for layer in panel["layer"]:
            x = layer["encoding"]["x"]
            assert x["field"] == "date" and x["type"] == "temporal"
            assert x["scale"]["domain"] == ["2018-01-01", "2018-01-05"]
    model.run(2)
    data = chart_data(model)
    assert [r["date"] for r in data["series"]] == ["2018-01-01", "2018-01-02"]
    assert data["now"][0]["date"] == "2018-01-02"
    assert app.day_label(model).endswith("2018-01-02")
    model.release()


def _cmap_scale(mode: str) -> dict:
    from sim.viz.style import colour_map
    from sim.viz.vega import cmap_scale

    return cmap_scale(colour_map(app.COLOUR_MODES[mode][0]))


def test_map_uses_coordinates_and_the_outline(tmp_path: Path) -> None:
    """Scenarios in the Idlib area are drawn at their coordinates over the bundled outline."""
    from sim.scenario.basemap import load_basemap

    model = app.AppModel(str(_geo_scenario(tmp_path)))
    assert app.day_label(model) == "Day 0 of 5 · starts 2018-01-01"
    model.run(2)
    assert app.day_label(model) == "Day 2 of 5 · 2018-01-02"
    x, y, geo = maps.town_positions(model.scenario)
    assert geo and len(x) == 3
    np.testing.assert_allclose(y, [35.9306, 35.6139, 36.2144])
    spec_json, layout = app.map_view(model, "cooperation")
    layers = {layer["name"]: layer for layer in json.loads(spec_json)["layer"]}
    border = layers["border"]["data"]["values"][0]["geometry"]["coordinates"]
    assert len(border) == len(load_basemap().border)
    assert {f["properties"]["name"] for f in layers["roads"]["data"]["values"]} == {"M5", "M4"}
    # A km east-west is as long on the page as a km north-south (the frame corrects for latitude).
    u, v = layout.frame.project(np.array([36.6, 36.7]), np.array([35.9, 36.0]))
    assert (u[1] - u[0]) / (v[1] - v[0]) == pytest.approx(np.cos(np.radians(np.mean(y))))
    assert layers["town_markers"]["encoding"]["color"]["scale"] == _cmap_scale("cooperation")
    model.release()


def test_one_colour_map_for_cooperation() -> None:
    """The app colours cooperation and resistance with the figures' colour maps (sim.viz.style)."""
    from sim.viz.style import COOPERATION_CMAP, RESISTANCE_CMAP, colour_map

    assert colour_map(app.COLOUR_MODES["cooperation"][0]) is COOPERATION_CMAP
    assert colour_map(app.COLOUR_MODES["resistance"][0]) is RESISTANCE_CMAP
    scale = _cmap_scale("cooperation")
    assert scale["range"][0] == "#0072b2" and scale["range"][-1] == "#d55e00"


def test_one_glyph_per_meaning(fast_grid: Path) -> None:
    """The X marks towns taken by the regime, nothing else; strikes are a burst with a legend of their own."""
    from sim.viz import vega
    from sim.viz.style import STRIKE_COLOUR

    model = app.AppModel(str(fast_grid))
    spec, _ = app.map_view(model, "cooperation")
    layers = {layer["name"]: layer for layer in json.loads(spec)["layer"]}
    towns = layers["town_markers"]["encoding"]["shape"]
    strikes = layers["strike_marks"]["encoding"]["shape"]
    glyphs = dict(zip(towns["scale"]["domain"], towns["scale"]["range"], strict=True))
    assert glyphs["regime"] == vega.X_PATH and maps.CONTROLLER_LABELS["regime"] == "taken by the regime"
    assert strikes["scale"]["range"] == [vega.BURST_PATH] and vega.BURST_PATH not in glyphs.values()
    assert "shape" not in layers["strike_marks"]["mark"]
    assert strikes["legend"]["title"] == "air strikes" and strikes["scale"]["domain"] == [vega.STRIKE_LABEL]
    assert layers["strike_marks"]["encoding"]["color"]["value"] == STRIKE_COLOUR
    assert json.loads(spec)["resolve"]["scale"]["shape"] == "independent", "two legends, not one merged scale"
    model.release()


def test_towns_marked_by_controller(fast_grid: Path) -> None:
    """The map marks each town by the model's controller when it has one, else by the front."""
    from sim.viz import vega

    model = app.AppModel(str(fast_grid))
    _, layout = app.map_view(model, "cooperation")
    # On a grid the towns sit on their model cells (maps.town_positions, shared with the figures).
    x, y, geo = maps.town_positions(model.scenario)
    assert not geo and np.array_equal(np.column_stack([x, y]), np.array(model.geo.cells, dtype=float))
    ts = model.town_state
    had = model.controller_names, ts.controller
    # The model's own controller (sim.model.control) sets each town's mark and tooltip.
    real = vega.town_controllers(model)
    assert real is not None and set(real) <= set(model.controller_names)
    towns = vega.map_data(model, layout, "coop_share", "")["towns"]
    front = np.asarray(vega.FRONT_STATUS, dtype=object)[np.asarray(ts.front, dtype=int)]
    assert [t["kind"] for t in towns] == maps.controller_kinds(front, real).tolist()
    # A constructed holder per town: HTS, a rival group, contested, the regime in turn.
    names = ["hts", "Ahrar al-Sham", "contested", "regime"]
    codes = np.arange(ts.n) % 4
    model.state.controller_names, ts.controller = names, codes
    try:
        towns = vega.map_data(model, layout, "coop_share", "")["towns"]
        for t, code, front in zip(towns, codes, np.asarray(ts.front), strict=True):
            expected = "regime" if front == 2 else ["hts", "rival", "contested", "regime"][code]
            assert t["kind"] == expected, t["town"]
            if expected == "rival":
                assert t["holder"] == "Ahrar al-Sham"
    finally:
        model.state.controller_names, ts.controller = had
    model.release()


def test_download_is_the_run_tables(fast_grid: Path) -> None:
    """The download is the collector's tables written by the store's Parquet writer."""
    import io
    import zipfile

    import pandas as pd

    model = app.AppModel(str(fast_grid), seed="5")
    model.run(3)
    blob = app.run_tables_zip(model)
    assert blob == app.run_tables_zip(model), "the same run gives the same bytes"
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == ["events.parquet", "timeseries.parquet", "towns.parquet"]
        frames = {n.removesuffix(".parquet"): pd.read_parquet(io.BytesIO(zf.read(n))) for n in zf.namelist()}
    run = simulate(load_scenario(fast_grid, ["seed=5", "days=3"]))
    for name, df in run.frames.items():
        pd.testing.assert_frame_equal(frames[name], df.reset_index(drop=True))
    assert app.download_name(model) == "synthetic_grid_seed5_3days_tables.zip"
    model.release()


def _vuetify_slider_value(value: float, control: dict) -> float:
    """What the page's slider (Vuetify 2 ``v-slider``, under ``solara.SliderFloat``) sends back for
    ``value`` when it mounts: ``roundValue`` of Vuetify's VSlider, written out here from its source."""
    step, low, high = control["step"], control["min"], control["max"]
    decimals = len(str(step).partition(".")[2])
    offset = low % step
    snapped = math.floor((value - offset) / step + 0.5) * step + offset  # Math.round
    return float(f"{min(snapped, high):.{decimals}f}")  # parseFloat(... .toFixed(decimals))


def test_page_controls_run_the_shipped_calibrated_file(tmp_path: Path) -> None:
    """The shipped, calibrated Idlib file: controls as the page sends them on Reset, with only the
    policy changed, build the model ``sim run FILE --set air_campaign.policy=random`` builds.

    The page's sliders round the file's many-digit values (1.18056) to their 0.05 grid (1.2) and
    send that back on loading; an untouched slider must still mean the file's value.
    """
    import io
    import zipfile

    import pandas as pd

    path = tmp_path / "idlib_small.yaml"
    path.write_text(f"extends: {IDLIB_YAML}\nhouseholds: {{sample_fraction: 0.02}}\n", encoding="utf-8")
    sc = load_scenario(path).scenario
    params = app.model_params(sc, path)
    controls = {k: v["value"] if isinstance(v, dict) else v for k, v in params.items()}
    sent = {name: _vuetify_slider_value(controls[name], params[name]) for name in app.MECHANISM_CONTROLS}
    moved_by_page = [n for n in sent if sent[n] != getattr(sc.mechanisms, n)]
    assert moved_by_page, "the calibrated file has mechanism values off the sliders' grid"
    model = app.AppModel(**{**controls, **sent, "policy": "random"})
    assert model.overrides == ["air_campaign.policy=random"]
    assert model.scenario.mechanisms == sc.mechanisms
    model.run(2)
    with zipfile.ZipFile(io.BytesIO(app.run_tables_zip(model))) as zf:
        frames = {n.removesuffix(".parquet"): pd.read_parquet(io.BytesIO(zf.read(n))) for n in zf.namelist()}
    run = simulate(load_scenario(path, ["air_campaign.policy=random", "days=2"]))
    assert sorted(frames) == sorted(run.frames)
    for name, df in run.frames.items():
        pd.testing.assert_frame_equal(frames[name], df.reset_index(drop=True), check_exact=True, obj=name)
    model.release()
    # A slider moved one step off its position is an override, at the value it shows.
    name = moved_by_page[0]
    step = params[name]["step"] if sent[name] + params[name]["step"] <= params[name]["max"] else -params[name]["step"]
    moved = round(sent[name] + step, 9)
    assert app.control_overrides(sc, **{name: moved}) == [f"mechanisms.{name}={moved!r}"]


def test_observed_fills_in_by_window(tmp_path: Path) -> None:
    """Recorded figures appear once the run has passed their window, computed by sim.analysis.observed."""
    from sim.analysis.observed import figure_value

    path = tmp_path / "obs.yaml"
    path.write_text(
        f"extends: {_geo_scenario(tmp_path)}\n"
        "observed:\n  replicates: 1\n  figures:\n"
        "    - {name: early, kind: displacements, start: {date: 2018-01-01}, end: {date: 2018-01-02}, value: 100,"
        " source: test}\n"
        "    - {name: late, kind: displacements, start: {date: 2018-01-01}, end: {date: 2018-01-04}, value: 100,"
        " source: test}\n",
        encoding="utf-8",
    )
    model = app.AppModel(str(path))
    assert app.observed_so_far(model) == (None, 2)
    model.run(1)
    assert app.observed_so_far(model)[0] is None, "2 Jan, the window's last day, is not simulated yet"
    model.run(1)
    table, total = app.observed_so_far(model)
    assert total == 2 and table["figure"].tolist() == ["early"]
    fig = model.scenario.observed.figures[0]
    assert table["simulated"].iloc[0] == figure_value(fig, model.scenario, model.collector.frames())
    assert "1 more recorded figure" in app.observed_markdown(table, total)
    model.run(2)
    assert app.observed_so_far(model)[0]["figure"].tolist() == ["early", "late"]  # 4 Jan simulated
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
def browser_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Idlib scenario (calendar, coordinates, the outline) at a small scale for the browser test."""
    path = tmp_path_factory.mktemp("browser") / "idlib_small.yaml"
    path.write_text(f"extends: {IDLIB_YAML}\nhouseholds: {{sample_fraction: 0.02}}\n", encoding="utf-8")
    return path


@pytest.fixture
def app_server(browser_scenario: Path) -> Iterator[str]:
    """``sim app`` on a free loopback port (the real command, in a subprocess); its address.

    The server's output goes to ``test-artifacts/app-server.log``.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "app-server.log"
    port = _free_port()
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sim", "app", str(browser_scenario), "--port", str(port)]
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
    """The day number in the map header ('Day 12 of 181 · ...')."""
    return int(text.split()[1])


def _wait_until(condition: Callable[[], bool], message: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.25)


def _map_title(page) -> str:
    """The header drawn inside the map's SVG."""
    return page.evaluate(
        "() => { const t = document.querySelector('.sim-map .map_header_marks text'); return t ? t.textContent : ''; }"
    )


def _chart_axis_labels(page) -> list[str]:
    return page.locator(".sim-charts svg .role-axis-label text").all_text_contents()


@pytest.mark.browser
def test_app_in_browser(
    chromium_ready: None, app_server: str, browser_scenario: Path, run_cli: Callable, tmp_path: Path
) -> None:
    """Load the page offline; the map shows the outline and the charts dates; step, recolour,
    play and pause, hover a town, change the policy and reset, and download the tables."""
    import io
    import zipfile

    import pandas as pd
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = app_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
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
            map_svg = page.locator(".sim-map svg")
            chart_svg = page.locator(".sim-charts svg")
            day = page.locator(".sim-day")
            expect(map_svg).to_be_visible(timeout=60_000)
            expect(chart_svg).to_be_visible(timeout=60_000)
            expect(day).to_contain_text("Day 0 of 181")
            # Mesa's page tabs and thread / render-interval controls are gone.
            expect(page.get_by_text("Page 0", exact=True)).to_have_count(0)
            expect(page.get_by_text("Use Threads")).to_have_count(0)
            expect(page.get_by_text("Render Interval")).to_have_count(0)
            # The map uses the page's width (the main column less padding).
            main_width = page.locator(".sim-main").bounding_box()["width"]
            assert map_svg.bounding_box()["width"] > 0.9 * main_width

            step = page.get_by_role("button", name="Step")
            for k in (1, 2, 3):
                step.click()
                expect(day).to_contain_text(f"Day {k} of 181", timeout=20_000)
                _wait_until(lambda k=k: f"Day {k} of 181" in _map_title(page), f"map did not draw day {k}")
                assert _map_title(page).endswith(f"2017-11-0{k}"), "the map shows the header's date"
            # Mesa's leftover "Information / Step: N" card is gone: the header says the day.
            expect(page.get_by_text("Step: 3")).to_have_count(0)
            expect(page.get_by_text("Information", exact=True)).to_have_count(0)
            expect(day).to_contain_text("2017-11-03")
            # Dates on the chart axes (the scenario starts on 1 Nov 2017 and runs to 28 Feb 2018).
            labels = _chart_axis_labels(page)
            assert {"1 Dec 2017", "1 Jan 2018", "1 Feb 2018"} <= set(labels), labels
            assert "date" in page.locator(".sim-charts svg .role-axis-title text").all_text_contents()
            # The map draws the bundled outline: the Turkish border, the governorate, M5 and M4.
            border = page.locator(".sim-map svg .border_marks path")
            expect(border).to_have_count(1)
            assert len(border.get_attribute("d")) > 200, "the border is a line of many vertices"
            expect(page.locator(".sim-map svg .roads_marks path")).to_have_count(2)
            expect(page.locator(".sim-map svg .governorate_marks path")).to_have_count(1)

            page.get_by_role("button", name="resistance").click()
            expect(page.locator(".sim-colour-mode .v-btn--active")).to_have_text("resistance")
            _wait_until(
                lambda: (
                    "share resisting HTS" in page.evaluate("() => document.querySelector('.sim-map svg').textContent")
                ),
                "map did not recolour",
            )

            page.get_by_role("button", name="▶").click()
            _wait_until(lambda: _day(day.inner_text()) >= 8, "play did not advance", 30)
            page.get_by_role("button", name="❚❚").click(timeout=10_000)
            expect(step).to_be_enabled(timeout=20_000)
            shown: list[int] = []

            def settled() -> bool:
                shown.append(_day(day.inner_text()))
                return len(shown) > 8 and len(set(shown[-9:])) == 1

            _wait_until(settled, "the day counter kept moving after pause", 30)
            assert 8 <= shown[-1] < 181, f"paused at day {shown[-1]}"
            # day k is 1 Nov 2017 + (k - 1) days (a slow machine may pause past November)
            paused = dt.date(2017, 11, 1) + dt.timedelta(days=shown[-1] - 1)
            assert _map_title(page).endswith(f"{paused:%Y-%m-%d}"), "play redraws the map"

            # Hovering a town shows its numbers on that day.
            page.locator(".sim-map .town_markers_marks path").first.hover(force=True)
            tooltip = page.locator("#vg-tooltip-element")
            expect(tooltip).to_contain_text("persons present", timeout=10_000)
            expect(tooltip).to_contain_text("strikes so far")

            page.locator(".v-select").filter(has_text="Targeting policy").click()
            page.locator(".v-menu__content .v-list-item").filter(has_text="random").first.click()
            page.get_by_role("button", name="Reset").click()
            expect(day).to_contain_text("Day 0 of 181", timeout=30_000)
            info = page.locator(".sim-run-info")
            expect(info).to_contain_text("policy random")
            command = page.locator(".sim-run-command")
            expect(command).to_contain_text("--set air_campaign.policy=random")
            assert "mechanisms." not in command.inner_text(), "untouched sliders are no override"
            for k in (1, 2):
                step.click()
                expect(day).to_contain_text(f"Day {k} of 181", timeout=20_000)
            _wait_until(lambda: "Day 2 of 181" in _map_title(page), "map did not draw day 2")
            page.screenshot(path=str(ARTIFACTS / "app.png"))

            with page.expect_download(timeout=60_000) as info_download:
                page.get_by_role("button", name="Download tables (Parquet)").click()
            blob = Path(info_download.value.path()).read_bytes()
            assert not outside, f"the page asked for outside addresses: {outside}"
            assert not errors, f"errors in the page: {errors}"
        finally:
            browser.close()

    # The download equals `sim run`'s tables for the same settings and days.
    result = run_cli(
        "run",
        browser_scenario,
        "--set",
        "air_campaign.policy=random",
        "--days",
        "2",
        "--out",
        tmp_path / "out",
        "--run-id",
        "same",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "out" / "idlib_2017_2018" / "same"
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == ["events.parquet", "timeseries.parquet", "towns.parquet"]
        for name in zf.namelist():
            downloaded = pd.read_parquet(io.BytesIO(zf.read(name)))
            pd.testing.assert_frame_equal(downloaded, pd.read_parquet(folder / name), obj=name)
