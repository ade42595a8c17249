"""The thesis comparisons, declared once: which policies are compared with which, on which outcomes.

Plain data, importable from every layer from the experiments layer up: the experiments that run
the comparisons (the paired thesis sweeps, the posterior thesis) and the analysis that tabulates
them read the same declaration.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICY = "air_campaign.policy"
CONTROL = "none"
TREATMENT = "resisting_towns"
ALTERNATIVE = "hts_strongholds"
CALENDAR = "calendar"

# outcome -> (label, sign the thesis predicts: +1 up, -1 down, 0 no prediction)
OUTCOMES: dict[str, tuple[str, int]] = {
    "coop_resisting_mean": ("cooperation with HTS, resisting towns, by current town (window mean)", 1),
    "coop_resisting_home_mean": ("cooperation with HTS, resisting towns, by home town (window mean)", 1),
    "coop_resisting_final": ("cooperation with HTS, resisting towns, by current town (end)", 1),
    "coop_resisting_home_final": ("cooperation with HTS, resisting towns, by home town (end)", 1),
    "coop_all_mean": ("cooperation with HTS, all towns (window mean)", 1),
    "coop_all_final": ("cooperation with HTS, all towns (end)", 1),
    "protest_resisting_mean": ("protest participation, resisting towns (window mean)", -1),
    "protest_all_mean": ("protest participation, all towns (window mean)", -1),
    "hts_fighters_final": ("HTS fighters (end)", 1),
    "hts_recruits_final": ("HTS recruits (cumulative)", 1),
    "rival_alignment_final": ("rival groups' alignment with HTS (end)", 1),
    "rival_alignment_window": ("rival groups' alignment with HTS (window mean)", 1),
    "under_hts_mean": ("share of persons living under HTS control (window mean)", 1),
    "under_hts_final": ("share of persons living under HTS control (end)", 1),
    "displaced_final": ("displaced persons (end)", 0),
}

#: The two headline measures of cooperation in resisting towns (current town, home town).
HEADLINE: tuple[str, str] = ("coop_resisting_mean", "coop_resisting_home_mean")

#: Outcomes whose posterior probabilities the posterior thesis reports.
POSTERIOR_OUTCOMES: tuple[str, ...] = (
    "coop_resisting_home_mean",
    "coop_resisting_mean",
    "protest_resisting_mean",
    "rival_alignment_final",
)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: ``treatment - control`` under common random numbers."""

    treatment: str
    control: str = CONTROL

    @property
    def label(self) -> str:
        """``treatment - control``."""
        return f"{self.treatment} - {self.control}"


#: Every comparison of the thesis, in report order (``calendar`` only where the scenario has a calendar).
COMPARISONS: tuple[Comparison, ...] = (
    Comparison(TREATMENT),
    Comparison(ALTERNATIVE),
    Comparison(CALENDAR),
    Comparison(TREATMENT, ALTERNATIVE),
)


def comparisons(has_calendar: bool) -> tuple[Comparison, ...]:
    """The comparisons a scenario supports (the calendar policy needs a strike calendar)."""
    return tuple(c for c in COMPARISONS if has_calendar or CALENDAR not in (c.treatment, c.control))


def policies(has_calendar: bool) -> list[str]:
    """Every policy the comparisons need, the control first."""
    out = [CONTROL]
    for c in comparisons(has_calendar):
        for p in (c.treatment, c.control):
            if p not in out:
                out.append(p)
    return out
