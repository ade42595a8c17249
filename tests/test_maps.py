"""The bundled geography (:mod:`sim.scenario.basemap`) and what the maps draw from it.

The outline is hand-digitised, so the tests hold it to what it claims: the roads pass
through the towns they connect, the governorate holds the governorate's towns, the
source is written in the file, and a broken file names the key at fault. The map tests
draw a constructed town table with a controller column and check the marker of every
town, and that the front areas follow the front status.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.markers import MarkerStyle
from matplotlib.path import Path as MplPath

from sim.analysis import results
from sim.run.simulate import simulate
from sim.scenario import basemap
from sim.scenario.loader import load_scenario
from sim.viz import maps

ROOT = Path(__file__).resolve().parents[1]
IDLIB = ROOT / "scenarios" / "idlib_2017_2018.yaml"
GRID = ROOT / "scenarios" / "synthetic_grid.yaml"
KM_PER_DEG = 111.32


def _km(a: tuple[float, float], line: np.ndarray) -> float:
    """Distance (km) from a point (lon, lat) to the nearest vertex or segment of a polyline."""
    k = math.cos(math.radians(a[1]))
    p = np.array([a[0] * k, a[1]]) * KM_PER_DEG
    pts = np.column_stack([line[:, 0] * k, line[:, 1]]) * KM_PER_DEG
    best = math.inf
    for u, v in itertools.pairwise(pts):
        t = np.clip(np.dot(p - u, v - u) / max(np.dot(v - u, v - u), 1e-12), 0, 1)
        best = min(best, float(np.linalg.norm(p - (u + t * (v - u)))))
    return best


@pytest.fixture(scope="module")
def towns_by_name() -> dict[str, tuple[float, float]]:
    sc = load_scenario(IDLIB).scenario
    return {t.name: (t.lon, t.lat) for t in sc.towns}


# --------------------------------------------------------------------------- the file and its loader


def test_bundled_outline_is_sourced_and_complete() -> None:
    base = basemap.load_basemap()
    assert "hand-digitised" in base.source and "not survey grade" in base.source
    assert {"M5", "M4"} <= set(base.roads)
    assert len(base.border) >= 15 and len(base.governorate) >= 30
    assert all(len(r) >= 15 for r in base.roads.values())
    np.testing.assert_allclose(base.governorate[0], base.governorate[-1])
    # The file ships inside the package (read through importlib.resources, not a repo path).
    assert (ROOT / "sim" / "scenario" / basemap.GEOGRAPHY_FILE).exists()


def test_roads_pass_through_their_towns(towns_by_name: dict[str, tuple[float, float]]) -> None:
    base = basemap.load_basemap()
    for town in ("Saraqib", "Maarat al-Numan", "Khan Shaykhun"):
        assert _km(towns_by_name[town], base.roads["M5"]) < 2.0, town
    for town in ("Saraqib", "Ariha", "Jisr al-Shughur"):
        assert _km(towns_by_name[town], base.roads["M4"]) < 2.0, town
    assert _km(towns_by_name["Idlib city"], base.roads["M5"]) > 8.0  # the M5 bypasses the city


def test_governorate_holds_its_towns(towns_by_name: dict[str, tuple[float, float]]) -> None:
    ring = MplPath(basemap.load_basemap().governorate)
    inside = [
        "Idlib city",
        "Maarat al-Numan",
        "Kafranbel",
        "Saraqib",
        "Jisr al-Shughur",
        "Ariha",
        "Khan Shaykhun",
        "Dana",
        "Harem",
        "Salqin",
        "Darkush",
        "Abu al-Duhur",
        "Atmeh camps",
    ]
    assert ring.contains_points([towns_by_name[t] for t in inside]).all()
    # Atarib and Tell al-Daman belong to Aleppo governorate, NE Hama villages to Hama.
    assert not ring.contains_points([towns_by_name[t] for t in ("Atarib", "Tell al-Daman", "NE Hama villages")]).any()
    # The border lies north of every town but within a few km of the border towns.
    border = basemap.load_basemap().border
    for town in ("Harem", "Atmeh camps", "Salqin"):
        assert _km(towns_by_name[town], border) < 8.0, town


def test_outline_only_for_the_idlib_area() -> None:
    assert basemap.basemap_for(load_scenario(IDLIB).scenario) is basemap.load_basemap()
    assert basemap.basemap_for(load_scenario(GRID).scenario) is None
    assert basemap.basemap_covering(np.array([30.0]), np.array([36.0])) is None


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "geo.geojson"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_broken_files_name_the_key(tmp_path: Path) -> None:
    text = (ROOT / "sim" / "scenario" / basemap.GEOGRAPHY_FILE).read_text(encoding="utf-8")
    good = json.loads(text)
    assert basemap.load_basemap_file(_write(tmp_path, good)).roads.keys() == {"M5", "M4"}

    no_source = copy.deepcopy(good)
    del no_source["source"]
    with pytest.raises(basemap.BasemapError, match=r"geo.geojson: source"):
        basemap.load_basemap_file(_write(tmp_path, no_source))

    swapped = copy.deepcopy(good)
    swapped["features"][2]["geometry"]["coordinates"] = [
        [b, a] for a, b in good["features"][2]["geometry"]["coordinates"]
    ]
    with pytest.raises(basemap.BasemapError, match=r"features\[2\]\.geometry\.coordinates: .*\[lon, lat\]"):
        basemap.load_basemap_file(_write(tmp_path, swapped))

    open_ring = copy.deepcopy(good)
    open_ring["features"][1]["geometry"]["coordinates"][0].pop()
    with pytest.raises(basemap.BasemapError, match=r"features\[1\].*end where it starts"):
        basemap.load_basemap_file(_write(tmp_path, open_ring))

    bad_kind = copy.deepcopy(good)
    bad_kind["features"][0]["properties"]["kind"] = "river"
    with pytest.raises(basemap.BasemapError, match=r"features\[0\]\.properties\.kind: 'river'"):
        basemap.load_basemap_file(_write(tmp_path, bad_kind))

    with pytest.raises(basemap.BasemapError, match=r"geo\.geojson: features: no border"):
        basemap.load_basemap_file(_write(tmp_path, {"type": "FeatureCollection", "features": [], "source": "x"}))


# --------------------------------------------------------------------------- drawing


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory):
    """Four Idlib towns for three days; the town table gets a constructed controller column."""
    path = tmp_path_factory.mktemp("geo") / "four.yaml"
    path.write_text(
        "name: four\nseed: 3\ndays: 3\nstart_date: 2018-01-01\n"
        "households: {sample_fraction: 0.05}\n"
        "towns:\n"
        "  - {name: Idlib city, lat: 35.9306, lon: 36.6339, persons: 9000, stance: hts}\n"
        "  - {name: Kafranbel, lat: 35.6139, lon: 36.5653, persons: 3000, stance: resisting}\n"
        "  - {name: Saraqib, lat: 35.8636, lon: 36.8006, persons: 3000, stance: hts}\n"
        "  - {name: Abu al-Duhur, lat: 35.7406, lon: 37.0467, persons: 3000, stance: unknown}\n",
        encoding="utf-8",
    )
    return simulate(load_scenario(path), household_agents=False)


def _marker_of(ax, lon: float, lat: float) -> list[MplPath]:
    """The marker paths of the filled town markers drawn at a position."""
    out = []
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets())
        if len(offsets) and np.isclose(offsets, [lon, lat]).all(axis=1).any() and len(coll.get_facecolors()):
            out.append(coll.get_paths()[0])
    return out


def _path_of(marker: str) -> MplPath:
    m = MarkerStyle(marker)
    return m.get_path().transformed(m.get_transform())


def test_controller_marks_each_town(small_run) -> None:
    """'hts' a disc, a rival group's name a square, 'contested' a diamond, 'regime' a cross."""
    towns = small_run.towns.copy()
    holders = {"Idlib city": "hts", "Kafranbel": "Ahrar al-Sham", "Saraqib": "contested", "Abu al-Duhur": "regime"}
    towns["controller"] = towns["town"].astype(str).map(holders)
    towns.loc[towns["town"] == "Abu al-Duhur", "front"] = "regime"
    run = results.from_result(small_run)
    fig = maps.plot_map(dataclasses.replace(run, towns=towns), labels=False, flows=False)
    ax = fig.axes[0]
    sc = small_run.scenario
    pos = {t.name: (t.lon, t.lat) for t in sc.towns}
    for town, marker in (("Idlib city", "o"), ("Kafranbel", "s"), ("Saraqib", "D"), ("Abu al-Duhur", "X")):
        paths = _marker_of(ax, *pos[town])
        assert paths, town
        np.testing.assert_allclose(paths[0].vertices, _path_of(marker).vertices, err_msg=town)
    # Without a controller column only the front status marks towns: all discs here but the regime's.
    plain = small_run.towns.copy()
    plain.loc[plain["town"] == "Abu al-Duhur", "front"] = "regime"
    ax = maps.plot_map(dataclasses.replace(run, towns=plain), labels=False, flows=False).axes[0]
    np.testing.assert_allclose(_marker_of(ax, *pos["Kafranbel"])[0].vertices, _path_of("o").vertices)
    np.testing.assert_allclose(_marker_of(ax, *pos["Abu al-Duhur"])[0].vertices, _path_of("X").vertices)


