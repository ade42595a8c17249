"""The thesis test: do strikes on resisting towns raise cooperation with HTS?

Paired counterfactuals on the sweep engine. Every targeting policy is run with
the same replicate seeds as the ``none`` counterfactual (common random numbers,
``seeds: common``), so each replicate gives one paired difference that is due to
the policy alone. For each outcome we report the mean difference, a seeded
BCa bootstrap 95% interval (:mod:`sim.analysis.statistics`), the share of positive
pairs and a verdict against a minimum effect size (ROPE, default 0.02 in share units):

* ``supported`` - the whole interval lies beyond +ROPE on the side the thesis predicts;
* ``contradicted`` - the whole interval lies beyond ROPE on the other side;
* ``negligible`` - the whole interval lies within [-ROPE, +ROPE];
* ``inconclusive`` - anything else.

The headline verdict is given only where the home-town and current-town measures agree
(otherwise "measures disagree", with both shown).

Resisting-town cooperation is measured both by current town and by home town
(the households who lived there at the start, wherever they are now), so that
flight or death of resisters cannot masquerade as conversion.

Seeds: one derivation, :mod:`sim.scenario.seeds`. Replicate ``r`` of every experiment runs
with ``derive_seed(root_seed, "sweep", "replicate", r)`` under every policy (the sweeps'
common random numbers, :mod:`sim.experiments.design`), and each bootstrap interval is seeded
with ``derive_seed(root_seed, "thesis", "bootstrap", *labels)``, its labels naming the
comparison and the outcome.

The comparisons the thesis is judged on, and their outcomes, are declared once here
(:data:`THESIS_COMPARISONS`, :data:`THESIS_OUTCOMES`; :func:`headline_comparisons` adds every
other policy against ``none``); the posterior thesis test of a calibration uses the same.

Three experiments, each a resumable sweep under ``<out>/runs/``:

1. ``headline`` - every policy vs ``none`` (and ``resisting_towns`` vs ``hts_strongholds``);
2. ``ablation`` - the headline effect with each mechanism switched off in turn;
3. ``heatmap`` - the headline effect over two mechanism strengths, with its zero contour.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from sim.analysis.statistics import (
    DEFAULT_ROPE,
    DISAGREE,
    RELATIVE_OUTCOMES,
    RELATIVE_ROPE,
    combined_verdict,
    mean_interval,
    relative_rope,
    summarize,
)
from sim.experiments.comparisons import ALTERNATIVE, CONTROL, HEADLINE, OUTCOMES, POLICY, TREATMENT
from sim.experiments.design import replicate_seeds
from sim.experiments.engine import Engine, make_engine
from sim.experiments.spec import SweepSpec, spec_from_dict
from sim.experiments.store import load_results
from sim.experiments.sweep import SweepSummary, run_sweep
from sim.run.provenance import stamp
from sim.run.store import write_csv_atomic, write_json_atomic, write_text_atomic
from sim.scenario.loader import resolve_input
from sim.scenario.schema import MECHANISM_NAMES
from sim.scenario.seeds import derive_seed

# The policies, outcomes and headline measures are declared once, in sim.experiments.comparisons.
# Composition of the two resisting-town measures: current town = residents at home + guests,
# home town = residents at home + those who left; the dead are in neither (window means).
COMPOSITION: dict[str, str] = {
    "persons_resisting_stayers:mean": "residents at home (persons)",
    "persons_resisting_left:mean": "residents who left (persons)",
    "persons_resisting_guests:mean": "displaced guests present (persons)",
    "killed_resisting_home_cum:final": "residents killed (persons, cumulative)",
    "coop_share_resisting_stayers:mean": "cooperation of residents at home",
    "coop_share_resisting_left:mean": "cooperation of residents who left",
    "coop_share_resisting_guests:mean": "cooperation of guests",
}
#: Secondary outcomes of the article's second claim: under regime pressure the rival groups
#: take up HTS's offer to reunite (alignment up) and HTS holds more of the population.
SECOND_CLAIM: tuple[str, ...] = ("rival_alignment_window", "under_hts_mean")


class Comparison(NamedTuple):
    """One paired comparison: ``treatment - control`` (two values of ``air_campaign.policy``)."""

    treatment: str
    control: str

    @property
    def label(self) -> str:
        """``"treatment - control"``, as in the tables."""
        return f"{self.treatment} - {self.control}"


#: The comparisons the thesis is judged on: strikes on resisting towns against no strikes and
#: against strikes on HTS strongholds, and the recorded strike calendar against no strikes
#: (where the scenario has one). A comparison is made only where both policies were run.
THESIS_COMPARISONS: tuple[Comparison, ...] = (
    Comparison(TREATMENT, CONTROL),
    Comparison(TREATMENT, ALTERNATIVE),
    Comparison("calendar", CONTROL),
)
#: The outcomes of those comparisons that carry the thesis: cooperation with HTS in resisting
#: towns by home town and by current town, protest there, and the rival groups' alignment.
THESIS_OUTCOMES: tuple[str, ...] = (
    "coop_resisting_home_mean",
    "coop_resisting_mean",
    "protest_resisting_mean",
    "rival_alignment_final",
)


def headline_comparisons(policies: Iterable[str]) -> list[Comparison]:
    """The comparisons of the headline experiment among ``policies``.

    Every policy against ``none`` (in the given order), then the declared comparisons between two
    strike policies (:data:`THESIS_COMPARISONS`) whose policies were both run.
    """
    run = list(dict.fromkeys(policies))
    out = [Comparison(p, CONTROL) for p in run if p != CONTROL]
    out += [c for c in THESIS_COMPARISONS if c.control != CONTROL and c.treatment in run and c.control in run]
    return out


ALIGNMENT_SCALE = 2.0
"""Width of the alignment scale (-1..1) relative to a share's (0..1): its ROPE is scaled by it."""


