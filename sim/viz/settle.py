"""The figure of ``sim settle``: candidates ranked by the expected reduction in the thesis effect's spread."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sim.viz.style import PALETTE, style

NOISE = "noise (reference)"  # the reference candidate (sim.experiments.inference.npe_settle.NOISE)


def plot_settle(ranking: pd.DataFrame, top: int = 15, save: Path | None = None) -> plt.Figure:
    """Horizontal bars of the expected reduction ± 2 Monte Carlo errors, best on top; the noise reference in grey."""
    r = ranking[np.isfinite(ranking["reduction"].to_numpy(dtype=float))]
    shown = r.head(top)
    if NOISE in set(r["candidate"]) and NOISE not in set(shown["candidate"]):
        shown = pd.concat([shown, r[r["candidate"] == NOISE]])
    shown = shown.iloc[::-1]
    with style():
        fig, ax = plt.subplots(figsize=(7.0, 0.35 * len(shown) + 1.2))
        colours = ["#999999" if c == NOISE else PALETTE["blue"] for c in shown["candidate"]]
        y = np.arange(len(shown))
        ax.barh(y, shown["reduction"], xerr=2 * shown["mcse"].fillna(0), color=colours, capsize=2)
        ax.set_yticks(y, shown["candidate"])
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("expected reduction in the posterior sd of the thesis effect (± 2 MC errors)")
        ax.set_title("Which observation would settle it")
        fig.tight_layout()
        if save is not None:
            fig.savefig(save, dpi=120)
    return fig


def draw_settle_figures(folder: Path) -> list[Path]:
    """``settle.png`` of a calibration folder from its ``settle.csv``."""
    path = Path(folder) / "settle.png"
    plt.close(plot_settle(pd.read_csv(Path(folder) / "settle.csv"), save=path))
    return [path]