def test_controller_kinds() -> None:
    front = np.array(["opposition", "opposition", "contested", "regime", "regime"])
    ctl = np.array(["hts", "Nour al-Din al-Zenki", "contested", "regime", "hts"])
    assert maps.controller_kinds(front, ctl).tolist() == ["hts", "rival", "contested", "regime", "regime"]
    assert maps.controller_kinds(front).tolist() == ["hts", "hts", "contested", "regime", "regime"]


def test_front_areas_follow_the_front() -> None:
    lon = np.array([36.60, 36.80, 37.00])
    lat = np.array([35.80, 35.80, 35.80])
    none = maps.front_areas(lon, lat, np.array(["opposition"] * 3))
    assert none == {"regime": [], "contested": []}
    areas = maps.front_areas(lon, lat, np.array(["opposition", "contested", "regime"]))
    regime = MplPath.make_compound_path(*[MplPath(r) for p in areas["regime"] for r in p])
    contested = MplPath.make_compound_path(*[MplPath(r) for p in areas["contested"] for r in p])
    assert regime.contains_point((37.0, 35.8)) and not regime.contains_point((36.8, 35.8))
    assert contested.contains_point((36.8, 35.8)) and not contested.contains_point((36.6, 35.8))
    # Reaches about FRONT_RADIUS_KM from its town, not further.
    deg = maps.FRONT_RADIUS_KM / (KM_PER_DEG * math.cos(math.radians(35.8)))
    assert regime.contains_point((37.0 + 0.8 * deg, 35.8)) and not regime.contains_point((37.0 + 1.3 * deg, 35.8))