def default_scenario() -> Path:
    """The synthetic grid scenario shipped with the package (found from any working directory)."""
    return resolve_input("synthetic_grid")


@dataclass
class ThesisSettings:
    """Everything that defines a thesis test (written into the report).

    Defaults are chosen so that ``sim thesis`` finishes in a few minutes on two
    cores: thesis runs use a tenth of the household agents (each agent stands
    for ten households; shares are unbiased, only noisier), the ablation and the
    heatmap fewer replicates than the headline.
    """

    scenario: Path = field(default_factory=default_scenario)
    overrides: list[str] = field(default_factory=list)
    replicates: int = 30
    ablation_replicates: int = 10
    heatmap_replicates: int = 6
    sample_fraction: float = 0.1
    days: int | None = None
    root_seed: int = 20171113
    policies: list[str] | None = None
    heatmap_x: str = "mechanisms.rally"
    heatmap_x_range: tuple[float, float] = (0.0, 3.0)
    heatmap_y: str = "mechanisms.pretext_blame"
    heatmap_y_range: tuple[float, float] = (0.0, 1.0)
    heatmap_levels: int = 5
    mechanisms: list[str] = field(default_factory=lambda: list(MECHANISM_NAMES))
    n_boot: int = 2000
    level: float = 0.95
    rope: float = DEFAULT_ROPE
    experiments: tuple[str, ...] = ("headline", "ablation", "heatmap")

    @classmethod
    def quick(cls, **kw: Any) -> ThesisSettings:
        """Fewer replicates and a coarser heatmap (about a third of the runs)."""
        base = {"replicates": 10, "ablation_replicates": 4, "heatmap_replicates": 4, "heatmap_levels": 3}
        return cls(**{**base, **kw})

    def as_dict(self) -> dict[str, Any]:
        """Settings as plain data."""
        d = dataclasses.asdict(self)
        d["scenario"] = str(self.scenario)
        return d


# --------------------------------------------------------------------------- sweep specs


def _base(settings: ThesisSettings) -> dict[str, Any]:
    sets = [f"households.sample_fraction={settings.sample_fraction}", *settings.overrides]
    window = _window(settings)
    spec: dict[str, Any] = {
        "scenario": str(Path(settings.scenario).resolve()),
        "set": sets,
        "root_seed": settings.root_seed,
        "seeds": "common",
        "outcomes": [*OUTCOMES, *COMPOSITION],
        "window": window,
        "batch_size": 10,
    }
    if settings.days is not None:
        spec["days"] = settings.days
    return spec


def thesis_policies(settings: ThesisSettings, scenario_has_calendar: bool) -> list[str]:
    """Policies compared with ``none`` (calendar only if the scenario has a strike calendar)."""
    from sim.scenario.schema import POLICIES

    if settings.policies is not None:
        return [p for p in settings.policies if p != CONTROL]
    return [p for p in POLICIES if p != CONTROL and (p != "calendar" or scenario_has_calendar)]


def headline_spec(settings: ThesisSettings) -> SweepSpec:
    """Every policy and ``none``, ``replicates`` paired replicates each."""
    from sim.scenario.loader import load_scenario

    sc = load_scenario(settings.scenario, settings.overrides).scenario
    policies = [CONTROL, *thesis_policies(settings, bool(sc.air_campaign.calendar))]
    return spec_from_dict(
        {
            **_base(settings),
            "name": "headline",
            "replicates": settings.replicates,
            "parameters": {POLICY: {"values": policies}},
        }
    )


