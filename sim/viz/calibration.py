"""Calibration figures: posterior marginals against priors, pairs plot, predictive check, posterior effects.

Drawn from the tables a calibration folder holds (never from a running calibration): the CLI
passes :func:`draw_calibration_figures` and :func:`draw_posterior_thesis_figures` as ``draw`` hooks.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sim.viz.style import PALETTE, style

PRIOR_COLOUR = "#999999"
POSTERIOR_COLOUR = PALETTE["blue"]
RECORD_COLOUR = PALETTE["red"]
ROLE_COLOURS = {"calibration": PALETTE["blue"], "validation": PALETTE["orange"]}


def _final(posterior: pd.DataFrame) -> pd.DataFrame:
    last = posterior[posterior["generation"] == posterior["generation"].max()].copy()
    last["weight"] = last["weight"] / last["weight"].sum()
    return last


def plot_marginals(marginals: pd.DataFrame, posterior: pd.DataFrame, save: Path | None = None) -> plt.Figure:
    """Each parameter's posterior (weighted histogram of the final population) inside its prior's 90% interval."""
    last = _final(posterior)
    n = len(marginals)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    with style():
        fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.2 * rows), squeeze=False)
        for ax, r in zip(axes.flat, marginals.itertuples(index=False), strict=False):
            x = last[r.parameter].to_numpy(dtype=float)
            log = r.prior.startswith(("loguniform", "lognormal"))
            lo, hi = float(r.prior_low), float(r.prior_high)
            span = (np.log10(lo), np.log10(hi)) if log and lo > 0 else (lo, hi)
            bins = np.logspace(span[0], span[1], 16) if log and lo > 0 else np.linspace(lo, hi, 16)
            ax.axvspan(lo, hi, color=PRIOR_COLOUR, alpha=0.15, label="prior 90%")
            ax.hist(np.clip(x, bins[0], bins[-1]), bins=bins, weights=last["weight"], color=POSTERIOR_COLOUR, alpha=0.8)
            ax.axvline(float(r.posterior_median), color="black", lw=1)
            ax.axvline(float(r.posterior_low), color="black", lw=0.8, ls=":")
            ax.axvline(float(r.posterior_high), color="black", lw=0.8, ls=":")
            if log and lo > 0:
                ax.set_xscale("log")
            ax.set_title(f"{r.parameter}\n{r.record}", fontsize=8)
            ax.set_yticks([])
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.suptitle("Posterior (histogram, median and 90% interval) against the prior's 90% interval (grey)")
        fig.tight_layout()
        if save is not None:
            fig.savefig(save)
    return fig


def plot_pairs(marginals: pd.DataFrame, posterior: pd.DataFrame, save: Path | None = None) -> plt.Figure:
    """Pairs plot of the final population (point size by weight), diagonal: weighted histograms."""
    last = _final(posterior)
    names = list(marginals["parameter"])
    n = len(names)
    size = 20 + 80 * last["weight"].to_numpy() / last["weight"].max()
    with style():
        fig, axes = plt.subplots(n, n, figsize=(1.3 * n + 1, 1.3 * n + 1), squeeze=False)
        for i, yi in enumerate(names):
            for j, xj in enumerate(names):
                ax = axes[i, j]
                ax.grid(False)
                if i == j:
                    ax.hist(last[xj], bins=12, weights=last["weight"], color=POSTERIOR_COLOUR)
                elif i > j:
                    ax.scatter(last[xj], last[yi], s=size * 0.1, color=POSTERIOR_COLOUR, alpha=0.5, linewidths=0)
                else:
                    ax.set_visible(False)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == n - 1:
                    ax.set_xlabel(xj.split(".")[-1], fontsize=6, rotation=45)
                if j == 0:
                    ax.set_ylabel(yi.split(".")[-1], fontsize=6, rotation=0, ha="right")
        fig.suptitle("Final ABC population: pairs of parameters")
        if save is not None:
            fig.savefig(save)
    return fig


def plot_predictive(predictive: pd.DataFrame, save: Path | None = None) -> plt.Figure:
    """Each target's 90% predictive band and median against the record (interval or bound), by role."""
    p = predictive.reset_index(drop=True)
    with style():
        fig, axes = plt.subplots(len(p), 1, figsize=(7, 0.8 * len(p) + 0.8), squeeze=False)
        for ax, r in zip(axes[:, 0], p.itertuples(index=False), strict=True):
            colour = ROLE_COLOURS.get(r.role, "black")
            ax.plot([r.band_low, r.band_high], [0, 0], color=colour, lw=6, alpha=0.6, solid_capstyle="butt")
            ax.plot([r.median], [0], "o", color="black", ms=4)
            lo = r.record_low if np.isfinite(r.record_low) else r.recorded
            hi = r.record_high if np.isfinite(r.record_high) else r.recorded
            ax.plot([lo, hi], [0.35, 0.35], color=RECORD_COLOUR, lw=2)
            ax.plot([r.recorded], [0.35], "D", color=RECORD_COLOUR, ms=4)
            ax.set_ylim(-0.6, 0.8)
            ax.set_yticks([])
            ax.set_title(f"{r.target} ({r.role}{', covered' if r.covered else ', missed'})", fontsize=8, loc="left")
        fig.suptitle("Posterior predictive 90% band (bar) and median (dot) against the record (red)")
        fig.tight_layout()
        if save is not None:
            fig.savefig(save)
    return fig