def test_map_figures_draw_the_outline(small_run) -> None:
    """The border, governorate and roads lie under the towns in the run map."""
    fig = maps.plot_run_map(small_run)
    base = basemap.load_basemap()
    for ax in fig.axes[:2]:
        lines = [np.asarray(line.get_xydata()) for line in ax.lines]
        assert any(len(xy) == len(base.border) and np.allclose(xy, base.border) for xy in lines)
        assert any(len(xy) == len(base.roads["M5"]) and np.allclose(xy, base.roads["M5"]) for xy in lines)
        assert max(line.get_zorder() for line in ax.lines if len(line.get_xydata()) == len(base.border)) < 1
    labels = {t.get_text() for t in fig.axes[1].texts}
    assert {"Idlib city", "Kafranbel", "M5"} <= labels


def test_labels_do_not_overlap() -> None:
    """adjustText separates the crowded northern labels (Salqin, Kafr Takharim, Harem)."""
    sc = load_scenario(IDLIB).scenario
    x, y, _ = maps.town_positions(sc)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7))
    maps.frame_map(ax, x, y, True, base=basemap.load_basemap())
    texts = maps.label_towns(ax, sc.town_names, x, y, np.full(len(x), 80.0))
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in texts]
    overlaps = [
        (texts[i].get_text(), texts[j].get_text())
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert not overlaps, overlaps
    plt.close(fig)


def test_labels_copied_to_a_twin_panel_match_their_own_placement() -> None:
    """The run map places its labels once and copies them to the other panel; the copies sit where
    adjustText would have put them on that panel, with the same leader lines."""
    import matplotlib.pyplot as plt

    sc = load_scenario(IDLIB).scenario
    x, y, _ = maps.town_positions(sc)
    sizes = np.full(len(x), 80.0)

    def twin() -> tuple:
        fig, axes = plt.subplots(1, 2, figsize=(12, 6), sharex=True, sharey=True)
        for ax in axes:
            maps.frame_map(ax, x, y, True)
        return fig, axes

    def leaders(ax) -> list[str]:
        own = {id(t): t.get_text() for t in ax.texts}
        return sorted(own[id(p.patchA)] for p in ax.patches if id(getattr(p, "patchA", None)) in own)

    fig, axes = twin()
    copied = maps.label_towns(axes[1], sc.town_names, x, y, sizes, also=[axes[0]])
    fig_own, axes_own = twin()
    own = maps.label_towns(axes_own[0], sc.town_names, x, y, sizes)
    labels = axes[0].texts[-len(sc.town_names) :]  # after the scale bar's text
    assert [t.get_text() for t in labels] == [t.get_text() for t in own] == sc.town_names
    placed = np.array([t.get_position() for t in labels])
    assert np.allclose(placed, [t.get_position() for t in own])
    assert np.allclose(placed, [t.get_position() for t in copied])
    assert not np.allclose(placed, np.column_stack([x, y]))  # adjustText moved them
    assert leaders(axes[0]) == leaders(axes_own[0]) == leaders(axes[1])
    assert leaders(axes[0])  # some labels have a leader line
    plt.close(fig)
    plt.close(fig_own)
