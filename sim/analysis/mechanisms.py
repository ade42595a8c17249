"""What drives the result: the mechanism audit of a scenario, at its own values or over posterior draws.

``sim mechanisms SCENARIO [--posterior FOLDER]`` answers, each with its Monte Carlo error, the
questions a reader of the thesis verdict should ask of the model (issue "mechanisms with their
literature's sign and size"):

1. **Decomposition** of the change in cooperation with HTS among the people of resisting towns (by
   home town, first to last day): the same run with one mechanism switched off (its strength 0),
   the change it accounts for (``change(all on) - change(it off)``) and its share of the change,
   and all mechanisms off together.
2. **What carries the thesis effect**: the paired effect (below) as calibrated, with one mechanism
   switched off in both arms of the same pair, then all seven, then all seven and the regime's
   blame share: how much of the effect each carries, and in what share of (draw, seed) pairs it
   pushes the effect toward the thesis.
3. **Verdicts under favouring and disfavouring settings**: the paired thesis effect (strikes on
   resisting towns minus no strikes, common random numbers) on the headline outcomes, as
   calibrated, at the settings most favourable to the thesis inside the priors (rally at its
   prior's top, blame on HTS for drawing strikes at its bottom, all of the grievance against the
   regime favouring HTS) and least favourable (the reverse). A model that can only say one thing
   tests nothing: the two must be able to differ.
4. **The mirror**: strikes stopped after ``stop`` (default 10 February 2018, when the record
   says the campaign eased) against strikes continued, on the mean of ``window`` (20-28
   February): cooperation, resistance and protest in resisting towns and rival alignment.
5. **Rival offensives**: whether armed rivals attack HTS-held towns in the run (never scripted):
   the share of runs with one, how many, the first date, and how many in the record's rival war
   (19 February - 24 April 2018).
6. **The largest conversion inside the prior box** (:func:`sim.analysis.thesis.largest_conversion`), under the
   scenario's own campaign and under the thesis's counterfactual (every sortie on resisting towns).

Every row of the audit is one (draw, seed) task on the engine (local pool or dask); the report,
its tables and ``manifest.json`` (seed, draws, code version, scenario hash) go in the output folder.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.statistics import DEFAULT_ROPE, monte_carlo_error, verdict
from sim.analysis.thesis import largest_conversion, markdown_table, rope_for
from sim.experiments.comparisons import CONTROL, OUTCOMES, POLICY, TREATMENT
from sim.experiments.engine import make_engine
from sim.run.provenance import stamp
from sim.run.store import write_csv_atomic, write_folder, write_json_atomic, write_text_atomic
from sim.scenario.seeds import derive_seed, generator

#: The campaigns the largest-conversion search runs under: (label, overrides).
CONVERSION_CAMPAIGNS: tuple[tuple[str, list[str]], ...] = (
    ("the scenario's campaign", []),
    ("every sortie on resisting towns", [f"{POLICY}={TREATMENT}"]),
)

#: Mechanisms switched off one at a time (strength 0): the eight strengths less the regime's blame
#: share (a split of harm between perpetrators, with no "off").
MECHANISMS = ("rally", "institutions", "suppression", "pretext_blame", "exit", "control", "consolidation")
#: Outcomes of the paired thesis effect in the verdict table.
THESIS_OUTCOMES = ("coop_resisting_home_mean", "coop_resisting_mean", "protest_resisting_mean", "rival_alignment_final")
#: Outcomes whose paired thesis effect is decomposed by mechanism (the headline by home town, and by current town).
EFFECT_DECOMPOSITION_OUTCOMES = ("coop_resisting_home_mean", "coop_resisting_mean")
#: Labels of the effect decomposition's combined rows.
EFFECT_OFF_LABELS = {"all": "all seven", "all+regime_blame": "all seven and regime blame"}
#: Governorate series of the mirror (mean over the window), with the sign rally predicts when strikes stop.
MIRROR_SERIES: dict[str, str] = {
    "coop_share_resisting_home": "cooperation, resisting towns, by home town",
    "coop_share_resisting": "cooperation, resisting towns, by current town",
    "resist_share_resisting": "resistance, resisting towns, by current town",
    "protest_share_resisting": "protest, resisting towns",
    "rival_alignment_mean": "rival groups' alignment with HTS",
}
DECLINE = "coop_share_resisting_home"
RIVAL_WAR = ("2018-02-19", "2018-04-24")


@dataclass(frozen=True)
class AuditSettings:
    """How much the audit runs."""

    draws: int = 20  # posterior draws (a scenario without --posterior: its own values, once)
    seeds: int = 2  # seeds per draw
    sample_fraction: float = 0.02
    conversion_draws: int = 40  # Latin-hypercube points of the largest-conversion search
    stop: str = "2018-02-10"  # last day of strikes in the mirror's "stopped" arm
    window: tuple[str, str] = ("2018-02-20", "2018-02-28")
    seed: int = 0
    rope: float = DEFAULT_ROPE

    @classmethod
    def quick(cls) -> AuditSettings:
        """A few minutes on 2 cores."""
        return cls(draws=4, seeds=1, conversion_draws=8)


# --------------------------------------------------------------------------- one task


def _scenario(base: dict[str, Any], values: dict[str, Any]):
    from pydantic import ValidationError

    from sim.scenario.loader import set_path
    from sim.scenario.schema import Scenario

    data = copy.deepcopy(base)
    for path, v in values.items():
        set_path(data, path.split("."), v)
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"invalid parameters: {e.errors()[0].get('msg', 'invalid')}") from None


def _window_mean(ts: pd.DataFrame, column: str, start: str, end: str) -> float:
    dates = pd.to_datetime(ts["date"])
    inside = (dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))
    return float(ts.loc[inside, column].mean()) if inside.any() else math.nan


def _rival_attacks(events: pd.DataFrame, start: str, end: str) -> dict[str, float]:
    """Attacks by armed rivals on HTS-held towns, from a run's events (control changes out of HTS hands
    that the run itself produced: the regime's advance and HTS's own moves excluded)."""
    cc = events[(events["event"] == "control_change") & (events["controller_from"] == "hts")]
    cc = cc[~cc["controller_to"].isin(["regime", "hts"]) & ~cc["note"].str.startswith("regime")]
    dates = pd.to_datetime(cc["date"])
    war = (dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))
    taken = events[
        (events["event"] == "control_change")
        & events["note"].str.startswith("taken by")
        & ~events["controller_to"].isin(["hts", "regime", "local", "contested"])
    ]
    return {
        "rival_attacks": float(len(cc)),
        "rival_attacks_in_war": float(war.sum()),
        "rival_first_day": float(cc["day"].min()) if len(cc) else math.nan,
        "rival_takes": float(len(taken)),
    }


def audit_task(task: dict[str, Any], context: dict[str, Any]) -> dict[str, float]:
    """Engine model function: every run of one (draw, seed) of the audit (see the module docstring)."""
    from sim.run.outcomes import compute_outcomes
    from sim.run.simulate import simulate

    base, values, seed = context["base"], task["params"], int(task["seed"])
    out: dict[str, float] = {}

    def run(extra: dict[str, Any], s: int = seed):
        return simulate(_scenario(base, {**values, **extra}), s, household_agents=False).frames

    frames = run({})
    ts = frames["timeseries"]
    change = float(ts[DECLINE].iloc[-1] - ts[DECLINE].iloc[0])
    out["start"], out["change"] = float(ts[DECLINE].iloc[0]), change
    for m in MECHANISMS:
        off = run({f"mechanisms.{m}": 0.0})["timeseries"][DECLINE]
        out[f"off:{m}"] = float(off.iloc[-1] - off.iloc[0])
    none = run({f"mechanisms.{m}": 0.0 for m in MECHANISMS})["timeseries"][DECLINE]
    out["off:all"] = float(none.iloc[-1] - none.iloc[0])
    start, end = context["window"]
    stopped = run({"air_campaign.end": {"date": context["stop"]}})["timeseries"]
    for col in MIRROR_SERIES:
        out[f"mirror:{col}"] = _window_mean(stopped, col, start, end) - _window_mean(ts, col, start, end)
        out[f"continued:{col}"] = _window_mean(ts, col, start, end)
    out.update(_rival_attacks(frames["events"], *context["rival_war"]))
    paired = derive_seed(seed, "mechanisms", "thesis")

    def arms_of(setting: dict[str, Any]) -> dict[str, dict[str, float]]:
        """The thesis outcomes of both arms of one pair (strikes on resisting towns, none) under ``setting``."""
        return {
            policy: compute_outcomes(
                run({**setting, POLICY: policy}, paired)["timeseries"], THESIS_OUTCOMES, context["summary_window"]
            )
            for policy in (TREATMENT, CONTROL)
        }

    for label, setting in context["settings"].items():
        arms = arms_of(setting)
        for o in THESIS_OUTCOMES:
            out[f"effect:{label}:{o}"] = float(arms[TREATMENT][o] - arms[CONTROL][o])
            out[f"control:{label}:{o}"] = float(arms[CONTROL][o])
    # What carries the paired effect: the same pair (same seed) as calibrated, one mechanism off, then all.
    offs = {m: {f"mechanisms.{m}": 0.0} for m in MECHANISMS}
    offs["all"] = {f"mechanisms.{m}": 0.0 for m in MECHANISMS}
    # and what is left then: harm blamed on its perpetrator (a split, with no "off" of its own) set to 0 too
    offs["all+regime_blame"] = {**offs["all"], "mechanisms.regime_blame": 0.0}
    for m, setting in offs.items():
        arms = arms_of(setting)
        for o in THESIS_OUTCOMES:
            out[f"effect_off:{m}:{o}"] = float(arms[TREATMENT][o] - arms[CONTROL][o])
    return out


# --------------------------------------------------------------------------- the audit


@dataclass
class Audit:
    """The audit's tables and what it ran."""

    rows: pd.DataFrame  # one row per (draw, seed): every measured value
    decomposition: pd.DataFrame
    effect_decomposition: pd.DataFrame
    verdicts: pd.DataFrame
    mirror: pd.DataFrame
    rivals: pd.DataFrame
    conversion: pd.DataFrame | None
    settings: AuditSettings
    source: str  # where the parameter values came from
    failed: int


