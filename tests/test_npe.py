"""Neural posterior estimation (sim.experiments.inference.npe) and its checks (sim.analysis.posterior_checks).

A toy simulator with a known posterior, independent of the model: a ~ normal(0, 1),
b ~ uniform(-3, 3), statistics s1 = a + e1, s2 = b + e2 with e ~ normal(0, 0.5^2). At the
record the posterior of a is normal(s1 / 1.25, 0.25 / 1.25) and that of b is normal(s2, 0.25)
truncated to the box. One small ensemble of two flows is trained once for the module (2,000 simulations,
small flows, 30 epochs, one torch thread).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sbi")
torch.set_num_threads(1)

from scipy import stats  # noqa: E402

from sim.analysis import posterior_checks as pc  # noqa: E402
from sim.experiments.inference import npe  # noqa: E402
from sim.scenario.calibration import Prior  # noqa: E402
from sim.scenario.seeds import generator  # noqa: E402

# nflows' LU transform (the nsf flow) still calls torch.triangular_solve
pytestmark = pytest.mark.filterwarnings("ignore:torch.triangular_solve is deprecated:UserWarning")

ROOT = 20180122
SIGMA = 0.5
PRIORS = (
    Prior("a", "normal", None, None, 0.0, 1.0, "toy"),
    Prior("b", "uniform", -3.0, 3.0, None, None, "toy"),
)
X_OBS = {"s1": 0.8, "s2": -1.0}
SETTINGS = npe.NPESettings(
    model="maf",
    members=2,
    hidden_features=32,
    num_transforms=5,
    training_batch_size=100,
    learning_rate=1e-3,
    max_num_epochs=30,
)


def simulate(n: int, *labels: str | int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = generator(ROOT, "test", *labels)
    theta = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.uniform(-3, 3, n)})
    x = pd.DataFrame({"s1": theta["a"] + rng.normal(0, SIGMA, n), "s2": theta["b"] + rng.normal(0, SIGMA, n)})
    return theta, x


def analytic(x_obs: dict[str, float]) -> dict[str, stats.rv_continuous]:
    v = SIGMA**2
    a = stats.norm(x_obs["s1"] / (1 + v), math.sqrt(v / (1 + v)))
    sd = SIGMA
    b = stats.truncnorm((-3 - x_obs["s2"]) / sd, (3 - x_obs["s2"]) / sd, loc=x_obs["s2"], scale=sd)
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def fitted():
    theta, x = simulate(2000, "train")
    # three failed simulations: recorded, with NaN statistics, and excluded from training
    theta = pd.concat([theta, pd.DataFrame({"a": [0.1, 0.2, 0.3], "b": [0.0, 1.0, 2.0]})], ignore_index=True)
    x = pd.concat([x, pd.DataFrame({"s1": [np.nan] * 3, "s2": [np.nan] * 3})], ignore_index=True)
    x["failed"] = [False] * 2000 + [True] * 3
    return npe.fit_npe(PRIORS, theta, x, seed=ROOT, settings=SETTINGS)


@pytest.fixture(scope="module")
def held(fitted):
    theta, x = simulate(200, "held-out")
    x["failed"] = False
    # one failed held-out simulation: left out of every check and counted
    theta.loc[len(theta)] = [0.0, 0.0]
    x.loc[len(x)] = [np.nan, np.nan, True]
    return pc.held_out(fitted, PRIORS, theta, x, seed=ROOT, n_posterior=300)


class Narrowed:
    """A posterior made overconfident on purpose: draws shrunk halfway to their mean."""

    def __init__(self, inner: npe.NPEEnsemble):
        self.inner = inner
        self.parameters = inner.parameters

    def sample_many(self, xs, n, seed):
        d = self.inner.sample_many(xs, n, seed)
        return d.mean(axis=0, keepdims=True) + 0.5 * (d - d.mean(axis=0, keepdims=True))


# --------------------------------------------------------------------------- the fit


def test_failed_simulations_excluded_and_counted(fitted):
    assert (fitted.n_total, fitted.n_failed, fitted.n_used) == (2003, 3, 2000)
    assert fitted.statistics == ["s1", "s2"]
    assert len(fitted.estimators) == SETTINGS.members == 2 and len(fitted.training) == 2


def test_posterior_matches_the_analytic_one(fitted):
    draws = fitted.sample(X_OBS, 4000, seed=1)
    for name, dist in analytic(X_OBS).items():
        assert draws[name].mean() == pytest.approx(dist.mean(), abs=0.15), name
        assert draws[name].std() == pytest.approx(dist.std(), rel=0.25), name
        q = fitted.quantiles(X_OBS, q=(0.05, 0.95), n=4000, seed=2).loc[name]
        assert q[0.05] == pytest.approx(dist.ppf(0.05), abs=0.25), name
        assert q[0.95] == pytest.approx(dist.ppf(0.95), abs=0.25), name
    point = fitted.hpd_point(X_OBS, n=2000, seed=3)
    assert point["a"] == pytest.approx(analytic(X_OBS)["a"].mean(), abs=0.25)
    assert point["b"] == pytest.approx(X_OBS["s2"], abs=0.25)
    assert np.isfinite(point.attrs["log_prob"])
    spread = fitted.disagreement(X_OBS, n=1000, seed=4)
    assert (spread["relative_spread"] < 1).all()


def test_prior_log_pdf_is_each_familys_density_in_value_units():
    priors = (
        Prior("u", "uniform", 2.0, 6.0, None, None, "t"),
        Prior("l", "loguniform", 0.01, 1.0, None, None, "t"),
        Prior("ln", "lognormal", None, None, 2.0, 0.5, "t"),
        Prior("n", "normal", None, None, -1.0, 0.3, "t"),
    )
    m = npe.ParameterMap(priors)
    v = np.array([[3.0, 0.05, 1.7, -0.8], [5.5, 0.7, 3.1, -1.2]])
    expected = (
        stats.uniform(2, 4).logpdf(v[:, 0])
        + stats.loguniform(0.01, 1.0).logpdf(v[:, 1])
        + stats.lognorm(0.5, scale=2.0).logpdf(v[:, 2])
        + stats.norm(-1.0, 0.3).logpdf(v[:, 3])
    )
    np.testing.assert_allclose(m.prior_log_pdf(v), expected, rtol=1e-12)
    assert m.prior_log_pdf(np.array([[7.0, 0.05, 1.7, -0.8]]))[0] == -np.inf


class _KnownPosterior:
    """A posterior known exactly, for :meth:`NPEEnsemble.hpd_point`: one log-uniform(0.01, 1) parameter
    whose likelihood is normal in log10 c around log10 0.3 (sd 0.3)."""

    parameters = ("c",)
    map = npe.ParameterMap((Prior("c", "loguniform", 0.01, 1.0, None, None, "t"),))
    like = stats.norm(math.log10(0.3), 0.3)

    def sample(self, x_obs, n, seed):
        w = stats.truncnorm(-5, 5, loc=self.like.mean(), scale=self.like.std()).rvs(n, random_state=seed)
        w = w[(w >= -2) & (w <= 0)]  # the prior's support
        return pd.DataFrame({"c": 10.0**w})

    def log_prob(self, theta, x_obs):
        c = theta["c"].to_numpy()
        return self.like.logpdf(np.log10(c)) - np.log(c * math.log(10.0)) + 0.0  # unnormalised: a constant apart

    def member_log_probs(self, theta, x_obs):
        # two members: the exact density, and one that overshoots wherever c > 0.5 (the minimum ignores it)
        exact = self.log_prob(theta, x_obs)
        return np.stack([exact, exact + np.where(theta["c"].to_numpy() > 0.5, 3.0, 0.0)])

    def _params_matrix(self, theta):
        return theta[list(self.parameters)].to_numpy(dtype=float)


def test_the_point_is_the_draw_the_record_favours_most_not_the_one_a_log_scale_pushes_to_the_edge():
    """The point maximises the posterior's density relative to the prior (here the likelihood, peaked at
    c = 0.3) by the least favourable member (one member overshoots above c = 0.5, the mean's maximum
    would follow it); the density in value units would add the log-uniform prior's 1/c and pick c near 0.19."""
    post = _KnownPosterior()
    point = npe.NPEEnsemble.hpd_point(post, {}, n=4000, seed=5)
    assert math.log10(point["c"]) == pytest.approx(math.log10(0.3), abs=0.03)
    draws = post.sample({}, 4000, 5)
    by_value_density = draws["c"].iloc[int(np.argmax(post.log_prob(draws, {})))]
    mode = 10 ** (math.log10(0.3) - 0.3**2 * math.log(10.0))  # the value-unit mode: about 0.19
    assert by_value_density == pytest.approx(mode, rel=0.1) and by_value_density < 0.8 * point["c"]
    assert np.isfinite(point.attrs["log_ratio"]) and np.isfinite(point.attrs["log_prob"])


