"""``sim settle``: which observation would settle the thesis, and how reliable its probabilities are.

The simulations, the effect emulator and the ranking are
:mod:`sim.experiments.inference.npe_settle`'s; here the reliability of the thesis probabilities
on held-out simulations (:func:`thesis_reliability`), and what is written into the calibration
folder: ``settle.csv`` (the ranking), ``settle.png`` (its figure, drawn by the caller),
``thesis_reliability.csv`` / ``thesis_reliability.json``, ``settle/summary.json``, and the section
*Which observation would settle it* of ``report.md`` (replaced on every run).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.posterior_checks import reliability_check
from sim.analysis.statistics import DEFAULT_ROPE
from sim.analysis.thesis import markdown_table
from sim.experiments.engine import make_engine
from sim.experiments.inference.base import CalibrationFailed, Progress
from sim.experiments.inference.npe import NPESettings, load_npe
from sim.experiments.inference.npe_method import NPE_FOLDER, condition_mask, load_reference
from sim.experiments.inference.npe_settle import (
    BASELINE_NOISE,
    COMPARISON,
    CSV,
    EFFECT,
    NOISE,
    REFERENCE_NOISE,
    RELIABILITY,
    RELIABILITY_CSV,
    SECTION,
    SETTLE,
    EffectEmulator,
    SettleBudget,
    candidate_groups,
    grow_settle,
    noise_columns,
    rank_candidates,
)
from sim.run.record import target_value
from sim.run.store import write_csv_atomic, write_json_atomic, write_parquet, write_text_atomic
from sim.scenario.calibration import Calibration
from sim.scenario.seeds import derive_seed

__all__ = [
    "SettleResult",
    "read_reliability",
    "reliability_section",
    "reliability_text",
    "settle",
    "summary_lines",
    "thesis_reliability",
    "write_reliability",
]

RELIABILITY_SECTION = "## Reliability of these probabilities"
#: The columns of a reliability bin in the thesis report.
RELIABILITY_COLUMNS = (
    "side",
    "bin_low",
    "bin_high",
    "n",
    "mean_predicted",
    "observed",
    "interval_low",
    "interval_high",
    "inside",
)


def thesis_reliability(
    ens: Any, held: pd.DataFrame, emulator: EffectEmulator, rope: float, *, draws: int, seed: int, bins: int = 5
) -> dict[str, Any]:
    """Reliability of P(effect > +rope) and P(effect < -rope) on held-out simulations.

    At each held-out row the probability is the mean over ``draws`` posterior draws of the chance
    that one seeded paired run of a draw shows the effect (what the thesis counts per draw): the
    share of the emulator's cross-validated residuals r with m(theta) + r > +rope (resp. < -rope),
    m the emulator (:meth:`EffectEmulator.exceed`; the empirical residuals, since the effect's
    spread is skewed and a normal one put too much mass below -rope). The outcome is the row's own
    paired effect.
    :func:`~sim.analysis.posterior_checks.reliability_check` bins the two sides.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        th = ens.sample_many(held[ens.statistics], draws, seed)
    n, m, d = th.shape
    mu = emulator(th.reshape(-1, d)).reshape(n, m)
    s = max(emulator.residual_sd, 1e-9)
    eff = held["effect"].to_numpy(float)
    out: dict[str, Any] = {"rows": int(m), "rope": rope, "draws": draws, "residual_sd": s}
    frames = []
    for side, p, y in (
        ("above", emulator.exceed(mu, rope, above=True).mean(axis=0), eff > rope),
        ("below", emulator.exceed(mu, -rope, above=False).mean(axis=0), eff < -rope),
    ):
        res = reliability_check(np.clip(p, 0.0, 1.0), y.astype(int), bins=bins)
        frames.append(res.data.assign(side=side))
        out[side] = {
            "passed": bool(res.passed),
            "rule": res.rule,
            "mean_predicted": float(p.mean()),
            "observed": float(y.mean()),
        }
    out["passed"] = bool(out["above"]["passed"] and out["below"]["passed"])
    out["table"] = pd.concat(frames, ignore_index=True)
    return out


@dataclass
class SettleResult:
    """What :func:`settle` found and wrote."""

    folder: Path
    ranking: pd.DataFrame
    emulator: EffectEmulator
    reliability: dict[str, Any]
    reproduced: tuple[int, int]  # rows whose re-simulated statistics equal the stored ones, of those compared
    rows: int
    simulated: int  # rows this run simulated (the others resumed from the settle table)
    seconds: float
    budget: SettleBudget
    records: int  # posterior records the reduction is averaged over: those meeting the record's interval entries


