"""The thesis test: bootstrap intervals, verdicts, paired seeds, and settings that decide it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from sim.analysis.statistics import DEFAULT_ROPE, mean_interval, summarize, verdict
from sim.analysis.thesis import (
    HEADLINE,
    OUTCOMES,
    ThesisSettings,
    paired_differences,
    policy_effects,
    rope_for,
    run_thesis,
)
from sim.experiments import SerialEngine, load_results, run_sweep, spec_from_dict
from sim.viz.figures import draw_thesis_figures

GRID = Path(__file__).resolve().parents[1] / "scenarios" / "synthetic_grid.yaml"
FAST = {"sample_fraction": 0.03, "days": 45}


# --------------------------------------------------------------------------- statistics


def test_mean_interval_on_a_known_distribution() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, size=400)
    lo, hi = mean_interval(x, n_resamples=4000, seed=7)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # normal-theory interval of the mean
    assert lo == pytest.approx(x.mean() - half, abs=0.2 * half)
    assert hi == pytest.approx(x.mean() + half, abs=0.2 * half)
    assert mean_interval(x, n_resamples=4000, seed=7) == (lo, hi)  # seeded
    # coverage of the true mean over many samples is close to the nominal 95%
    hits = 0
    for i in range(300):
        s = rng.exponential(1.0, size=60)
        a, b = mean_interval(s, n_resamples=1000, seed=i)
        hits += a <= 1.0 <= b
    assert 0.88 <= hits / 300 <= 0.99
    assert mean_interval(np.zeros(10)) == (0.0, 0.0)
    assert all(np.isnan(mean_interval(np.array([]))))


def test_verdict_rule() -> None:
    assert verdict(0.01, 0.2, +1) == "supported"
    assert verdict(-0.2, -0.01, +1) == "contradicted"
    assert verdict(-0.2, -0.01, -1) == "supported"
    assert verdict(-0.01, 0.2, +1) == "inconclusive"
    assert verdict(0.0, 0.0, +1) == "inconclusive"
    assert verdict(0.1, 0.2, 0) == "higher"


def test_halving_a_small_protest_share_is_not_negligible() -> None:
    """Protest at 0.02 in the control arm, -50% under the treatment (-0.01, tight interval): the
    relative ROPE (a quarter of 0.02 = 0.005) registers it; the old absolute 0.02 called it negligible."""
    diffs = -0.01 + np.random.default_rng(0).normal(0, 0.001, 30)
    rope = rope_for("protest_resisting_mean", DEFAULT_ROPE, control_mean=0.02)
    assert rope == pytest.approx(0.005)
    s = summarize(diffs, -1, rope=rope)
    assert s["verdict"] == "supported" and s["powered"]
    assert summarize(diffs, -1, rope=DEFAULT_ROPE)["verdict"] == "negligible"  # the rule this replaces
    # cooperation keeps its absolute ROPE, whatever the control mean
    assert rope_for("coop_resisting_mean", DEFAULT_ROPE, control_mean=0.02) == DEFAULT_ROPE


def test_an_interval_wider_than_its_rope_is_flagged_as_lacking_power() -> None:
    wide = np.random.default_rng(1).normal(0.0, 0.2, 10)
    s = summarize(wide, +1, rope=0.02)
    assert not s["powered"] and s["mc_error"] > 0.02
    assert summarize(np.full(10, 0.0) + np.linspace(-1e-3, 1e-3, 10), +1, rope=0.02)["powered"]


# --------------------------------------------------------------------------- paired seeds


def _twin_sweep(seeds: str) -> dict:
    return {
        "name": f"twins_{seeds}",
        "scenario": str(GRID),
        "root_seed": 8,
        "days": 20,
        "replicates": 4,
        "seeds": seeds,
        "set": ["households.sample_fraction=0.02", "air_campaign.policy=none"],
        "parameters": {"copy": {"variants": {"a": {}, "b": {}}}},
        "outcomes": list(OUTCOMES),
    }


def test_none_against_itself_gives_zero_in_every_pair(tmp_path: Path) -> None:
    outcomes = list(OUTCOMES)
    with SerialEngine() as eng:
        same = run_sweep(spec_from_dict(_twin_sweep("common")), tmp_path, engine=eng, progress=False)
        indep = run_sweep(spec_from_dict(_twin_sweep("independent")), tmp_path, engine=eng, progress=False)
    d = paired_differences(load_results(same.folder), "b", "a", outcomes, factor="copy")
    assert len(d) == 4 and d["seed"].nunique() == 4
    assert (d[outcomes].to_numpy() == 0.0).all()
    effects, _ = policy_effects(
        load_results(same.folder).assign(**{"air_campaign.policy": lambda f: f["copy"]}), [("b", "a")], outcomes
    )
    assert (effects["verdict"] == "inconclusive").all()
    assert (effects[["mean_diff", "ci_low", "ci_high"]].to_numpy() == 0.0).all()
    # the same comparison without shared seeds is not zero: the test above can fail
    with pytest.raises(AssertionError, match="share seeds"):
        paired_differences(load_results(indep.folder), "b", "a", outcomes, factor="copy")


# --------------------------------------------------------------------------- verdicts


def _headline(tmp_path: Path, overrides: list[str]) -> pd.DataFrame:
    settings = ThesisSettings(
        scenario=GRID,
        overrides=overrides,
        replicates=6,
        policies=["resisting_towns"],
        experiments=("headline",),
        **FAST,
    )
    result = run_thesis(settings, tmp_path, engine=SerialEngine(), progress=False, report=False)
    return result.headline().set_index("outcome")


def test_rally_and_protection_dominate_supported(tmp_path: Path) -> None:
    h = _headline(
        tmp_path,
        ["mechanisms.rally=3", "mechanisms.suppression=0", "mechanisms.pretext_blame=0"],
    )
    for o in HEADLINE:
        assert h.loc[o, "verdict"] == "supported", h
        assert h.loc[o, "ci_low"] > 0.02 and h.loc[o, "share_positive"] == 1.0


def test_suppression_and_blame_dominate_contradicted(tmp_path: Path) -> None:
    h = _headline(
        tmp_path,
        [
            "mechanisms.rally=0",
            "mechanisms.regime_blame=0",
            "mechanisms.institutions=0",
            "mechanisms.suppression=5",
            "mechanisms.pretext_blame=1",
        ],
    )
    for o in HEADLINE:
        assert h.loc[o, "verdict"] == "contradicted", h
        assert h.loc[o, "ci_high"] < -0.02 and h.loc[o, "share_positive"] == 0.0


# --------------------------------------------------------------------------- report and CLI


def test_thesis_report_end_to_end(tmp_path: Path) -> None:
    settings = ThesisSettings(
        scenario=GRID,
        replicates=3,
        ablation_replicates=2,
        heatmap_replicates=2,
        heatmap_levels=2,
        mechanisms=["rally", "pretext_blame"],
        policies=["resisting_towns", "hts_strongholds"],
        sample_fraction=0.02,
        days=20,
    )
    result = run_thesis(settings, tmp_path, engine=SerialEngine(), progress=False, draw=draw_thesis_figures)
    text = result.report.read_text()
    body = text.split("## Verdict", 1)[1].strip().splitlines()
    # first the headline verdict over both measures, then each measure
    assert body[0].startswith("- **Headline, strikes on resisting towns vs no strikes: ")
    assert body[1].startswith("- Strikes on resisting towns vs no strikes") and "by current town" in body[1]
    assert "by home town" in body[2]
    assert any("vs strikes on HTS strongholds" in line for line in body[:6])
    for name in (
        "effects.csv",
        "pairs.csv",
        "ablation.csv",
        "heatmap.csv",
        "effects.png",
        "ablation.png",
        "heatmap.png",
        "settings.json",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    effects = pd.read_csv(tmp_path / "effects.csv")
    assert set(zip(effects["treatment"], effects["control"], strict=True)) == {
        ("resisting_towns", "none"),
        ("hts_strongholds", "none"),
        ("resisting_towns", "hts_strongholds"),
    }
    abl = pd.read_csv(tmp_path / "ablation.csv")
    assert set(abl["variant"]) == {"all", "no_rally", "no_pretext_blame"}
    hm = pd.read_csv(tmp_path / "heatmap.csv")
    assert len(hm) == 2 * 2 * len(HEADLINE)
    assert "root seed 20171113" in text and "sample_fraction = 0.02" in text
    # rerunning resumes every sweep: nothing is run again and the tables are identical
    again = run_thesis(settings, tmp_path, engine=SerialEngine(), progress=False)
    assert all(s.ran == 0 for s in again.summaries.values())
    pd.testing.assert_frame_equal(again.effects, result.effects)


def test_thesis_cli_bad_input() -> None:
    from sim.cli.experiments import register

    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["thesis", str(GRID), "--set", "mechanisms.rally=-1"])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "mechanisms.rally" in res.output
    res = CliRunner().invoke(app, ["thesis", "--replicates", "1"])
    assert res.exit_code == 2 and "--replicates" in res.output