def test_log_prob_is_a_density_in_value_units(fitted):
    # the ensemble's density at the analytic mean is close to the analytic density there
    dists = analytic(X_OBS)
    at = pd.DataFrame({"a": [dists["a"].mean()], "b": [X_OBS["s2"]]})
    expected = dists["a"].logpdf(at["a"][0]) + dists["b"].logpdf(at["b"][0])
    assert fitted.log_prob(at, X_OBS)[0] == pytest.approx(expected, abs=0.5)
    outside = pd.DataFrame({"a": [0.0, 0.0], "b": [3.5, -3.01]})
    assert np.all(fitted.log_prob(outside, X_OBS) == -np.inf)


def test_posterior_never_leaves_the_prior_box(fitted):
    xs = pd.DataFrame({"s1": [0.0, 5.0, -5.0], "s2": [3.4, 8.0, -10.0]})
    draws = fitted.sample_many(xs, 2000, seed=5)
    assert draws.shape == (2000, 3, 2)
    assert draws[..., 1].min() >= -3 and draws[..., 1].max() <= 3


def test_save_and_load_give_identical_samples(fitted, tmp_path):
    fitted.save(tmp_path / "npe")
    again = npe.load_npe(tmp_path / "npe")
    pd.testing.assert_frame_equal(again.sample(X_OBS, 500, seed=6), fitted.sample(X_OBS, 500, seed=6))
    np.testing.assert_allclose(
        again.log_prob(fitted.sample(X_OBS, 50, seed=7), X_OBS),
        fitted.log_prob(fitted.sample(X_OBS, 50, seed=7), X_OBS),
    )
    assert (again.n_failed, again.n_used) == (3, 2000)
    assert again.fingerprint == fitted.fingerprint and len(fitted.fingerprint) == 64
    assert fitted.sample(X_OBS, 100, seed=8).equals(fitted.sample(X_OBS, 100, seed=8))
    assert not fitted.sample(X_OBS, 100, seed=8).equals(fitted.sample(X_OBS, 100, seed=9))