def ablation_spec(settings: ThesisSettings) -> SweepSpec:
    """The headline comparison with each mechanism switched off in turn."""
    variants: dict[str, dict[str, Any]] = {"all": {}}
    for m in settings.mechanisms:
        variants[f"no_{m}"] = {f"mechanisms.{m}": 0.0}
    return spec_from_dict(
        {
            **_base(settings),
            "name": "ablation",
            "replicates": settings.ablation_replicates,
            "parameters": {"mechanism": {"variants": variants}, POLICY: {"values": [CONTROL, TREATMENT]}},
        }
    )


def heatmap_spec(settings: ThesisSettings) -> SweepSpec:
    """The headline comparison over a grid of two mechanism strengths."""
    n = settings.heatmap_levels
    return spec_from_dict(
        {
            **_base(settings),
            "name": "heatmap",
            "replicates": settings.heatmap_replicates,
            "parameters": {
                settings.heatmap_x: {"range": list(settings.heatmap_x_range), "levels": n},
                settings.heatmap_y: {"range": list(settings.heatmap_y_range), "levels": n},
                POLICY: {"values": [CONTROL, TREATMENT]},
            },
        }
    )


# --------------------------------------------------------------------------- statistics


def rope_for(outcome: str, rope: float, control_mean: float | None = None, relative: float = RELATIVE_ROPE) -> float:
    """The minimum effect size of an outcome, or zero for counts and levels with no common scale.

    ``rope`` for shares with a sizeable baseline (cooperation, resistance, persons under HTS
    control); for outcomes with a small baseline (protest), ``relative * |control mean|`` when
    the control arm's mean is given (a quarter of the ordinary level by default: the absolute
    0.02 would equal the ordinary protest share itself), else ``rope``;
    ``ALIGNMENT_SCALE * rope`` for rival alignment, whose -1..1 scale is twice as wide, so
    that the same fraction of the scale counts as negligible (0.04 for the default 0.02).
    """
    if "alignment" in outcome:
        return ALIGNMENT_SCALE * rope
    if any(k in outcome for k in RELATIVE_OUTCOMES) and control_mean is not None and rope > 0:
        return relative_rope(control_mean, relative)
    share = outcome.startswith(("coop_", "resist_", "protest_", "under_hts")) or "share" in outcome
    return rope if share else 0.0


def control_mean(df: pd.DataFrame, control: str, outcome: str, factor: str = POLICY) -> float:
    """Mean of ``outcome`` over the successful runs of the control arm (nan if none)."""
    ok = df[(df["status"] == "ok") & (df[factor] == control)]
    return float(ok[outcome].mean()) if len(ok) and outcome in ok else float("nan")


def rope_rule(rope: float, relative: float = RELATIVE_ROPE) -> str:
    """The verdict rule's minimum effect sizes, in words (printed in every report)."""
    return (
        f"ROPE = {rope:g} (absolute, share units) for cooperation, resistance and the share under HTS "
        f"control; {relative:.0%} of the control arm's mean for protest (a small baseline: the absolute "
        f"{rope:g} would equal the ordinary protest share itself); {ALIGNMENT_SCALE * rope:g} for rival "
        "alignment (its -1..1 scale); none for counts"
    )


def paired_differences(
    df: pd.DataFrame,
    treatment: str,
    control: str,
    outcomes: list[str],
    by: list[str] | None = None,
    factor: str = POLICY,
) -> pd.DataFrame:
    """Per pair (same replicate and seed, same other parameters): treatment minus control.

    Raises:
        AssertionError: if the two runs of a pair do not share a seed.
    """
    by = list(by or [])
    ok = df[df["status"] == "ok"]
    keys = [*by, "replicate"]
    t = ok[ok[factor] == treatment].set_index(keys)
    c = ok[ok[factor] == control].set_index(keys)
    common = t.index.intersection(c.index)
    t, c = t.loc[common], c.loc[common]
    if not (t["seed"].to_numpy() == c["seed"].to_numpy()).all():
        raise AssertionError("paired runs do not share seeds")
    out = (t[outcomes] - c[outcomes]).reset_index()
    out.insert(len(keys), "seed", t["seed"].to_numpy())
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def _seed_for(settings_seed: int, *labels: str) -> int:
    """The seed of one bootstrap: ``derive_seed(root_seed, "thesis", "bootstrap", *labels)``.

    The labels name the table and the comparison (treatment, control, outcome; ablation variant;
    heatmap grid point), so every interval has its own stream, the same in every rerun.
    """
    return derive_seed(settings_seed, "thesis", "bootstrap", *labels)


