"""``sim mechanisms``: the mechanism audit (decomposition, favouring and disfavouring verdicts, the
mirror, rival offensives, the largest conversion), its arithmetic, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.analysis import mechanisms as mech

ROOT = Path(__file__).resolve().parents[1]
IDLIB = ROOT / "scenarios" / "idlib_2017_2018.yaml"


def _rows(n: int = 6, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    settings = mech.favouring_settings(())
    data: dict[str, np.ndarray] = {"change": 0.2 + 0.01 * rng.standard_normal(n)}
    for m in mech.MECHANISMS:
        data[f"off:{m}"] = data["change"] - (0.15 if m == "rally" else 0.0)
    data["off:all"] = data["change"] - 0.2
    for col in mech.MIRROR_SERIES:
        data[f"mirror:{col}"] = -0.05 + 0.001 * rng.standard_normal(n)
        data[f"continued:{col}"] = np.full(n, 0.3)
    for label in settings:
        for o in mech.THESIS_OUTCOMES:
            shift = {"favouring": 0.1, "disfavouring": -0.1}.get(label, 0.0)
            data[f"effect:{label}:{o}"] = shift + 0.001 * rng.standard_normal(n)
            data[f"control:{label}:{o}"] = np.full(n, 0.3)
    for m in [*mech.MECHANISMS, "all", "all+regime_blame"]:
        for o in mech.THESIS_OUTCOMES:
            # rally off removes 0.03 of the as-calibrated effect; suppression off adds 0.01; all off: none
            less = {"rally": 0.03, "suppression": -0.01}.get(m, 0.0)
            whole = data[f"effect:as calibrated:{o}"]
            data[f"effect_off:{m}:{o}"] = np.zeros(n) if m.startswith("all") else whole - less
    data.update(
        rival_attacks=np.array([0, 2, 0, 1, 0, 0], float)[:n],
        rival_attacks_in_war=np.array([0, 1, 0, 0, 0, 0], float)[:n],
        rival_first_day=np.array([np.nan, 110, np.nan, 30, np.nan, np.nan])[:n],
        rival_takes=np.zeros(n),
    )
    return pd.DataFrame(data)


def test_tables_attribute_the_change_to_the_mechanism_whose_removal_changes_it():
    rows = _rows()
    t = mech.tabulate(rows, mech.favouring_settings(()), 0.02)
    dec = t["decomposition"].set_index("switched off")
    assert dec.loc["rally", "accounts_for"] == pytest.approx(0.15)
    assert dec.loc["rally", "share_of_change"] == pytest.approx(0.15 / rows["change"].mean())
    assert dec.loc["exit", "accounts_for"] == pytest.approx(0.0)
    assert dec.loc["all seven", "accounts_for"] == pytest.approx(0.2)
    v = t["verdicts"].set_index(["setting", "outcome"])
    home = mech.OUTCOMES["coop_resisting_home_mean"][0]
    eff = t["effect_decomposition"].set_index(["outcome", "switched off"])
    assert eff.loc[(home, "rally"), "accounts_for"] == pytest.approx(0.03)
    assert eff.loc[(home, "rally"), "p_accounts_for_positive"] == 1.0
    assert eff.loc[(home, "suppression"), "accounts_for"] == pytest.approx(-0.01)
    assert eff.loc[(home, "suppression"), "p_accounts_for_positive"] == 0.0
    assert eff.loc[(home, "exit"), "accounts_for"] == pytest.approx(0.0)
    whole = rows["effect:as calibrated:coop_resisting_home_mean"].mean()
    assert eff.loc[(home, "all seven"), "accounts_for"] == pytest.approx(whole)
    assert eff.loc[(home, "(none: all on)"), "effect"] == pytest.approx(whole)
    assert eff.loc[(home, "all seven and regime blame"), "accounts_for"] == pytest.approx(whole)
    assert v.loc[("favouring", home), "verdict_of_mean"] == "supported"
    assert v.loc[("disfavouring", home), "verdict_of_mean"] == "contradicted"
    assert v.loc[("as calibrated", home), "verdict_of_mean"] == "negligible"
    assert v.loc[("favouring", home), "p_above"] == 1.0
    m = t["mirror"].iloc[0]
    assert m["stopped_minus_continued"] == pytest.approx(-0.05, abs=0.002) and m["share_beyond_rope"] == 1.0
    r = t["rivals"].iloc[0]
    assert (r["runs_with_rival_attack_on_hts"], r["runs_with_attack_in_rival_war"]) == (2, 1)
    assert r["median_first_day"] == 70


def test_rival_attacks_count_only_rivals_taking_towns_from_hts():
    ev = pd.DataFrame(
        {
            "event": ["control_change", "control_change", "control_change", "control_change", "strike"],
            "date": ["2017-11-02", "2018-01-20", "2018-02-25", "2018-03-01", "2018-03-02"],
            "day": [1, 80, 116, 120, 121],
            "note": ["attack by Ahrar al-Sham", "regime advance", "attack by FSA factions", "taken by HTS", ""],
            "controller_from": ["hts", "hts", "hts", "contested", ""],
            "controller_to": ["contested", "regime", "contested", "hts", ""],
        }
    )
    out = mech._rival_attacks(ev, *mech.RIVAL_WAR)
    assert out == {"rival_attacks": 2.0, "rival_attacks_in_war": 1.0, "rival_first_day": 1.0, "rival_takes": 0.0}


def test_favouring_and_disfavouring_settings_span_rally_pretext_and_rho():
    s = mech.favouring_settings(())
    assert s["as calibrated"] == {}
    assert s["favouring"] == {"mechanisms.rally": 3.0, "mechanisms.pretext_blame": 0.0, mech.RHO: 1.0}
    assert s["disfavouring"] == {"mechanisms.rally": 0.0, "mechanisms.pretext_blame": 0.4, mech.RHO: 0.0}
    # every key is a parameter the scenario takes
    from sim.scenario.loader import load_scenario

    load_scenario(IDLIB, [f"{k}={v}" for k, v in s["disfavouring"].items()])


def test_posterior_points_are_weighted_seeded_draws():
    post = pd.DataFrame({"generation": [0, 1, 1], "weight": [1.0, 0.0, 1.0], "a": [9.0, 1.0, 2.0]})
    pts = mech.parameter_points(post, ["a"], 5, seed=3)
    assert pts == [{"a": 2.0}] * 5  # the final generation, by weight
    assert mech.parameter_points(None, ["a"], 5, seed=3) == [{}]


@pytest.mark.slow
def test_the_audit_command_writes_its_report_and_refuses_bad_input(run_cli, tmp_path):
    out = tmp_path / "audit"
    r = run_cli("mechanisms", IDLIB, "--quick", "--conversion-draws", "2", "--workers", "1", "--out", out, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = (out / "report.md").read_text()
    for heading in ("## 1.", "## 2. What carries the thesis effect", "## 3.", "## 4.", "## 5.", "## 6."):
        assert heading in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["seed"] == 0 and len(manifest["scenario_hash"]) == 64 and manifest["code_version"]
    rows = pd.read_csv(out / "rows.csv")
    assert len(rows) == 1 and np.isfinite(rows["change"]).all()
    dec = pd.read_csv(out / "decomposition.csv")
    assert list(dec["switched off"])[1:] == [*mech.MECHANISMS, "all seven"]
    eff = pd.read_csv(out / "effect_decomposition.csv")
    assert len(eff) == len(mech.EFFECT_DECOMPOSITION_OUTCOMES) * (len(mech.MECHANISMS) + 3)
    assert list(eff["switched off"])[-2:] == ["all seven", "all seven and regime blame"]
    assert np.isfinite(eff["effect"]).all() and "what carries the thesis effect" in r.stdout
    # the runaway search under the scenario's campaign and under the thesis's counterfactual, 2 points each
    conversion = pd.read_csv(out / "conversion.csv")
    assert conversion.groupby("campaign").size().to_dict() == {label: 2 for label, _ in mech.CONVERSION_CAMPAIGNS}
    report = (out / "report.md").read_text()
    assert all(f"- {label}: over 2 Latin-hypercube points" in report for label, _ in mech.CONVERSION_CAMPAIGNS)
    assert "thesis (favouring)" in r.stdout and "mirror" in r.stdout
    # the same folder again, a date outside the window, a window before the stop: one line, exit 2, nothing new
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (
        ("--out", out),
        ("--stop", "2019-01-01", "--out", tmp_path / "x"),
        ("--stop", "2018-02-30", "--out", tmp_path / "x"),
        ("--window", "2018-02-01", "2018-02-05", "--out", tmp_path / "x"),
    ):
        bad = run_cli("mechanisms", IDLIB, "--quick", *args)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "Traceback" not in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