# --------------------------------------------------------------------------- checks


def test_calibration_checks_pass_for_npe(held):
    assert held.n_failed == 1 and held.draws.shape == (300, 200, 2)
    checks = pc.calibration_checks(held, PRIORS, seed=ROOT)
    sbc, cov, tarp = checks["sbc"], checks["coverage"], checks["tarp"]
    assert sbc.passed, sbc.data
    assert cov.passed, cov.data
    assert tarp.passed, tarp.rule
    assert checks["contraction"].passed
    assert "KS p-value" in sbc.rule and "binomial band" in cov.rule and sbc.details["n_failed"] == 1


def test_sbc_passes_exactly_uniform_integer_ranks():
    """A posterior equal to the prior is calibrated: its ranks are exactly uniform integers. sbi's c2st
    of integer ranks against a continuous uniform reads about 0.78 (it tells integers from reals);
    the check randomises the ranks, so it passes, and still fails a posterior that is too narrow."""
    rng = np.random.default_rng(5)
    m, n = 400, 300  # c2st accuracy of two 400-sample sets: sd about 0.02 around 0.5, against the 0.6 limit
    theta = pd.DataFrame({"a": rng.random(m), "b": rng.random(m)})
    x = pd.DataFrame({"s1": rng.random(m)})
    ho = pc.HeldOut(theta=theta, x=x, draws=rng.random((n, m, 2)), n_failed=0)
    sbc = pc.sbc_check(ho, seed=ROOT)
    assert sbc.passed, sbc.data
    assert (sbc.data["c2st_ranks"] < 0.6).all()
    assert sbc.details["ranks"].min() >= 0 and sbc.details["ranks"].max() <= n
    narrow = pc.HeldOut(theta=theta, x=x, draws=0.25 + 0.5 * rng.random((n, m, 2)), n_failed=0)
    assert not pc.sbc_check(narrow, seed=ROOT).passed


def test_a_narrowed_posterior_fails_coverage(fitted):
    theta, x = simulate(200, "held-out")
    ho = pc.held_out(Narrowed(fitted), PRIORS, theta, x, seed=ROOT, n_posterior=300)
    cov = pc.coverage_check(ho)
    assert not cov.passed
    assert (cov.data.loc[cov.data["level"] == 0.9, "coverage"] < 0.8).all()
    tarp = pc.tarp_check(ho, seed=ROOT)
    assert not tarp.passed and tarp.details["atc"] < 0


