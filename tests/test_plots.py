"""sim.viz.plots: every standard figure from real (small) results, with its axes and labels."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import results_data as data

from sim.analysis import results
from sim.run.outcomes import compute_outcomes
from sim.viz import maps, plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]


def test_summary_saves(tmp_path: Path):
    run = results.load(data.grid_run())
    fig = plots.plot_summary(run.timeseries, run.scenario, save=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert fig.axes[0].get_ylabel() == "share of persons"


def test_bands_by_policy_with_dates_and_days():
    runs = [results.load(p) for p in data.grid_replicates()]
    ts = results.stack(runs, label="policy")
    fig = plots.plot_bands(ts, ["coop_share_resisting", "displaced_persons"], by="policy")
    axes = visible_axes(fig)
    assert len(axes) == 2
    assert axes[0].get_ylabel() == "share of persons" and axes[1].get_ylabel() == "persons"
    assert axes[0].get_xlabel() == "day"
    assert "3 replicates per policy" in fig._suptitle.get_text()
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"none", "resisting_towns"}
    # two groups -> two bands and two median lines per panel
    assert len(axes[0].lines) == 2 and len(axes[0].collections) == 2
    idlib = results.load(data.idlib_run())
    fig = plots.plot_bands(results.stack([idlib]), "coop_share")
    assert isinstance(fig.axes[0].xaxis.get_major_formatter(), matplotlib.dates.ConciseDateFormatter)


def test_towns_small_multiples():
    run = results.load(data.idlib_run())
    fig = plots.plot_towns(run.towns, "coop_share")
    axes = visible_axes(fig)
    assert len(axes) == len(run.scenario.towns)
    assert {a.get_title() for a in axes} == set(run.scenario.town_names)
    assert fig._supylabel.get_text() == "share of persons" and fig._supxlabel.get_text() == "date"
    assert axes[0].get_ylim() == (0.0, 1.0)
    reps = results.stack([results.load(p) for p in data.grid_replicates()[:3]], "towns")
    fig = plots.plot_towns(reps, "protest_share", names=["Resistance-A", "Stronghold-A"])
    assert len(visible_axes(fig)) == 2 and "replicates" in fig._suptitle.get_text()
    with pytest.raises(KeyError):
        plots.plot_towns(run.towns, "no_such_variable")


def test_map_any_variable_at_a_date(tmp_path: Path):
    run = results.load(data.idlib_run())
    fig = maps.plot_map(run, "hts_control", "2018-01-22", since="2017-12-15", save=tmp_path / "m.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "longitude (°E)" and ax.get_ylabel() == "latitude (°N)"
    assert "22 Jan 2018" in ax.get_title() and "15 Dec 2017" in ax.get_title()
    assert fig.axes[-1].get_ylabel().startswith("HTS control")  # colour bar
    assert ax.patches, "displacement flows are drawn as arrows"
    grid = results.load(data.grid_run())
    fig = maps.plot_map(grid, "coop_share", 10)
    assert fig.axes[0].get_xlabel().startswith("grid column") and "day 10" in fig.axes[0].get_title()
    with pytest.raises(results.ResultsError, match="outside the run"):
        maps.plot_map(grid, "coop_share", 400)
    fig = maps.plot_map(run, when=dt.date(2018, 1, 1), labels=False)
    assert fig.axes[0].get_xlabel() == "longitude (°E)"
    assert fig.axes[0].get_title().startswith("Cooperation with HTS, 1 Jan 2018")
    assert fig.axes[-1].get_label() == "<colorbar>"
    assert not hasattr(plots, "plot_map") and not hasattr(maps, "plot_town_map"), "one town-map function"


def test_observed_and_displacement_check():
    run = results.load(data.idlib_run())
    fig = plots.plot_observed(run.observed)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("simulated / recorded")
    assert len(ax.get_yticklabels()) == len(run.observed)
    fig = plots.plot_displacement_check([run, run])
    assert fig.axes[0].get_ylabel() == "displacements since window start (thousand persons)"
    assert any("record" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_policy_comparison_from_runs():
    rows = []
    for p in data.grid_replicates():
        r = results.load(p)
        rows.append({"policy": r.policy, **compute_outcomes(r.timeseries, ["coop_resisting_mean", "killed_total"])})
    import pandas as pd

    fig = plots.plot_policies(pd.DataFrame(rows), ["coop_resisting_mean", "killed_total"])
    axes = visible_axes(fig)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["none", "resisting\ntowns"]
    assert axes[0].get_ylabel() == "share of persons" and axes[1].get_ylabel() == "persons"


def test_thesis_effects_ablation_heatmap():
    th = results.load(data.thesis_folder())
    fig = plots.plot_effects(th.table("effects"))
    axes = visible_axes(fig)
    assert len(axes) == th.tables["effects"]["outcome"].nunique()
    assert axes[0].get_xlabel() == "difference (share of persons)"
    assert "resisting towns - none" in [t.get_text() for t in axes[0].get_yticklabels()]
    fig = plots.plot_ablation(th.table("ablation"))
    assert visible_axes(fig)[0].get_xlabel().startswith("effect with it - effect without it")
    fig = plots.plot_thesis_heatmap(th.table("heatmap"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "rally [mechanisms.rally]"
    assert ax.get_ylabel() == "pretext blame [mechanisms.pretext_blame]"
    assert "zero effect" in ax.get_title()


def test_heatmap_zero_contour_and_hatching():
    import pandas as pd

    grid = pd.DataFrame(
        [{"a": a, "b": b, "effect": a - b, "lo": a - b - 0.5, "hi": a - b + 0.5} for a in (0, 1, 2) for b in (0, 1, 2)]
    )
    fig = plots.plot_heatmap(grid, "a", "b", "effect", low="lo", high="hi")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "a" and ax.get_ylabel() == "b"
    assert any(type(c).__name__ == "QuadContourSet" for c in ax.collections) or ax.collections
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 3  # the diagonal, where the interval includes zero


def test_sweep_figures():
    sw = results.load(data.sweep_folder())
    fig = plots.plot_parameter_effects(sw)
    assert fig.axes[-1].get_xlabel() == "policy [air_campaign.policy]"
    fig = plots.plot_sweep_heatmap(sw, "coop_resisting_mean")
    assert "resisting_towns - none" in fig.axes[0].get_title()
    # the paired effect is sim.analysis.thesis.paired_differences: pairs must share a seed
    table, *_ = plots.sweep_effect_grid(sw, "coop_resisting_mean")
    assert (table["n"] > 0).all() and table["value"].notna().all()
    unpaired = sw.results.copy()
    unpaired.loc[unpaired["air_campaign.policy"] == "none", "seed"] += 1
    with pytest.raises(AssertionError, match="share seeds"):
        plots.sweep_effect_grid(dataclasses.replace(sw, results=unpaired), "coop_resisting_mean")
    fig = plots.plot_bands(sw.series("coop_share_resisting"), "value", by="air_campaign.policy")
    assert len(visible_axes(fig)) == 1


def test_sensitivity_bars():
    sw = results.load(data.morris_folder())
    fig = plots.plot_sensitivity(sw.sensitivity["sensitivity"])
    axes = visible_axes(fig)
    assert len(axes) == 2
    assert axes[0].get_xlabel().startswith("elementary effect")
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {
        "mu* (mean |effect|)",
        "sigma (interactions, non-linearity)",
    }


def test_one_colour_map_per_quantity():
    """Colour maps come from sim.viz.style only: the same one for a quantity in every figure and the app."""
    import re

    from sim.viz import style

    run = results.load(data.idlib_run())
    for variable, cmap in (("coop_share", style.COOPERATION_CMAP), ("resist_share", style.RESISTANCE_CMAP)):
        assert style.colour_map(variable) is cmap
        fig = maps.plot_map(run, variable, labels=False)
        assert any(getattr(c, "cmap", None) is cmap for c in fig.axes[0].collections), variable
    assert style.colour_map("hts_control") == style.SEQUENTIAL_CMAP
    viz = Path(style.__file__).parent
    named = re.compile(r"LinearSegmentedColormap|ListedColormap|\"(cividis|viridis|magma|plasma|inferno|RdBu\w*)\"")
    for path in sorted(viz.glob("*.py")):
        if path.name not in ("style.py", "calibration.py"):
            assert not named.search(path.read_text(encoding="utf-8")), f"{path.name} names a colour map"
