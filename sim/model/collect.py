"""Daily data collection into preallocated arrays (town level and governorate level).

No DataFrame is built during a run: each day writes one row per table into
numpy arrays, and :meth:`Collector.frames` turns them into tidy DataFrames once.
Counts of persons are reported in real persons (scaled by 1 / sample_fraction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.model.rules import COOPERATE, NEUTRAL, RESIST
from sim.scenario.schema import FRONT_STATUS

if TYPE_CHECKING:
    from sim.model.model import AllegianceModel

TOWN_VARS = (
    "persons_present",
    "persons_at_home",
    "displaced_out",
    "hosted_displaced",
    "killed_cum",
    "strikes",
    "strikes_cum",
    "killed",
    "coop_share",
    "resist_share",
    "neutral_share",
    "protest_share",
    "coop_share_home",
    "resist_share_home",
    "council",
    "council_independent",
    "hts_control",
    "hts_services",
    "damage",
    "exposure",
    "threat",
    "protection",
    "fear_mean",
    "grievance_regime_mean",
    "grievance_hts_mean",
    "reputation",
    "front_code",
    "arrests",
)

GOV_VARS = (
    "persons_present",
    "killed_cum",
    "killed",
    "displaced_persons",
    "displacement_moves",
    "displacement_moves_cum",
    "returns",
    "strikes",
    "strikes_cum",
    "coop_share",
    "resist_share",
    "neutral_share",
    "protest_share",
    "coop_share_resisting",
    "coop_share_resisting_home",
    "resist_share_resisting",
    "resist_share_resisting_home",
    "protest_share_resisting",
    "persons_resisting_stayers",
    "persons_resisting_left",
    "persons_resisting_guests",
    "coop_share_resisting_stayers",
    "coop_share_resisting_left",
    "coop_share_resisting_guests",
    "killed_resisting_home_cum",
    "coop_share_other",
    "hts_control_mean",
    "hts_services_mean",
    "council_mean",
    "councils_independent",
    "hts_fighters",
    "hts_resources",
    "hts_legitimacy",
    "hts_retaliation",
    "hts_recruits_cum",
    "rival_recruits_cum",
    "rival_alignment_mean",
    "rival_fighters",
    "fear_mean",
    "grievance_regime_mean",
    "grievance_hts_mean",
    "arrests",
    "council_takeovers_cum",
    "towns_regime_held",
)

EVENT_COLUMNS = ("day", "event", "town", "to_town", "count", "persons", "note")


def _share(num: np.ndarray | float, den: np.ndarray | float):
    return np.divide(num, den, out=np.zeros_like(np.asarray(num, dtype=float)), where=np.asarray(den) > 0)


class Collector:
    """Preallocated daily tables for one run."""

    def __init__(self, model: AllegianceModel):
        self.model = model
        days = model.scenario.days
        n = model.town_state.n
        self.town = {v: np.zeros((days, n)) for v in TOWN_VARS}
        self.gov = {v: np.zeros(days) for v in GOV_VARS}
        self.groups = [g.name for g in model.rival_groups]
        self.align = np.zeros((days, len(self.groups)))
        self.days_done = 0

    def collect(self, day: int) -> None:
        """Record the end-of-day state of ``day``."""
        m = self.model
        ts = m.town_state
        hh = m.hh
        w = m.weight
        T, G = self.town, self.gov
        by = m.by_stance
        present = by.sum(axis=1)
        home_by = m.home_by_stance()
        home_alive = home_by.sum(axis=1)
        at_home = present - ts.hosted
        displaced_out = home_alive - at_home
        sums = {
            key: m.town_sums(getattr(hh, attr))
            for key, attr in (
                ("fear_mean", "fear"),
                ("grievance_regime_mean", "g_regime"),
                ("grievance_hts_mean", "g_hts"),
            )
        }
        T["persons_present"][day] = present * w
        T["persons_at_home"][day] = at_home * w
        T["displaced_out"][day] = displaced_out * w
        T["hosted_displaced"][day] = ts.hosted * w
        T["killed_cum"][day] = ts.killed_home_cum * w
        T["strikes"][day] = ts.strikes_today
        T["strikes_cum"][day] = ts.strikes_cum
        T["killed"][day] = ts.killed_today * w
        T["coop_share"][day] = _share(by[:, COOPERATE], present)
        T["resist_share"][day] = _share(by[:, RESIST], present)
        T["neutral_share"][day] = _share(by[:, NEUTRAL], present)
        T["protest_share"][day] = ts.protest_share
        T["coop_share_home"][day] = _share(home_by[:, COOPERATE], home_alive)
        T["resist_share_home"][day] = _share(home_by[:, RESIST], home_alive)
        T["council"][day] = ts.council
        T["council_independent"][day] = ts.independent
        T["hts_control"][day] = ts.control
        T["hts_services"][day] = ts.services
        T["damage"][day] = ts.damage
        T["exposure"][day] = ts.exposure_eff
        T["threat"][day] = ts.threat
        T["protection"][day] = ts.protection
        for key, s in sums.items():
            T[key][day] = _share(s, present)
        T["reputation"][day] = ts.reputation
        T["front_code"][day] = ts.front
        T["arrests"][day] = ts.arrests_today * w

        tot = present.sum()
        res = m.resisting
        G["persons_present"][day] = tot * w
        G["killed_cum"][day] = ts.killed_home_cum.sum() * w
        G["killed"][day] = ts.killed_today.sum() * w
        G["displaced_persons"][day] = displaced_out.sum() * w
        G["displacement_moves"][day] = m.moves_today
        G["displacement_moves_cum"][day] = m.moves_cum
        G["returns"][day] = m.returns_today
        G["strikes"][day] = ts.strikes_today.sum()
        G["strikes_cum"][day] = ts.strikes_cum.sum()
        G["coop_share"][day] = _share(by[:, COOPERATE].sum(), tot)
        G["resist_share"][day] = _share(by[:, RESIST].sum(), tot)
        G["neutral_share"][day] = _share(by[:, NEUTRAL].sum(), tot)
        G["protest_share"][day] = _share(m.protest_persons.sum(), tot)
        G["coop_share_resisting"][day] = _share(by[res, COOPERATE].sum(), present[res].sum())
        G["coop_share_resisting_home"][day] = _share(home_by[res, COOPERATE].sum(), home_alive[res].sum())
        G["resist_share_resisting"][day] = _share(by[res, RESIST].sum(), present[res].sum())
        G["resist_share_resisting_home"][day] = _share(home_by[res, RESIST].sum(), home_alive[res].sum())
        G["protest_share_resisting"][day] = _share(m.protest_persons[res].sum(), present[res].sum())
        # Composition of the two resisting-town measures (current town = stayers + guests,
        # home town = stayers + those who left; the dead are in neither).
        home_res = res[hh.home]
        away = hh.town != hh.home
        coop = hh.stance == COOPERATE
        for key, mask in (
            ("stayers", home_res & ~away),
            ("left", home_res & away),
            ("guests", res[hh.town] & away),
        ):
            persons = float(hh.persons[mask].sum())
            G[f"persons_resisting_{key}"][day] = persons * w
            G[f"coop_share_resisting_{key}"][day] = _share(float(hh.persons[mask & coop].sum()), persons)
        G["killed_resisting_home_cum"][day] = ts.killed_home_cum[res].sum() * w
        G["coop_share_other"][day] = _share(by[~res, COOPERATE].sum(), present[~res].sum())
        G["hts_control_mean"][day] = _share((ts.control * present).sum(), tot)
        G["hts_services_mean"][day] = _share((ts.services * present).sum(), tot)
        G["council_mean"][day] = _share((ts.council * present).sum(), tot)
        G["councils_independent"][day] = ts.independent.sum()
        G["hts_fighters"][day] = m.hts.fighters
        G["hts_resources"][day] = m.hts.resources
        G["hts_legitimacy"][day] = m.hts.legitimacy
        G["hts_retaliation"][day] = m.hts.retaliation
        G["hts_recruits_cum"][day] = m.hts.recruits
        G["rival_recruits_cum"][day] = sum(g.recruits for g in m.rival_groups)
        align = np.array([g.alignment for g in m.rival_groups])
        fighters = np.array([g.fighters for g in m.rival_groups])
        G["rival_alignment_mean"][day] = _share((align * fighters).sum(), fighters.sum()) if len(align) else 0.0
        G["rival_fighters"][day] = fighters.sum() if len(fighters) else 0.0
        for key in ("fear_mean", "grievance_regime_mean", "grievance_hts_mean"):
            G[key][day] = _share(sums[key].sum(), tot)
        G["arrests"][day] = ts.arrests_today.sum() * w
        G["council_takeovers_cum"][day] = m.hts.takeovers
        G["towns_regime_held"][day] = (~ts.open).sum()
        if len(self.groups):
            self.align[day] = align
        self.days_done = day + 1

    # ------------------------------------------------------------------ frames

    def _dates(self, days: np.ndarray) -> pd.Series | None:
        start = self.model.scenario.start_date
        if start is None:
            return None
        return pd.Series(pd.to_datetime(start) + pd.to_timedelta(days, unit="D"), dtype="datetime64[ms]")

    def frames(self) -> dict[str, pd.DataFrame]:
        """Tidy DataFrames: ``timeseries`` (per day), ``towns`` (per town per day), ``events``."""
        nd = self.days_done
        day = np.arange(nd)
        dates = self._dates(day)
        ts = pd.DataFrame({"day": day})
        if dates is not None:
            ts["date"] = dates
        for k, v in self.gov.items():
            ts[k] = v[:nd]
        for j, name in enumerate(self.groups):
            ts[f"alignment:{name}"] = self.align[:nd, j]

        names = self.model.town_state.names
        n = len(names)
        towns = pd.DataFrame({"day": np.repeat(day, n)})
        if dates is not None:
            towns["date"] = np.repeat(dates.to_numpy(), n)
        towns["town"] = pd.Categorical(np.tile(names, nd), categories=names)
        towns["initial_stance"] = pd.Categorical(
            np.tile([t.stance for t in self.model.scenario.towns], nd),
            categories=["resisting", "hts", "rival", "mixed", "unknown"],
        )
        for k, v in self.town.items():
            if k == "front_code":
                towns["front"] = pd.Categorical.from_codes(v[:nd].astype(int).ravel(), categories=list(FRONT_STATUS))
            elif k == "council_independent":
                towns[k] = v[:nd].ravel().astype(bool)
            else:
                towns[k] = v[:nd].ravel()

        ev = pd.DataFrame(self.model.events, columns=list(EVENT_COLUMNS))
        ev["day"] = ev["day"].astype(np.int64)
        if dates is not None:
            ev.insert(
                1,
                "date",
                pd.Series(
                    pd.to_datetime(self.model.scenario.start_date) + pd.to_timedelta(ev["day"], unit="D"),
                    dtype="datetime64[ms]",
                ),
            )
        lookup = np.array([*names, ""], dtype=object)
        ev["town"] = pd.Categorical(lookup[ev["town"].to_numpy(dtype=int)], categories=[*names, ""])
        ev["to_town"] = pd.Categorical(lookup[ev["to_town"].to_numpy(dtype=int)], categories=[*names, ""])
        ev["count"] = ev["count"].astype(np.int64)
        ev["persons"] = ev["persons"].astype(float)
        ev["event"] = ev["event"].astype(str)
        ev["note"] = ev["note"].astype(str)
        return {"timeseries": ts, "towns": towns, "events": ev}