def settle(
    cal: Calibration,
    folder: str | Path,
    budget: SettleBudget,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    rope: float = DEFAULT_ROPE,
    progress: Progress | None = print,
    draw: Callable[[Path], list[Path]] | None = None,
) -> SettleResult:
    """Simulate (or resume) the settle table, rank the candidates, check reliability, write the results.

    Raises:
        CalibrationConflict: the settle table belongs to another calibration.
        CalibrationFailed: too few successful simulations.
    """
    folder = Path(folder)
    t0 = time.perf_counter()
    engine = make_engine(workers, scheduler)
    try:
        table, doc = grow_settle(cal, folder, engine, target_value, budget, progress=progress)
    finally:
        engine.close()
    used = json.loads((folder / NPE_FOLDER / "used.json").read_text(encoding="utf-8"))
    stats = list(used["statistics"])
    held_out = float(used["held_out"])
    paths = [p.path for p in cal.priors]
    reference, rdoc = load_reference(folder)
    ok = table[~table["failed"].to_numpy(bool)]
    # the record's interval entries hold for the training rows and for every record ranked on
    ok = ok[condition_mask(ok, rdoc["statistics"])]
    ref = ok[ok["set"] == "reference"]
    train = ref[ref["split"] >= held_out].reset_index(drop=True)
    held = ref[ref["split"] < held_out].reset_index(drop=True)
    evaluate = ok[ok["set"] == "posterior"].reset_index(drop=True)
    if len(train) < 20 or len(evaluate) < 2:
        raise CalibrationFailed(
            f"{folder}: {len(train)} successful training rows and {len(evaluate)} posterior records: "
            "raise --simulations or --evaluations"
        )
    stored = reference.set_index("draw").loc[ref["draw"].to_numpy(), stats].to_numpy(float)
    same = np.all(np.isclose(stored, ref[stats].to_numpy(float), rtol=1e-9, atol=1e-12), axis=1)
    emulator = EffectEmulator.fit(cal.priors, train[paths].to_numpy(float), train["effect"].to_numpy(float), cal.seed)
    groups = candidate_groups(doc["towns"], [p[0] for p in doc["periods"]])
    width = len(doc["periods"])
    groups[NOISE] = [f"{REFERENCE_NOISE}:{j}" for j in range(width)]

    def with_noise(rows: pd.DataFrame) -> pd.DataFrame:
        extra = [noise_columns(rows, cal.seed, label, width) for label in (BASELINE_NOISE, REFERENCE_NOISE)]
        return pd.concat([rows, *extra], axis=1)

    train, evaluate = with_noise(train), with_noise(evaluate)
    settings = NPESettings(
        model="maf",
        members=budget.members,
        hidden_features=32,
        num_transforms=3,
        max_num_epochs=budget.max_epochs,
        stop_after_epochs=20,
        validation_fraction=0.2,
        training_batch_size=int(min(200, max(20, len(train) // 10))),
    )
    ranking = _stored_ranking(folder, key := _ranking_key(train, evaluate, stats, groups, settings, cal.seed, budget))
    if ranking is None:
        ranking = rank_candidates(
            cal.priors,
            train,
            evaluate,
            stats,
            groups,
            emulator,
            settings=settings,
            seed=cal.seed,
            draws=budget.draws,
            progress=progress,
        )
        write_parquet(ranking, folder / SETTLE / RANKING)
        write_json_atomic({"key": key}, folder / SETTLE / RANKING_KEY)
    elif progress is not None:
        progress("settle: the ranking's inputs are unchanged; read back from settle/ranking.parquet (no flows trained)")
    if len(held) >= 5:
        reliability = thesis_reliability(
            load_npe(folder / NPE_FOLDER),
            held,
            emulator,
            rope,
            draws=budget.draws,
            seed=derive_seed(cal.seed, "settle reliability"),
        )
    else:
        reliability = {
            "rows": len(held),
            "passed": False,
            "rope": rope,
            "table": pd.DataFrame(),
            "note": f"only {len(held)} held-out rows simulated: raise --simulations",
        }
    result = SettleResult(
        folder=folder,
        ranking=ranking,
        emulator=emulator,
        reliability=reliability,
        reproduced=(int(same.sum()), len(same)),
        rows=len(table),
        simulated=int(doc["simulated"]),
        seconds=time.perf_counter() - t0,
        budget=budget,
        records=len(evaluate),
    )
    _write(result, len(train), len(held), doc, draw)
    return result


#: The ranking of a finished settle and the hash of everything it was computed from (resume: no retraining).
RANKING, RANKING_KEY = "ranking.parquet", "ranking_key.json"


def _ranking_key(
    train: pd.DataFrame,
    evaluate: pd.DataFrame,
    stats: list[str],
    groups: dict[str, list[str]],
    settings: NPESettings,
    seed: int,
    budget: SettleBudget,
) -> str:
    """sha256 of the ranking's inputs: the training and evaluation rows (every column), the record's
    statistics, the candidates, the flows' settings, the seed and the number of posterior draws."""
    h = hashlib.sha256()
    for frame in (train, evaluate):
        h.update(",".join(map(str, frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    blob = {"stats": stats, "groups": groups, "settings": repr(settings), "seed": seed, "draws": budget.draws}
    h.update(json.dumps(blob, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _stored_ranking(folder: Path, key: str) -> pd.DataFrame | None:
    """The stored ranking when it was computed from exactly these inputs, else None (then it is recomputed)."""
    try:
        stored = json.loads((folder / SETTLE / RANKING_KEY).read_text(encoding="utf-8"))
        if not isinstance(stored, dict) or stored.get("key") != key:
            return None
        return pd.read_parquet(folder / SETTLE / RANKING)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- output


def _reliability_line(rel: dict[str, Any]) -> str:
    if "above" not in rel:
        return f"reliability of the thesis probabilities: not checked ({rel.get('note', 'no held-out rows')})"
    a, b = rel["above"], rel["below"]
    return (
        f"reliability of the thesis probabilities on {rel['rows']} held-out simulations (ROPE {rel['rope']:g}): "
        f"{'PASS' if rel['passed'] else 'FAIL'}; P(effect > +ROPE) mean {a['mean_predicted']:.2f} vs observed "
        f"{a['observed']:.2f} ({'inside' if a['passed'] else 'OUTSIDE'} its bands); P(effect < -ROPE) mean "
        f"{b['mean_predicted']:.2f} vs observed {b['observed']:.2f} ({'inside' if b['passed'] else 'OUTSIDE'})"
    )


def summary_lines(result: SettleResult, top: int = 5) -> list[str]:
    """What ``sim settle`` prints: the top candidates, the noise reference, the emulator, reliability."""
    r = result.ranking
    noise = r[r["candidate"] == NOISE]
    lines = [
        f"which observation would settle it ({COMPARISON.label}, {EFFECT}): expected reduction in the posterior "
        f"sd of the effect, mean over the {result.records} of {int(result.budget.evaluations)} records simulated "
        "from the posterior that meet the record's interval entries (± Monte Carlo error)"
    ]
    for row in r.head(top).itertuples(index=False):
        if isinstance(row.reduction, float) and math.isfinite(row.reduction):
            lines.append(
                f"  {row.rank}. {row.candidate}: {row.reduction:+.3g} ± {row.mcse:.2g} "
                f"({row.relative_reduction:+.0%} of sd {row.sd_without:.3g})"
            )
    if len(noise) and math.isfinite(float(noise["reduction"].iloc[0])):
        n = noise.iloc[0]
        lines.append(f"  reference, pure noise (rank {int(n['rank'])}): {n['reduction']:+.3g} ± {n['mcse']:.2g}")
    e = result.emulator
    lines.append(
        f"effect emulator (quadratic ridge on {e.n} paired runs): cross-validated R^2 {e.cv_r2:.2f}, "
        f"residual sd {e.residual_sd:.4f}"
    )
    lines.append(
        f"re-simulated reference rows with their stored statistics: {result.reproduced[0]} of {result.reproduced[1]}"
    )
    lines.append(
        f"settle table: {result.rows} rows, {result.simulated} simulated by this run "
        f"(the others resumed from {SETTLE}/table.parquet)"
    )
    lines.append(_reliability_line(result.reliability))
    lines.append(f"tables: {result.folder / CSV}, {result.folder / RELIABILITY_CSV} ({result.seconds:.0f} s)")
    return lines


def write_reliability(reliability: dict[str, Any], folder: str | Path) -> None:
    """A :func:`thesis_reliability` result as ``thesis_reliability.csv`` (its bins, when it has any) and
    ``thesis_reliability.json`` (the verdicts and the same bins under ``bins``)."""
    folder = Path(folder)
    rel = dict(reliability)
    table = rel.pop("table")
    if len(table):
        write_csv_atomic(table, folder / RELIABILITY_CSV, float_format="%.6g")
    rel["bins"] = json.loads(table.to_json(orient="records")) if len(table) else []
    write_json_atomic(rel, folder / RELIABILITY)


def _write(result: SettleResult, n_train: int, n_held: int, doc: dict[str, Any], draw) -> None:
    folder = result.folder
    write_csv_atomic(result.ranking, folder / CSV, float_format="%.6g")
    write_reliability(result.reliability, folder)
    e = result.emulator
    write_json_atomic(
        {
            "rows": result.rows,
            "simulated": result.simulated,
            "training_rows": n_train,
            "held_out_rows": n_held,
            "posterior_records": result.records,
            "budget": result.budget.__dict__,
            "emulator": {"rows": e.n, "penalty": e.penalty, "cv_r2": e.cv_r2, "residual_sd": e.residual_sd},
            "reproduced": list(result.reproduced),
            "towns": doc["towns"],
            "periods": doc["periods"],
            "seconds": round(result.seconds, 1),
        },
        folder / SETTLE / "summary.json",
    )
    if draw is not None:
        draw(folder)
    section = [
        SECTION,
        "",
        *[line.strip() if not line.startswith("  ") else f"- {line.strip()}" for line in summary_lines(result)],
        "",
        "![settle](settle.png)",
        "",
        f"How: every reference row up to {result.budget.simulations} was simulated again with its own parameters and "
        f"seed, keeping candidate observables the record does not hold (per resisting town: cooperation, protest, "
        f"council independent, held by HTS; governorate: cooperation, protest, councils independent, returns, HTS "
        f"recruits; one value per period: {', '.join(p[0] for p in doc['periods'])}), and ran the paired comparison "
        f"{COMPARISON.label} on {EFFECT}. An emulator of that effect (quadratic ridge on the parameters) turns "
        "posterior draws into effect draws. For each candidate, an NPE on the record's statistics plus the candidate "
        "and one on the statistics plus as many columns of pure noise (so a flow's change with more inputs is not "
        f"counted as information) were trained on the same {n_train} rows; at {result.records} records simulated "
        "from the posterior, the reduction is the difference of the effect's posterior sd. A column of pure noise "
        "is ranked as the reference. Reliability: the calibration's ensemble at each of the "
        f"{n_held} held-out rows, against that row's own paired effect. Tables: `{CSV}`, `{RELIABILITY_CSV}`, "
        f"`{RELIABILITY}`, `{SETTLE}/table.parquet`, `{SETTLE}/summary.json`.",
        "",
    ]
    report = folder / "report.md"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    if SECTION in text:
        text = text[: text.index(SECTION)].rstrip() + "\n"
    write_text_atomic((text + "\n" if text else "") + "\n".join(section), report)


def read_reliability(folder: str | Path) -> str | None:
    """The reliability line of a calibration folder's ``thesis_reliability.json``, or None if not run."""
    path = Path(folder) / RELIABILITY
    if not path.exists():
        return None
    try:
        return _reliability_line(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return f"reliability of the thesis probabilities: {path} cannot be read; re-run sim settle"


def reliability_text(folder: str | Path) -> str:
    """The reliability line of a calibration folder, or that it was not checked yet and how to check it."""
    return (
        read_reliability(folder) or f"reliability of the thesis probabilities: not checked yet: run sim settle {folder}"
    )


def reliability_section(folder: str | Path) -> list[str]:
    """The section of the posterior thesis report on the reliability of its probabilities: the line of
    :func:`reliability_text` and, when ``sim settle`` checked it, the predicted and observed frequency
    of every bin."""
    lines = [RELIABILITY_SECTION, "", reliability_text(folder), ""]
    try:
        bins = json.loads((Path(folder) / RELIABILITY).read_text(encoding="utf-8")).get("bins") or []
        table = pd.DataFrame(bins)[[*RELIABILITY_COLUMNS]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return lines
    lines += [
        markdown_table(table),
        "",
        f"Each bin of the predicted probability (per side: P(effect > +ROPE), P(effect < -ROPE)) on the held-out "
        f"simulations of the calibration: the mean prediction, the observed frequency and its Clopper-Pearson "
        f"interval; the check passes when every mean prediction lies in its interval. Table: `{folder}/"
        f"{RELIABILITY_CSV}`.",
        "",
    ]
    return lines