def test_contraction_says_what_the_record_constrains(fitted, held):
    res = pc.contraction_check(PRIORS, held, fitted.sample(X_OBS, 2000, seed=10))
    expected = {"a": 1 - (SIGMA**2 / (1 + SIGMA**2)) / 1.0, "b": 1 - SIGMA**2 / 3.0}
    for name, value in expected.items():
        assert res.data.loc[name, "at_record"] == pytest.approx(value, abs=0.1)
    assert res.passed and res.details["constrained"] == ["a", "b"]
    strict = pc.contraction_check(PRIORS, held, min_contraction=0.99)
    assert not strict.passed


def test_misspecification_checks_name_the_statistic_outside():
    _, x = simulate(1000, "table")
    x = pd.concat([x, pd.DataFrame({"s1": [np.nan], "s2": [np.nan]})], ignore_index=True)
    x["failed"] = [False] * 1000 + [True]
    typical = {"s1": 0.3, "s2": -0.5}
    odd = {"s1": 0.3, "s2": 9.0}
    assert pc.rank_check(x, typical).passed
    ranks = pc.rank_check(x, odd)
    assert not ranks.passed and ranks.details["outside"] == ["s2"]
    assert pc.mmd_check(x, typical, seed=ROOT, n_shuffle=200).passed
    mmd = pc.mmd_check(x, odd, seed=ROOT, n_shuffle=200)
    assert not mmd.passed and mmd.details["outside"] == ["s2"]


# --------------------------------------------------------------------------- pieces


def test_default_flow_saves_and_loads(tmp_path):
    theta, x = simulate(300, "nsf")
    settings = npe.NPESettings(members=1, hidden_features=8, num_transforms=1, max_num_epochs=2)
    assert settings.model == "nsf"
    fit = npe.fit_npe(PRIORS, theta, x, seed=3, settings=settings)
    again = npe.load_npe(fit.save(tmp_path / "nsf"))
    pd.testing.assert_frame_equal(again.sample(X_OBS, 100, seed=1), fit.sample(X_OBS, 100, seed=1))


def test_parameter_map_round_trip_and_jacobian():
    priors = (
        Prior("u", "uniform", 0.0, 3.0, None, None, "r"),
        Prior("l", "loguniform", 0.001, 0.03, None, None, "r"),
        Prior("n", "normal", None, None, 1.0, 2.0, "r"),
        Prior("g", "lognormal", None, None, 0.5, 0.3, "r"),
    )
    m = npe.ParameterMap(priors)
    v = np.array([[0.7, 0.004, -1.5, 0.6], [2.9, 0.029, 4.0, 1.2]])
    np.testing.assert_allclose(m.inverse(m.forward(v)), v, rtol=1e-9)
    h = 1e-6
    for j in range(4):
        dv = np.zeros_like(v)
        dv[:, j] = h * v[:, j]
        numeric = np.log(np.abs((m.forward(v + dv) - m.forward(v - dv))[:, j] / (2 * dv[:, j])))
        only_j = npe.ParameterMap((priors[j],))
        np.testing.assert_allclose(only_j.log_abs_det_forward(v[:, [j]]), numeric, rtol=1e-5, atol=1e-8)
    assert np.all(m.inside(m.inverse(np.array([[-50.0, 50.0, 0.0, 0.0]]))))


def test_reference_table_refuses_unmarked_non_finite_rows():
    theta, x = simulate(20, "small")
    x.loc[3, "s1"] = np.nan
    with pytest.raises(ValueError, match="not marked failed"):
        npe.reference_table(PRIORS, theta, x)
    table = npe.reference_table(PRIORS, theta, x, failed=np.arange(20) == 3)
    assert (table.n_total, table.n_failed, table.n_used) == (20, 1, 19)
    once, twice = (npe.table_fingerprint(PRIORS, table, SETTINGS, 1) for _ in range(2))
    assert once == twice != npe.table_fingerprint(PRIORS, table, SETTINGS, 2)


def test_import_guard_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sbi", None)
    with pytest.raises(npe.InferenceUnavailable) as info:
        npe.require_inference()
    assert str(info.value) == npe.INSTALL_HINT
    assert "\n" not in str(info.value) and "pip install 'idlib-allegiance-sim[inference]'" in str(info.value)
    theta, x = simulate(20, "small")
    with pytest.raises(npe.InferenceUnavailable):
        npe.fit_npe(PRIORS, theta, x, seed=1)