#: The share of grievance against the regime that favours HTS (decision 31): not among the calibration's
#: priors, so its whole range bounds the favouring and disfavouring settings.
RHO = "choice.regime_grievance_to_hts"


def favouring_settings(priors: Any) -> dict[str, dict[str, float]]:
    """The settings of the verdict table: as calibrated; rally at its prior's top, pretext blame at its
    bottom and all of the grievance against the regime favouring HTS (favouring the thesis); the reverse
    (disfavouring). Bounds from the calibration priors; rho's whole range where it has no prior."""
    bounds = {p.path: p.bounds() for p in priors}
    rally = bounds.get("mechanisms.rally", (0.0, 3.0))
    pretext = bounds.get("mechanisms.pretext_blame", (0.0, 0.4))
    rho = bounds.get(RHO, (0.0, 1.0))
    return {
        "as calibrated": {},
        "favouring": {"mechanisms.rally": rally[1], "mechanisms.pretext_blame": pretext[0], RHO: rho[1]},
        "disfavouring": {"mechanisms.rally": rally[0], "mechanisms.pretext_blame": pretext[1], RHO: rho[0]},
    }


def parameter_points(posterior: pd.DataFrame | None, paths: list[str], n: int, seed: int) -> list[dict[str, float]]:
    """``n`` draws (weighted, with replacement, seeded) from a posterior table; none: the scenario itself."""
    if posterior is None:
        return [{}]
    final = posterior[posterior["generation"] == posterior["generation"].max()]
    w = final["weight"].to_numpy(float)
    idx = generator(seed, "mechanisms", "draws").choice(len(final), size=n, replace=True, p=w / w.sum())
    return [{p: float(final.iloc[i][p]) for p in paths} for i in idx]


