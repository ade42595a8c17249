"""The one interval method and the ROPE verdict rules (sim.analysis.statistics)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.analysis.statistics import (
    DISAGREE,
    combined_verdict,
    mean_interval,
    posterior_probabilities,
    summarize,
    verdict,
)


def test_bca_interval_is_asymmetric_for_a_skewed_sample() -> None:
    """BCa follows the skew of the sampling distribution; a percentile or t interval would not."""
    x = np.random.default_rng(3).lognormal(0.0, 1.0, size=40)
    lo, hi = mean_interval(x, n_resamples=4000, seed=1)
    assert lo < x.mean() < hi
    assert hi - x.mean() > x.mean() - lo  # longer upper arm for a right-skewed sample


def test_interval_is_seeded_and_handles_degenerate_samples() -> None:
    x = np.random.default_rng(0).normal(size=12)
    assert mean_interval(x, seed=4) == mean_interval(x, seed=4)
    assert mean_interval(x, seed=4) != mean_interval(x, seed=5)
    assert mean_interval(np.full(6, 0.25)) == (0.25, 0.25)
    assert all(np.isnan(mean_interval(np.array([np.nan]))))
    # two values: BCa's jackknife is degenerate, the percentile interval is used instead
    lo, hi = mean_interval(np.array([0.0, 1.0]))
    assert 0.0 <= lo <= hi <= 1.0


@pytest.mark.parametrize(
    ("lo", "hi", "sign", "expected"),
    [
        (0.03, 0.10, +1, "supported"),  # whole interval above +ROPE
        (-0.10, -0.03, +1, "contradicted"),  # whole interval below -ROPE
        (-0.10, -0.03, -1, "supported"),  # predicted decrease
        (-0.015, 0.019, +1, "negligible"),  # whole interval inside [-ROPE, +ROPE]
        (0.01, 0.05, +1, "inconclusive"),  # excludes zero but straddles +ROPE: significant, not practical
        (-0.05, 0.05, +1, "inconclusive"),
        (float("nan"), 0.1, +1, "inconclusive"),
        (0.03, 0.10, 0, "higher"),
    ],
)
def test_rope_verdicts_on_constructed_intervals(lo, hi, sign, expected) -> None:
    assert verdict(lo, hi, sign, rope=0.02) == expected


def test_without_a_rope_any_interval_excluding_zero_decides() -> None:
    assert verdict(0.001, 0.002, +1) == "supported"
    assert verdict(0.0, 0.0, +1) == "inconclusive"


def test_headline_only_where_both_measures_agree() -> None:
    assert combined_verdict("supported", "supported") == "supported"
    assert combined_verdict("negligible", "contradicted") == DISAGREE


def test_summarize_applies_the_rope() -> None:
    small = np.random.default_rng(2).normal(0.005, 0.002, size=30)  # tiny but clearly positive
    assert summarize(small, +1)["verdict"] == "supported"
    assert summarize(small, +1, rope=0.02)["verdict"] == "negligible"


def test_posterior_probabilities_sum_to_one() -> None:
    p = posterior_probabilities(np.array([-0.5, -0.01, 0.0, 0.03, 0.2, np.nan]), rope=0.02)
    assert p == {"p_above": 0.4, "p_within": pytest.approx(0.4), "p_below": 0.2}
    assert sum(p.values()) == pytest.approx(1.0)
