"""Every observation rule of the shipped record can fail: prior draws of the calibration disagree with it.

An entry that agrees with every draw from the prior cannot fail, so it cannot inform a fit: it is a
check, not a target. ``tests/test_record_prior.py`` runs draws from the calibration's prior at a
small scale and counts agreements per entry; the full test (20 draws) is marked slow, the quick
variant runs 3. The record file gives such entries role ``check`` with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.experiments.inference.priors import draw_prior
from sim.run.record import AGREE, DISAGREE, compare_run
from sim.run.simulate import simulate
from sim.scenario.calibration import load_calibration
from sim.scenario.loader import load_scenario, with_values

ROOT = Path(__file__).resolve().parents[1]
IDLIB = ROOT / "scenarios" / "idlib_2017_2018.yaml"
CALIBRATION = ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml"
FRACTION = 0.02
SEED = 2018


def agreement_over_prior(draws: int, fraction: float = FRACTION, seed: int = SEED) -> pd.DataFrame:
    """Per record entry: its role and how many of ``draws`` prior draws agree and disagree with it."""
    loaded = load_scenario(IDLIB)
    cal = load_calibration(CALIBRATION, loaded)
    record = loaded.record
    params = draw_prior(cal.priors, draws, seed, "record rules")
    counts: dict[str, dict[str, int]] = {}
    roles: dict[str, str] = {}
    for i, row in params.iterrows():
        values = {"households.sample_fraction": fraction, **{k: float(v) for k, v in row.items()}}
        sc = with_values(loaded.scenario, values, source="prior draw")
        result = simulate(sc, seed + int(i), household_agents=False)
        table = compare_run(record, sc, result.frames)
        for r in table.itertuples(index=False):
            c = counts.setdefault(r.id, {AGREE: 0, DISAGREE: 0})
            roles[r.id] = r.role
            if r.agreement in c:
                c[r.agreement] += 1
    out = pd.DataFrame.from_dict(counts, orient="index")
    out["role"] = pd.Series(roles)
    return out


def _check(table: pd.DataFrame, draws: int) -> None:
    scored = table[table["role"].isin(["calibration", "validation"])]
    judged = scored[(scored[AGREE] + scored[DISAGREE]) > 0]
    assert len(judged) >= 20
    # some entries disagree with some draw: the rules can fail on runs of the model itself
    assert (judged[DISAGREE] > 0).sum() >= len(judged) // 2
    if draws >= 20:
        # no calibration target agrees with every draw (those are checks in the record, with the reason)
        cal = scored[scored["role"] == "calibration"]
        assert (cal[DISAGREE] > 0).all(), cal
        # nor does any validation entry the model can judge: those were made checks
        never = judged[judged[DISAGREE] == 0]
        assert never.empty, never


def test_observation_rules_fail_for_some_prior_draws_quick() -> None:
    _check(agreement_over_prior(3), 3)


@pytest.mark.slow
def test_observation_rules_fail_for_some_prior_draws() -> None:
    _check(agreement_over_prior(20), 20)


if __name__ == "__main__":  # the table behind the record's roles: python tests/test_record_prior.py
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    pd.set_option("display.width", 200)
    print(agreement_over_prior(n).sort_values(["role", AGREE]).to_string())