def _mean_se(x: pd.Series) -> tuple[float, float]:
    v = x.to_numpy(float)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else math.nan), monte_carlo_error(v)


def tabulate(rows: pd.DataFrame, settings: dict[str, dict[str, float]], rope: float) -> dict[str, pd.DataFrame]:
    """The four tables of the audit from its rows."""
    change, se = _mean_se(rows["change"])
    dec = [{"switched off": "(none: all on)", "change": change, "change_se": se, "accounts_for": 0.0}]
    for m in [*MECHANISMS, "all"]:
        c, s = _mean_se(rows[f"off:{m}"])
        diff, dse = _mean_se(rows["change"] - rows[f"off:{m}"])
        dec.append(
            {
                "switched off": m if m != "all" else "all seven",
                "change": c,
                "change_se": s,
                "accounts_for": diff,
                "accounts_for_se": dse,
                "share_of_change": diff / change if change else math.nan,
            }
        )
    eff_dec = []
    for o in EFFECT_DECOMPOSITION_OUTCOMES:
        whole = rows[f"effect:as calibrated:{o}"]
        m, se_ = _mean_se(whole)
        eff_dec.append({"outcome": OUTCOMES[o][0], "switched off": "(none: all on)", "effect": m, "effect_se": se_})
        for k in [*MECHANISMS, "all", "all+regime_blame"]:
            off = rows[f"effect_off:{k}:{o}"]
            e, es = _mean_se(off)
            diff = whole - off
            d, ds = _mean_se(diff)
            eff_dec.append(
                {
                    "outcome": OUTCOMES[o][0],
                    "switched off": EFFECT_OFF_LABELS.get(k, k),
                    "effect": e,
                    "effect_se": es,
                    "accounts_for": d,
                    "accounts_for_se": ds,
                    "share_of_effect": d / m if m else math.nan,
                    "p_accounts_for_positive": float((diff > 0).mean()),
                }
            )
    verdicts = []
    for label in settings:
        for o in THESIS_OUTCOMES:
            eff = rows[f"effect:{label}:{o}"]
            m, s = _mean_se(eff)
            r = rope_for(o, rope, float(rows[f"control:{label}:{o}"].mean()))
            lo, hi = m - 1.96 * s, m + 1.96 * s
            verdicts.append(
                {
                    "setting": label,
                    "outcome": OUTCOMES[o][0],
                    "effect": m,
                    "mcse": s,
                    "rope": r,
                    "p_above": float((eff > r).mean()),
                    "p_within": float(((eff >= -r) & (eff <= r)).mean()),
                    "p_below": float((eff < -r).mean()),
                    "verdict_of_mean": verdict(lo, hi, OUTCOMES[o][1], r),
                }
            )
    mirror = []
    for col, label in MIRROR_SERIES.items():
        d = rows[f"mirror:{col}"]
        m, s = _mean_se(d)
        base = float(rows[f"continued:{col}"].mean())
        r = rope_for(col, rope, base)
        mirror.append(
            {
                "measure": label,
                "continued": base,
                "stopped_minus_continued": m,
                "mcse": s,
                "rope": r,
                "share_beyond_rope": float((d.abs() > r).mean()),
            }
        )
    n = len(rows)
    first = rows["rival_first_day"].to_numpy(float)
    riv = pd.DataFrame(
        [
            {
                "runs": n,
                "runs_with_rival_attack_on_hts": int((rows["rival_attacks"] > 0).sum()),
                "mean_attacks": float(rows["rival_attacks"].mean()),
                "runs_with_attack_in_rival_war": int((rows["rival_attacks_in_war"] > 0).sum()),
                "median_first_day": float(np.nanmedian(first)) if np.isfinite(first).any() else math.nan,
                "mean_towns_taken_by_rivals": float(rows["rival_takes"].mean()),
            }
        ]
    )
    return {
        "decomposition": pd.DataFrame(dec),
        "effect_decomposition": pd.DataFrame(eff_dec),
        "verdicts": pd.DataFrame(verdicts),
        "mirror": pd.DataFrame(mirror),
        "rivals": riv,
    }