def policy_effects(
    df: pd.DataFrame,
    comparisons: Iterable[tuple[str, str]],
    outcomes: list[str],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    rope: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effects table (one row per comparison and outcome) and the paired differences."""
    rows, pairs = [], []
    for treatment, control in comparisons:
        d = paired_differences(df, treatment, control, outcomes)
        d.insert(0, "comparison", f"{treatment} - {control}")
        pairs.append(d)
        for o in outcomes:
            label, sign = OUTCOMES.get(o, (o, 0))
            s = summarize(
                d[o].to_numpy(),
                sign,
                rope=rope_for(o, rope, control_mean(df, control, o)),
                n_resamples=n_boot,
                level=level,
                seed=_seed_for(seed, treatment, control, o),
            )
            rows.append(
                {"treatment": treatment, "control": control, "outcome": o, "label": label, "predicted_sign": sign, **s}
            )
    return pd.DataFrame(rows), pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()


def ablation_table(
    df: pd.DataFrame, outcomes: list[str], *, n_boot: int, level: float, seed: int, rope: float = 0.0
) -> pd.DataFrame:
    """Headline effect per ablation variant, and the change from switching each mechanism off.

    ``change_when_off`` = effect(all) - effect(without the mechanism), paired by
    replicate: positive means the mechanism carries (pushes up) the effect,
    negative means it opposes it.
    """
    d = paired_differences(df, TREATMENT, CONTROL, outcomes, by=["mechanism"])
    rows = []
    base = {v: g for v, g in df.groupby("mechanism")} if "mechanism" in df else {}
    full = d[d["mechanism"] == "all"].set_index("replicate")
    for variant in dict.fromkeys(d["mechanism"]):
        v = d[d["mechanism"] == variant].set_index("replicate")
        for o in outcomes:
            _label, sign = OUTCOMES.get(o, (o, 0))
            arm = base.get(variant, df)
            s = summarize(
                v[o].to_numpy(),
                sign,
                rope=rope_for(o, rope, control_mean(arm, CONTROL, o)),
                n_resamples=n_boot,
                level=level,
                seed=_seed_for(seed, variant, o),
            )
            row = {
                "variant": variant,
                "mechanism_off": variant.removeprefix("no_") if variant != "all" else "",
                "outcome": o,
                **s,
            }
            if variant != "all":
                common = full.index.intersection(v.index)
                dd = (full.loc[common, o] - v.loc[common, o]).to_numpy()
                lo, hi = mean_interval(dd, n_resamples=n_boot, level=level, seed=_seed_for(seed, "dd", variant, o))
                row.update(
                    change_when_off=float(dd.mean()) if len(dd) else float("nan"),
                    change_ci_low=lo,
                    change_ci_high=hi,
                    role=("carries the effect" if lo > 0 else "opposes the effect" if hi < 0 else "no clear role"),
                )
            rows.append(row)
    return pd.DataFrame(rows)


def heatmap_table(
    df: pd.DataFrame,
    x: str,
    y: str,
    outcomes: list[str],
    *,
    n_boot: int,
    level: float,
    seed: int,
    rope: float = 0.0,
) -> pd.DataFrame:
    """Headline effect, interval and verdict at each grid point of the two strengths."""
    d = paired_differences(df, TREATMENT, CONTROL, outcomes, by=[x, y])
    rows = []
    for (xv, yv), g in d.groupby([x, y], sort=True):
        arm = df[(df[x] == xv) & (df[y] == yv)]
        for o in outcomes:
            _label, sign = OUTCOMES.get(o, (o, 0))
            s = summarize(
                g[o].to_numpy(),
                sign,
                rope=rope_for(o, rope, control_mean(arm, CONTROL, o)),
                n_resamples=n_boot,
                level=level,
                seed=_seed_for(seed, str(xv), str(yv), o),
            )
            rows.append({x: xv, y: yv, "outcome": o, **s})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


# --------------------------------------------------------------------------- the test


@dataclass
class ThesisRun:
    """Tables and files of a thesis test."""

    folder: Path
    effects: pd.DataFrame
    pairs: pd.DataFrame
    ablation: pd.DataFrame | None
    heatmap: pd.DataFrame | None
    summaries: dict[str, SweepSummary]
    seconds: float
    report: Path | None = None

    def headline(self, control: str = CONTROL) -> pd.DataFrame:
        """Headline rows: ``resisting_towns`` vs ``control`` on the two headline outcomes."""
        e = self.effects
        return e[(e["treatment"] == TREATMENT) & (e["control"] == control) & e["outcome"].isin(HEADLINE)]


def run_thesis(
    settings: ThesisSettings | None = None,
    out: str | Path | None = None,
    *,
    engine: Engine | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    dask_local: int | None = None,
    progress: bool = True,
    report: bool = True,
    draw: Callable[[Path], list[Path]] | None = None,
) -> ThesisRun:
    """Run the thesis experiments on the sweep engine and write the report.

    Args:
        settings: what to run (default :class:`ThesisSettings`).
        out: output folder (default ``results/thesis/<scenario name>``).
        engine: an open engine to reuse; otherwise one pool is made for all experiments.
        workers, scheduler, dask_local: engine options as for :func:`run_sweep`.
        progress: progress bars.
        report: write ``report.md`` and the CSV tables.
        draw: called with the folder once the tables are written, to add the figures the
            report shows (``sim thesis`` passes :func:`sim.viz.figures.draw_thesis_figures`).
    """
    from sim.scenario.loader import load_scenario

    settings = settings or ThesisSettings()
    sc = load_scenario(settings.scenario, settings.overrides).scenario
    folder = Path(out) if out else Path("results/thesis") / sc.name
    t0 = time.perf_counter()
    specs = {"headline": headline_spec(settings)}
    if "ablation" in settings.experiments:
        specs["ablation"] = ablation_spec(settings)
    if "heatmap" in settings.experiments:
        specs["heatmap"] = heatmap_spec(settings)
    own = engine is None
    eng = engine or make_engine(workers, scheduler, dask_local)
    summaries: dict[str, SweepSummary] = {}
    try:
        for name, spec in specs.items():
            summaries[name] = run_sweep(spec, folder=folder / "runs" / name, engine=eng, progress=progress)
    finally:
        if own:
            eng.close()
    outcomes = list(OUTCOMES)
    head = load_results(summaries["headline"].folder)
    treatments = thesis_policies(settings, bool(sc.air_campaign.calendar))
    comparisons = headline_comparisons(treatments)
    kw = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.root_seed, "rope": settings.rope}
    effects, pairs = policy_effects(head, comparisons, outcomes, **kw)
    abl = hm = None
    if "ablation" in summaries:
        abl = ablation_table(load_results(summaries["ablation"].folder), list(HEADLINE), **kw)
    if "heatmap" in summaries:
        hm = heatmap_table(
            load_results(summaries["heatmap"].folder), settings.heatmap_x, settings.heatmap_y, list(HEADLINE), **kw
        )
    result = ThesisRun(folder, effects, pairs, abl, hm, summaries, time.perf_counter() - t0)
    if report:
        result.report = write_report(result, settings, sc.name, eng.description, draw)
    return result


def composition_table(df: pd.DataFrame, treatment: str = TREATMENT, control: str = CONTROL) -> pd.DataFrame:
    """Who makes up each resisting-town measure under the treatment and the control (means over pairs).

    Rows: the composition outcomes and the two headline measures; columns ``control``,
    ``treatment`` and ``difference`` (the mean paired difference).
    """
    names = [*COMPOSITION, *HEADLINE]
    present = [o for o in names if o in df.columns]
    if not present or not {treatment, control} <= set(df[POLICY]):
        return pd.DataFrame(columns=["quantity", "label", "control", "treatment", "difference"])
    d = paired_differences(df, treatment, control, present)
    ok = df[df["status"] == "ok"]
    rows = []
    for o in present:
        label = COMPOSITION.get(o) or OUTCOMES[o][0]
        rows.append(
            {
                "quantity": o,
                "label": label,
                "control": float(ok.loc[ok[POLICY] == control, o].mean()),
                "treatment": float(ok.loc[ok[POLICY] == treatment, o].mean()),
                "difference": float(d[o].mean()),
            }
        )
    return pd.DataFrame(rows)


def composition_lines(comp: pd.DataFrame) -> list[str]:
    """The decomposition paragraph: how much of each measure's effect is the residents' own change.

    Both measures share the residents still at home; the rest of a measure's effect is
    composition: guests arriving (current town) or residents leaving (home town), with the
    dead in neither measure.
    """
    c = comp.set_index("quantity")
    need = ["coop_share_resisting_stayers:mean", *HEADLINE]
    if not set(need) <= set(c.index):
        return []
    own = c.loc["coop_share_resisting_stayers:mean", "difference"]
    current, home = (c.loc[o, "difference"] for o in HEADLINE)

    def n(key: str) -> str:
        return f"{c.loc[key, 'difference']:+,.0f}" if key in c.index else "n/a"

    return [
        f"By current town the effect is {current:+.3f}, by home town {home:+.3f}. Among residents still at "
        f"home (in both measures) cooperation changed by {own:+.3f}; the rest is composition: "
        f"{current - own:+.3f} by current town (guests present {n('persons_resisting_guests:mean')}, "
        f"residents at home {n('persons_resisting_stayers:mean')} persons), {home - own:+.3f} by home town "
        f"(residents who left {n('persons_resisting_left:mean')} persons), with "
        f"{n('killed_resisting_home_cum:final')} more residents killed (in neither measure). "
        "Table: `composition.csv`.",
    ]


def _fmt_effect(r: pd.Series) -> str:
    power = "" if r.get("powered", True) else "; the test lacks power for this measure (interval wider than its ROPE)"
    mc = f", Monte Carlo error {r['mc_error']:.4f}" if "mc_error" in r and np.isfinite(r["mc_error"]) else ""
    rope = f", ROPE {r['rope']:.4f}" if "rope" in r else ""
    return (
        f"**{r['verdict']}**: {r['mean_diff']:+.3f} (95% CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]{rope}{mc}, "
        f"{r['share_positive']:.0%} of {r['pairs']} pairs positive{power})"
    )


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats to four significant digits), for the reports."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_lines(result: ThesisRun) -> list[str]:
    """The report's first lines: headline verdicts, mechanisms, where the answer flips."""
    lines = []
    for control in (CONTROL, ALTERNATIVE):
        h = result.headline(control).set_index("outcome")
        if set(HEADLINE) <= set(h.index):
            current, home = (h.loc[o, "verdict"] for o in HEADLINE)
            versus = "no strikes" if control == CONTROL else "strikes on HTS strongholds"
            both = combined_verdict(home, current)
            detail = "" if both != DISAGREE else f" (by home town: {home}; by current town: {current})"
            lines.append(f"- **Headline, strikes on resisting towns vs {versus}: {both}**{detail}")
        for _, r in result.headline(control).iterrows():
            how = "by home town" if "home" in r["outcome"] else "by current town"
            versus = "no strikes" if control == CONTROL else "strikes on HTS strongholds"
            lines.append(
                f"- Strikes on resisting towns vs {versus}, "
                f"cooperation with HTS in resisting towns ({how}, window mean): {_fmt_effect(r)}"
            )
    e = result.effects
    second = e[(e["treatment"] == TREATMENT) & (e["control"] == CONTROL) & e["outcome"].isin(SECOND_CLAIM)]
    for _, r in second.set_index("outcome").reindex(list(SECOND_CLAIM)).dropna(subset=["verdict"]).iterrows():
        lines.append(
            f"- Second claim (rivals reunite with HTS under regime pressure), secondary outcome, strikes on "
            f"resisting towns vs no strikes, {r['label']} (predicted {'up' if r['predicted_sign'] > 0 else 'down'}): "
            f"{_fmt_effect(r)}"
        )
    if result.ablation is not None:
        a = result.ablation[(result.ablation["outcome"] == HEADLINE[0]) & (result.ablation["variant"] != "all")]
        carries = [
            f"{r['mechanism_off']} ({r['change_when_off']:+.3f})"
            for _, r in a.iterrows()
            if r["role"] == "carries the effect"
        ]
        opposes = [
            f"{r['mechanism_off']} ({r['change_when_off']:+.3f})"
            for _, r in a.iterrows()
            if r["role"] == "opposes the effect"
        ]
        lines.append(
            f"- Mechanisms carrying the headline effect (effect lost when switched off): "
            f"{', '.join(carries) or 'none detected'}; opposing it: {', '.join(opposes) or 'none detected'}."
        )
    if result.heatmap is not None:
        for o in HEADLINE:
            h = result.heatmap[result.heatmap["outcome"] == o]
            counts = h["verdict"].value_counts()
            how = "by home town" if "home" in o else "by current town"
            lines.append(
                f"- Across the {len(h)}-point grid ({how}): supported at {counts.get('supported', 0)}, "
                f"contradicted at {counts.get('contradicted', 0)}, negligible at {counts.get('negligible', 0)}, "
                f"inconclusive at {counts.get('inconclusive', 0)} points."
            )
    return lines


def _window(settings: ThesisSettings) -> int:
    from sim.scenario.loader import load_scenario

    return load_scenario(settings.scenario, settings.overrides).scenario.output.summary_window_days


def write_report(
    result: ThesisRun,
    settings: ThesisSettings,
    scenario_name: str,
    engine: str,
    draw: Callable[[Path], list[Path]] | None = None,
) -> Path:
    """``report.md`` (verdicts first) and CSV tables in the result folder; figures through ``draw``."""
    f = result.folder
    f.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(result.effects, f / "effects.csv", float_format="%.6g")
    write_csv_atomic(result.pairs, f / "pairs.csv", float_format="%.6g")
    if result.ablation is not None:
        write_csv_atomic(result.ablation, f / "ablation.csv", float_format="%.6g")
    if result.heatmap is not None:
        write_csv_atomic(result.heatmap, f / "heatmap.csv", float_format="%.6g")
    parts = [
        f"# Thesis test: do strikes on resisting towns raise cooperation with HTS? ({scenario_name})",
        "",
        "## Verdict",
        "",
        *verdict_lines(result),
        "",
        f"Verdict rule (minimum effect sizes: {rope_rule(settings.rope)}): "
        "*supported* if the whole 95% BCa bootstrap interval of the mean paired difference lies beyond +ROPE "
        "on the side the thesis predicts (cooperation up, protest down), *contradicted* if it lies beyond "
        "ROPE on the other side, *negligible* if it lies within [-ROPE, +ROPE], *inconclusive* otherwise. "
        "The headline verdict is given only where the home-town and current-town measures agree. "
        "Each effect states its Monte Carlo error (standard error of the mean paired difference); where the "
        "interval's half-width exceeds the ROPE, the report says the test lacks power for that measure "
        "(more replicates needed; pairs already share seeds, common random numbers). "
        "The article's second claim (rival groups reunite with HTS) is judged by secondary outcomes with the same "
        f"rule: the share of persons under HTS control with ROPE = {settings.rope:g}, rival alignment (on its "
        f"-1..1 scale) with ROPE = {ALIGNMENT_SCALE * settings.rope:g}. "
        "Pairs share seeds (common random numbers).",
        "",
        "## Policy comparisons (paired differences, treatment minus control)",
        "",
        "![effects](effects.png)",
        "",
        markdown_table(
            result.effects[
                [
                    "treatment",
                    "control",
                    "outcome",
                    "pairs",
                    "mean_diff",
                    "ci_low",
                    "ci_high",
                    "share_positive",
                    "rope",
                    "mc_error",
                    "powered",
                    "verdict",
                ]
            ]
        ),
        "",
        "Tables: `effects.csv` (this table, with labels), `pairs.csv` (every paired difference and its seed).",
    ]
    comp = composition_table(load_results(result.summaries["headline"].folder))
    if len(comp):
        write_csv_atomic(comp, f / "composition.csv", float_format="%.6g")
        parts += [
            "",
            f"## Composition of the resisting-town measures ({TREATMENT} vs {CONTROL})",
            "",
            *composition_lines(comp),
            "",
            markdown_table(comp[["label", "control", "treatment", "difference"]]),
        ]
    if result.ablation is not None:
        cols = ["variant", "outcome", "pairs", "mean_diff", "ci_low", "ci_high", "verdict", "change_when_off", "role"]
        parts += [
            "",
            f"## Mechanism ablation ({TREATMENT} - {CONTROL}, each mechanism off in turn)",
            "",
            "![ablation](ablation.png)",
            "",
            markdown_table(result.ablation[cols]),
            "",
            "`change_when_off` = effect with all mechanisms minus effect without this one (paired by "
            "replicate): positive means the mechanism carries the effect. Table: `ablation.csv`.",
        ]
    if result.heatmap is not None:
        parts += [
            "",
            f"## Where the thesis holds: {settings.heatmap_x} x {settings.heatmap_y}",
            "",
            "![heatmap](heatmap.png)",
            "",
            "Colour: mean paired difference; black line: zero contour; x: inconclusive (interval "
            "includes zero). Table: `heatmap.csv`.",
        ]
    seeds = replicate_seeds(
        settings.root_seed, max(settings.replicates, settings.ablation_replicates, settings.heatmap_replicates)
    )
    runs = {
        k: {"planned": s.planned, "ran_now": s.ran, "failed_total": s.failed_total, "folder": str(s.folder)}
        for k, s in result.summaries.items()
    }
    parts += [
        "",
        "## Settings and seeds",
        "",
        f"- scenario: `{settings.scenario}` with overrides {settings.overrides or 'none'}",
        f"- household agents: sample_fraction = {settings.sample_fraction} (each agent stands for "
        f"{1 / settings.sample_fraction:g} households; reported shares are unbiased, only noisier)",
        f"- days: {settings.days or 'as in the scenario'}; outcomes averaged over the last "
        f"{_window(settings)} days (window mean, the scenario's output.summary_window_days) "
        "or taken on the last day (end)",
        f"- replicates: headline {settings.replicates}, ablation {settings.ablation_replicates}, heatmap "
        f"{settings.heatmap_replicates} per grid point ({settings.heatmap_levels} x {settings.heatmap_levels} grid)",
        f"- bootstrap: {settings.n_boot} resamples, {settings.level:.0%} BCa intervals "
        "(scipy.stats.bootstrap; percentile where BCa is undefined), seeded from the root seed",
        f"- root seed {settings.root_seed}; replicate r uses seed "
        f"`derive_seed({settings.root_seed}, 'sweep', 'replicate', r)` (sim.scenario.seeds) under every policy; "
        "each bootstrap uses `derive_seed(root seed, 'thesis', 'bootstrap', <comparison labels>)`; first seeds: "
        f"{', '.join(str(s) for s in seeds[:5])} ... (all in `pairs.csv` and the run folders)",
        f"- engine: {engine}; wall time {result.seconds:.0f} s",
        f"- runs: `{json.dumps(runs)}`",
        f"- written {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
    ]
    write_json_atomic(settings.as_dict(), f / "settings.json")
    manifest = {
        "kind": "thesis",
        "scenario": scenario_name,
        "settings": settings.as_dict(),
        "engine": engine,
        "seconds": round(result.seconds, 1),
        "sweeps": runs,
        **stamp(),
    }
    write_json_atomic(manifest, f / "manifest.json")
    path = f / "report.md"
    write_text_atomic("\n".join(parts) + "\n", path)
    if draw is not None:
        draw(f)  # the figures report.md shows, drawn from the tables just written
    return path


# --------------------------------------------------------------------------- bounded responses


def largest_conversion(
    scenario: str | Path,
    calibration: str | Path,
    *,
    draws: int = 40,
    sample_fraction: float = 0.02,
    window_days: int = 28,
    overrides: list[str] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The largest response of cooperation inside the prior box: is any setting a runaway?

    A Latin hypercube of ``draws`` points over the priors of ``calibration`` (uniform and
    loguniform priors over their bounds, the others over mean +- 4 sd clipped to the schema);
    each point is run once at ``sample_fraction`` on top of ``overrides``, and scored by
    the largest rise of the cooperating share of the people of any town labelled resisting
    (by home town, wherever they are now: flight that empties a town is not conversion)
    within any ``window_days``-day window: ``max_t,town (coop_t - min(coop over the preceding
    window))``. Returns one row per draw (its values, the score, the town and the day), largest first.
    """
    from scipy.stats import qmc

    from sim.run.simulate import simulate
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import load_scenario, with_values

    loaded = load_scenario(scenario, [f"households.sample_fraction={sample_fraction}", *(overrides or [])])
    cal = load_calibration(calibration, loaded)
    priors = cal.priors
    unit = qmc.LatinHypercube(d=len(priors), seed=seed).random(draws)
    resisting = [t.name for t in loaded.scenario.towns if t.stance == "resisting"]
    rows = []
    for k, u in enumerate(unit):
        values = {}
        for p, x in zip(priors, u, strict=True):
            lo, hi = (p.to_internal(b) for b in p.bounds())
            values[p.path] = p.to_value(lo + x * (hi - lo))
        sc = with_values(loaded.scenario, values, source="largest_conversion")
        towns_df = simulate(sc, seed + k, household_agents=False).frames["towns"]
        coop = towns_df[towns_df["town"].isin(resisting)].pivot(index="day", columns="town", values="coop_share_home")
        held = towns_df[towns_df["town"].isin(resisting)].pivot(index="day", columns="town", values="controller")
        rise = coop - coop.rolling(window_days + 1, min_periods=1).min()
        # the same, only in towns whose controller did not change during the window (conversion, not capture)
        kept = held.apply(lambda c: (c != c.shift(1)).astype(float).rolling(window_days + 1, min_periods=1).sum())
        kept = kept.fillna(0).to_numpy() <= 1  # the first day's "change" is the start
        rise_kept = np.where(kept, rise.to_numpy(), np.nan)
        day, town = np.unravel_index(np.nanargmax(rise.to_numpy()), rise.shape)
        changed = bool(held.iloc[max(day - window_days, 0) : day + 1, town].nunique() > 1)
        rows.append(
            {
                "draw": k,
                "max_rise": float(rise.to_numpy()[day, town]),
                "town": str(rise.columns[town]),
                "day": int(rise.index[day]),
                "coop_start": float(coop.iloc[0, town]),
                "controller_changed": changed,
                "max_rise_same_controller": float(np.nanmax(rise_kept)),
                **values,
            }
        )
    return pd.DataFrame(rows).sort_values("max_rise", ascending=False, ignore_index=True)