def plot_sbc_ranks(ranks: pd.DataFrame, n_posterior: int, save: Path | None = None, bins: int = 10) -> plt.Figure:
    """One rank histogram per parameter (SBC): counts per bin against the 99% band of a uniform rank."""
    from scipy import stats

    n = ranks.shape[1]
    cols = min(4, n)
    rows = math.ceil(n / cols)
    m = len(ranks)
    lo, hi = stats.binom.ppf([0.005, 0.995], m, 1 / bins)
    with style():
        fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, ranks.columns, strict=False):
            ax.axhspan(lo, hi, color=PRIOR_COLOUR, alpha=0.3, lw=0, label="99% band (uniform)")
            ax.axhline(m / bins, color=PRIOR_COLOUR, lw=1)
            ax.hist(ranks[name].to_numpy(), bins=bins, range=(0, n_posterior), color=POSTERIOR_COLOUR, alpha=0.85)
            ax.set_title(name.split(".")[-1], fontsize=9)
            ax.set_xlabel("rank of the truth")
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        axes.flat[0].set_ylabel("held-out simulations")
        axes.flat[0].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"SBC rank histograms ({m} held-out simulations, {n_posterior} posterior draws each)")
        fig.tight_layout()
        if save is not None:
            fig.savefig(save, dpi=120)
    return fig


def draw_calibration_figures(folder: Path) -> list[Path]:
    """``marginals.png``, ``pairs.png`` and ``predictive.png`` of a calibration folder (and, for an
    npe folder, ``sbc_ranks.png``)."""
    folder = Path(folder)
    marg = pd.read_csv(folder / "marginals.csv")
    post = pd.read_parquet(folder / "posterior.parquet")
    ppc = pd.read_csv(folder / "predictive.csv")
    out = []
    for name, fn in (
        ("marginals.png", lambda p: plot_marginals(marg, post, p)),
        ("pairs.png", lambda p: plot_pairs(marg, post, p)),
        ("predictive.png", lambda p: plot_predictive(ppc, p)),
    ):
        path = folder / name
        plt.close(fn(path))
        out.append(path)
    if (folder / "sbc_ranks.csv").exists() and (folder / "checks.json").exists():
        import json

        n_post = int(json.loads((folder / "checks.json").read_text()).get("sbc_n_posterior", 300))
        path = folder / "sbc_ranks.png"
        plt.close(plot_sbc_ranks(pd.read_csv(folder / "sbc_ranks.csv"), n_post, path))
        out.append(path)
    return out


def plot_posterior_effects(effects: pd.DataFrame, probabilities: pd.DataFrame, save: Path | None = None) -> plt.Figure:
    """Distribution of each comparison's effect on the headline outcomes over posterior and prior draws."""
    outcomes = ["coop_resisting_home_mean", "coop_resisting_mean"]
    comps = list(dict.fromkeys(effects["comparison"]))
    with style():
        fig, axes = plt.subplots(len(comps), len(outcomes), figsize=(7, 2.0 * len(comps) + 0.6), squeeze=False)
        for i, c in enumerate(comps):
            for j, o in enumerate(outcomes):
                ax = axes[i, j]
                rope = float(probabilities.loc[probabilities["outcome"] == o, "rope"].iloc[0])
                for source, colour in (("prior", PRIOR_COLOUR), ("posterior", POSTERIOR_COLOUR)):
                    d = effects[(effects["comparison"] == c) & (effects["draws_from"] == source)][o].dropna()
                    if len(d):
                        ax.hist(d, bins=20, color=colour, alpha=0.6, density=True, label=source)
                ax.axvspan(-rope, rope, color="black", alpha=0.08, label="ROPE")
                ax.axvline(0, color="black", lw=0.8)
                ax.set_title(f"{c}\n{'by home town' if 'home' in o else 'by current town'}", fontsize=8)
                ax.set_yticks([])
                if i == 0 and j == 0:
                    ax.legend()
        fig.suptitle("Effect on cooperation with HTS in resisting towns: posterior vs prior draws")
        fig.tight_layout()
        if save is not None:
            fig.savefig(save)
    return fig


def draw_posterior_thesis_figures(folder: Path) -> list[Path]:
    """``posterior_effects.png`` of a posterior thesis folder."""
    folder = Path(folder)
    eff = pd.read_parquet(folder / "effects.parquet")
    probs = pd.read_csv(folder / "probabilities.csv")
    path = folder / "posterior_effects.png"
    plt.close(plot_posterior_effects(eff, probs, path))
    return [path]