def run_audit(
    scenario: str | Path,
    *,
    posterior: str | Path | None = None,
    calibration: str | Path | None = None,
    settings: AuditSettings | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    overrides: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Audit:
    """Run the audit (see the module docstring). ``calibration``: the priors' file (bounds of the
    favouring settings and the box of the largest-conversion search; default: the posterior's, else
    ``calibration/<name>.yaml`` beside the scenario, else none)."""
    from sim.experiments.inference.folder import load_calibration_folder
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import load_scenario

    st = settings or AuditSettings()
    loaded = load_scenario(scenario, [f"households.sample_fraction={st.sample_fraction}", *(overrides or [])])
    sc = loaded.scenario
    post, source = None, "the scenario's own values"
    if posterior is not None:
        stored = load_calibration_folder(posterior)
        post = stored.posterior
        calibration = calibration or stored.manifest.get("calibration_file")
        source = f"{st.draws} draws from the posterior of {posterior}"
    if calibration is None:
        guess = Path(loaded.path).parent / "calibration" / f"{sc.name}.yaml"
        calibration = guess if guess.is_file() else None
    cal = load_calibration(Path(calibration), loaded) if calibration is not None else None
    priors = cal.priors if cal is not None else ()
    paths = [p.path for p in priors]
    if post is not None:
        paths = [p for p in paths if p in post.columns]
    points = parameter_points(post, paths, st.draws, st.seed)
    chosen = favouring_settings(priors)
    context = {
        "model": audit_task,
        "base": sc.model_dump(mode="json"),
        "stop": st.stop,
        "window": st.window,
        "rival_war": RIVAL_WAR,
        "settings": chosen,
        "summary_window": sc.output.summary_window_days,
    }
    tasks = [
        (
            {
                "run": k * st.seeds + r,
                "point": k,
                "replicate": r,
                "seed": derive_seed(st.seed, "mechanisms", k, r),
                "params": values,
                "overrides": {},
            },
            context,
        )
        for k, values in enumerate(points)
        for r in range(st.seeds)
    ]
    engine = make_engine(workers, scheduler)
    rows, failed = [], 0
    try:
        for i, row in enumerate(engine.imap(tasks), 1):
            if row["status"] == "ok":
                rows.append({"draw": row["point"], "seed": row["seed"], **row["values"]})
            else:
                failed += 1
                if progress is not None:
                    progress(f"mechanisms: task {row['run']} failed: {row['error']}")
            if progress is not None:
                progress(f"mechanisms: {i} of {len(tasks)} tasks")
    finally:
        engine.close()
    if not rows:
        raise ValueError(f"{scenario}: every task of the audit failed ({failed})")
    frame = pd.DataFrame(rows).sort_values(["draw", "seed"], ignore_index=True)
    tables = tabulate(frame, chosen, st.rope)
    conversion = None
    if calibration is not None and st.conversion_draws > 0:
        if progress is not None:
            progress(f"mechanisms: largest conversion over {st.conversion_draws} points of the prior box")
        # under the scenario's own campaign and under the thesis's counterfactual (every sortie on resisting
        # towns): a runaway can hide in the counterfactual the verdict is read from
        conversion = pd.concat(
            [
                largest_conversion(
                    scenario,
                    calibration,
                    draws=st.conversion_draws,
                    sample_fraction=st.sample_fraction,
                    overrides=overrides,
                    seed=st.seed,
                ).assign(campaign=label)
                for label, overrides in CONVERSION_CAMPAIGNS
            ],
            ignore_index=True,
        )
    return Audit(frame, **tables, conversion=conversion, settings=st, source=source, failed=failed)


# --------------------------------------------------------------------------- report


def report_lines(audit: Audit, command: str, scenario_hash: str) -> list[str]:
    """The report's Markdown."""
    st = audit.settings
    d = audit.decomposition
    lines = [
        f"# Mechanism audit: {audit.source}",
        "",
        f"Regenerate: `{command}`. Seed {st.seed}; {len(audit.rows)} (draw, seed) tasks, {audit.failed} failed; "
        f"households.sample_fraction {st.sample_fraction}; scenario hash `{scenario_hash}`; written "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}. Means over draws and seeds, each with its Monte "
        "Carlo standard error (se).",
        "",
        "## 1. What the change in cooperation comes from",
        "",
        f"Change in cooperation with HTS among the people of resisting towns (by home town), first to last day: "
        f"{d.iloc[0]['change']:+.3f} (se {d.iloc[0]['change_se']:.3f}). Each row switches one mechanism off "
        "(strength 0) in the same runs; `accounts_for` is the change with everything on minus the change "
        "without it.",
        "",
        markdown_table(d),
        "",
        "## 2. What carries the thesis effect",
        "",
        "The paired effect of strikes on resisting towns against no strikes (common random numbers, as calibrated, "
        "the summary window), with one mechanism switched off in both arms of the same pair, then all seven. "
        "`accounts_for`: the effect with everything on minus the effect without the mechanism (positive: the "
        "mechanism pushes the effect toward the thesis); `p_accounts_for_positive`: the share of (draw, seed) "
        "pairs where it does. Mechanisms interact, so the parts need not add up to the whole. The last row also "
        "sets the regime's blame share to 0: what the effect is with no strike harm blamed on anyone.",
        "",
        markdown_table(audit.effect_decomposition),
        "",
        "## 3. The thesis under favouring and disfavouring settings",
        "",
        "Paired effect of strikes on resisting towns against no strikes (common random numbers) on the summary "
        "window; favouring: rally at its prior's top, blame on HTS for drawing strikes at its bottom and all of the "
        "grievance against the regime favouring HTS (`choice.regime_grievance_to_hts` 1); disfavouring: the "
        "reverse. `p_*`: shares of (draw, seed) effects above +ROPE, within, below -ROPE; "
        "`verdict_of_mean`: the mean's 95% interval (+-1.96 se) against the ROPE.",
        "",
        markdown_table(audit.verdicts),
        "",
        f"## 4. The mirror: strikes stopped after {st.stop} against strikes continued, mean of {st.window[0]} - "
        f"{st.window[1]}",
        "",
        markdown_table(audit.mirror),
        "",
        f"## 5. Rival offensives against HTS (never scripted; the record's rival war: {RIVAL_WAR[0]} - {RIVAL_WAR[1]})",
        "",
        markdown_table(audit.rivals),
        "",
        "## 6. The largest conversion inside the prior box",
        "",
    ]
    if audit.conversion is None:
        lines.append("Not searched: no calibration file gives the prior box.")
    else:
        for label, c in audit.conversion.groupby("campaign", sort=False):
            top = c.iloc[0]
            lines += [
                f"- {label}: over {len(c)} Latin-hypercube points of the priors (one run each), the largest rise of "
                f"the cooperating share of a resisting town's people within 28 days is {top['max_rise']:.3f} "
                f"({top['town']}, day {int(top['day'])}, from {top['coop_start']:.3f}; controller changed: "
                f"{bool(top['controller_changed'])}); with the controller unchanged, the largest is "
                f"{float(c['max_rise_same_controller'].max()):.3f}. Median over the points: "
                f"{float(c['max_rise'].median()):.3f}.",
            ]
    return [*lines, ""]


def write_audit(audit: Audit, out: str | Path, command: str, scenario_hash: str) -> Path:
    """The audit folder: ``report.md``, its tables (CSV), ``rows.csv`` and ``manifest.json`` (written
    to a temporary sibling and renamed: nothing partial is left behind)."""

    def contents(tmp: Path) -> None:
        for name in ("decomposition", "effect_decomposition", "verdicts", "mirror", "rivals"):
            write_csv_atomic(getattr(audit, name), tmp / f"{name}.csv", float_format="%.6g")
        write_csv_atomic(audit.rows, tmp / "rows.csv", float_format="%.6g")
        if audit.conversion is not None:
            write_csv_atomic(audit.conversion, tmp / "conversion.csv", float_format="%.6g")
        write_json_atomic(
            {
                "kind": "mechanism audit",
                "source": audit.source,
                "settings": asdict(audit.settings),
                "scenario_hash": scenario_hash,
                "command": command,
                "failed": audit.failed,
                **stamp(),
            },
            tmp / "manifest.json",
        )
        write_text_atomic("\n".join(report_lines(audit, command, scenario_hash)), tmp / "report.md")

    return write_folder(Path(out), contents)
