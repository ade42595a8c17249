"""Scenario schema: every parameter with its unit, range, default and source.

The same field metadata feeds validation, error messages and the parameter
tables in ``docs/ODD.md`` (see :func:`parameter_table`). Mechanism strengths are
dimensionless multipliers (or, for the pretext, a share): at zero the
mechanism is off and leaves no trace in the outcome.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

ASSUMED = "assumed"


def param(
    default: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    unit: str = "-",
    source: str = ASSUMED,
    doc: str,
) -> Any:
    """A scenario parameter: default, allowed range, unit, source and meaning."""
    return Field(
        default,
        ge=lo,
        le=hi,
        description=doc,
        json_schema_extra={"unit": unit, "source": source},
    )


class Strict(BaseModel):
    """Base for every schema block: unknown keys are errors, values validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- mechanisms


class Mechanisms(Strict):
    """Strengths of the competing mechanisms (docs/ODD.md section 1.2). Zero switches one off."""

    rally: float = param(
        1.0,
        0,
        10,
        unit="multiplier",
        source="Haid 2018; Mironova et al. 2014",
        doc="Rally / protection: the current regime threat raises the value of HTS as armed protector. "
        "Multiplies the pull of protection (recent threat x HTS strength x retaliation boost) inside a "
        "saturating value 1 - exp(-pull), so protection stays within 0-1 however strong the rally; "
        "weighted by choice.protection_weight in the allegiance index.",
    )
    regime_blame: float = param(
        0.8,
        0,
        1,
        unit="share",
        source="Condra & Shapiro 2012 (Iraq: civilians punish the side that caused the casualties); "
        "Lyall, Blair & Imai 2013 (Afghanistan: harm by the out-group costs it support); share assumed",
        doc="Blame on the perpetrator: share of strike harm blamed on the regime, feeding grievance "
        "against the regime at grievance.regime_rate. Independent of pretext_blame (blaming HTS "
        "for drawing the strikes does not absolve the regime).",
    )
    institutions: float = param(
        1.0,
        0,
        10,
        unit="multiplier",
        source="Haid 2018; Dell & Querubin 2018",
        doc="Institutions hollowed out: strikes damage councils and markets and HTS services "
        "fill the gap. Multiplies air_campaign.council_damage, civil_society.strike_loss "
        "and choice.service_gap_weight.",
    )
    suppression: float = param(
        1.0,
        0,
        10,
        unit="multiplier",
        source="Lyall 2009",
        doc="Suppression / deterrence: fear makes gatherings and public allegiance dangerous. "
        "Multiplies protest.fear_risk_weight (kappa) and choice.fear_withdrawal.",
    )
    pretext_blame: float = param(
        0.2,
        0,
        1,
        unit="share",
        source="Haid 2018 (residents of towns resisting HTS blamed its presence for drawing strikes); "
        "share assumed. Not Condra & Shapiro 2012, who find blame on the perpetrator",
        doc="Blame on the pretext: share of strike harm blamed on HTS for drawing the strikes, "
        "weighted by HTS's presence in the struck town (its control where it holds the town, 0 where "
        "a rival group or no armed group holds it), feeding grievance against HTS at grievance.hts_rate "
        "after the home-team discount. Raises G_H without lowering G_R.",
    )
    exit: float = param(
        1.0,
        0,
        10,
        unit="multiplier",
        source="Fabbe, Hazlett & Sinmazdemir 2019",
        doc="Exit: exposure makes households flee, and the displaced disengage from armed "
        "actors. Multiplies flight.exposure_rate and choice.displaced_disengagement "
        "(flight from the front and the emptying of towns the regime takes belong to the front submodel).",
    )
    control: float = param(
        1.0,
        0,
        10,
        unit="multiplier",
        source="Kalyvas 2006",
        doc="Control drives collaboration. Multiplies choice.control_weight.",
    )
    consolidation: float = param(
        1.0,
        0,
        10,
        unit="multiplier",
        source="Kalyvas 2006",
        doc="Collaboration drives control (the control feedback): HTS control grows with the "
        "cooperating share and erodes with protest. Multiplies hts.consolidation_rate and "
        "hts.protest_erosion.",
    )


MECHANISM_NAMES: tuple[str, ...] = tuple(Mechanisms.model_fields)


# --------------------------------------------------------------------------- households


class StanceShares(Strict):
    """Initial shares of households resisting / neutral / cooperating with HTS."""

    resist: float = Field(ge=0, le=1, description="share resisting HTS")
    neutral: float = Field(ge=0, le=1, description="share neutral")
    cooperate: float = Field(ge=0, le=1, description="share cooperating with HTS")

    @model_validator(mode="after")
    def _sums_to_one(self) -> StanceShares:
        total = self.resist + self.neutral + self.cooperate
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"resist + neutral + cooperate must sum to 1 (got {total:.4g})")
        return self


def _shares(r: float, n: float, c: float) -> StanceShares:
    return StanceShares(resist=r, neutral=n, cooperate=c)


class InitialHouseholds(Strict):
    """How households start, by their town's initial stance label."""

    stance: dict[str, StanceShares] = Field(
        default_factory=lambda: {
            "resisting": _shares(0.45, 0.40, 0.15),
            "hts": _shares(0.10, 0.45, 0.45),
            "rival": _shares(0.30, 0.50, 0.20),
            "mixed": _shares(0.25, 0.50, 0.25),
            "unknown": _shares(0.20, 0.55, 0.25),
        },
        description="initial stance shares per town stance label (assumed)",
    )
    grievance_regime: float = param(
        0.4,
        0,
        1,
        unit="0-1",
        source="assumed: below saturation so that harm can raise it (the regime as the 'number one enemy', "
        "Haid 2018, is carried by blame, mechanisms.regime_blame, not by a standing level near 1)",
        doc="Mean initial grievance against the regime (Beta distributed).",
    )
    grievance_hts_resisting: float = param(
        0.45, 0, 1, unit="0-1", doc="Mean initial grievance against HTS in resisting towns."
    )
    grievance_hts_other: float = param(0.20, 0, 1, unit="0-1", doc="Mean initial grievance against HTS elsewhere.")
    concentration: float = param(
        8.0,
        0.5,
        1000,
        unit="-",
        doc="Beta concentration (a + b) of initial grievances: higher is less spread.",
    )


class Households(Strict):
    """Agent resolution and population scaling."""

    unit: Literal["household", "person"] = Field(
        "household",
        description="One agent per household, or one per person (person-level option).",
    )
    size: int = param(
        6,
        1,
        20,
        unit="persons/household",
        source="assumed: about six persons (6.2 persons per household in the 2004 Syrian census)",
        doc="Persons per household agent when unit is 'household'.",
    )
    sample_fraction: float = param(
        1.0,
        1e-4,
        1.0,
        unit="share",
        doc="Share of households represented by agents; each agent stands for "
        "1/sample_fraction real ones and reported counts are scaled back up.",
    )
    displaced_before_scale: float = param(
        1.0,
        0,
        3,
        unit="multiplier",
        doc="Multiplier on every town's `displaced` (persons displaced there before the start): the uncertain "
        "size of the stock already present. The towns' `persons` are unchanged (a larger stock is a larger "
        "displaced share of them, at most all of them).",
    )
    initial: InitialHouseholds = Field(default_factory=InitialHouseholds)


# --------------------------------------------------------------------------- household rules


class Exposure(Strict):
    """Recent harm E_t: a decaying memory of casualties and strikes in and near a town."""

    half_life_days: float = param(
        30.0,
        0.5,
        730,
        unit="days",
        source="Condra et al. 2010 (weeks to months)",
        doc="Half-life of the harm memory.",
    )
    casualty_weight: float = param(
        1.0,
        0,
        100,
        unit="per (killed per 1,000 residents)",
        doc="Harm per civilian killed per 1,000 residents.",
    )
    strike_weight: float = param(0.05, 0, 10, unit="per strike", doc="Harm per strike landing in the town.")
    neighbour_weight: float = param(0.3, 0, 1, unit="-", doc="Weight of a neighbouring town's harm at zero distance.")
    neighbour_range_km: float = param(10.0, 0.1, 200, unit="km", doc="e-folding distance of neighbouring towns' harm.")
    personal_weight: float = param(
        2.0,
        0,
        100,
        unit="per person killed",
        doc="Harm felt by a household per member killed (decays like E_t).",
    )


class Grievance(Strict):
    """Grievances against the regime (G_R) and HTS (G_H)."""

    regime_rate: float = param(0.05, 0, 20, unit="1/(harm*day)", doc="a_R: growth of G_R per unit exposure.")
    hts_rate: float = param(0.05, 0, 20, unit="1/(harm*day)", doc="a_H: growth of G_H per unit of HTS-attributed harm.")
    regime_decay: float = param(
        0.01, 0, 1, unit="1/day", doc="Daily relaxation of G_R toward the household's standing grievance."
    )
    hts_decay: float = param(
        0.01, 0, 1, unit="1/day", doc="Daily relaxation of G_H toward the household's standing grievance."
    )
    repression_weight: float = param(
        0.2,
        0,
        100,
        unit="per (arrest per household)",
        doc="HTS-attributed harm per recent arrest per household in town.",
    )
    takeover_weight: float = param(
        0.05, 0, 10, unit="per takeover", doc="HTS-attributed harm of a recent council takeover."
    )
    memory_half_life_days: float = param(
        30.0, 0.5, 730, unit="days", doc="Half-life of a town's memories of arrests and council takeovers."
    )
    tax_weight: float = param(
        0.004, 0, 1, unit="per (control*day)", doc="Daily HTS-attributed harm of taxes per unit control."
    )
    home_team_discount: float = param(
        0.5,
        0,
        1,
        unit="share",
        source="Lyall, Blair & Imai 2013 (direction, Afghanistan: Taliban harm costs the Taliban less "
        "support than ISAF harm costs ISAF); size assumed",
        doc="Home-team discount: share by which harm attributed to HTS (strike harm blamed on it for "
        "drawing the strikes, and its own repression, arrests, council takeovers, taxes) raises G_H "
        "less than the same harm attributed to the regime raises G_R; 0 is off (equal harm, equal shift).",
    )


class Fear(Strict):
    """Fear F (Bennett 2008 style)."""

    rate: float = param(0.2, 0, 50, unit="1/(harm*day)", doc="phi: growth of fear per unit exposure.")
    decay: float = param(0.03, 0, 1, unit="1/day", doc="Daily decay of fear.")


class Choice(Strict):
    """Logit choice among resist / neutral / cooperate (utilities relative to neutral)."""

    calibrate_constants: bool = Field(
        True,
        description="Set each town's constants for resisting and cooperating so that its initial "
        "stance shares are the equilibrium of the choice model in the initial state (the "
        "intercepts below are then ignored).",
    )
    revision_rate: float = param(
        0.05, 0, 1, unit="1/day", doc="Daily probability that a household reconsiders its stance."
    )
    cooperate_intercept: float = param(0.0, -10, 10, doc="b0 for cooperating (without calibrated constants).")
    resist_intercept: float = param(0.0, -10, 10, doc="b0 for resisting (without calibrated constants).")
    protection_weight: float = param(
        1.5,
        0,
        50,
        unit="log-odds",
        source="assumed (rally mechanism): the largest shift of the cooperate/resist log-odds protection can make",
        doc="b_P: weight of protection_t (0-1) in the allegiance index (U_coop - U_resist).",
    )
    protection_half_life_days: float = param(
        14.0,
        1,
        365,
        unit="days",
        source="assumed: weeks (protection follows the current threat, so cooperation the threat raised "
        "can loosen when it recedes)",
        doc="Half-life of the threat memory behind protection (shorter than the exposure memory).",
    )
    services_weight: float = param(1.5, 0, 50, doc="b_S: weight of HTS services.")
    service_gap_weight: float = param(2.0, 0, 50, doc="Extra service value where strike damage hollowed out the town.")
    control_weight: float = param(1.5, 0, 50, doc="b_C: weight of HTS control.")
    peer_weight: float = param(1.0, 0, 50, doc="b_peer: weight of the town's share of the same stance.")
    grievance_weight: float = param(
        3.0,
        0,
        50,
        unit="log-odds per unit grievance",
        doc="b_G: weight of G_R - G_H in the allegiance index (U_coop - U_resist): each grievance enters "
        "once, with the same weight.",
    )
    regime_grievance_to_hts: float = param(
        1.0,
        0,
        1,
        unit="share",
        source="assumed: 1 is the two-sided setting of Lyall, Blair & Imai (2013), where one combatant's harm is "
        "the other's gain; in Idlib's resisting towns HTS and the towns' own councils and factions both oppose "
        "the regime, so how much of the regime's harm favours HTS over them is not known (docs/DECISIONS.md 31)",
        doc="rho: the share of grievance against the regime that favours HTS over its local opponents in the "
        "allegiance index, A = b_G * (rho * G_R - G_H) + b_P * protection; 1: all of it, 0: none (the regime's "
        "harm then moves no one between HTS and resisting it).",
    )
    council_weight: float = param(1.5, 0, 50, doc="b_L: weight of independent council legitimacy on resisting.")
    fear_withdrawal: float = param(1.0, 0, 50, doc="Fear's push toward neutral (withdrawal from public allegiance).")
    displaced_disengagement: float = param(1.0, 0, 50, doc="Displaced households' extra utility of neutrality (exit).")


class Protest(Strict):
    """Protest against HTS: Epstein (2002) Model I with HTS in the role of the police."""

    calibrate_threshold: bool = Field(
        True,
        description="Shift every household's protest threshold by one constant, solved at the start so that "
        "the stationary ordinary-day protest share in resisting towns is protest.ordinary_share (arrests "
        "and jail included); households that would protest start protesting or in jail in their "
        "stationary proportions.",
    )
    ordinary_share: float = param(
        0.02,
        0.0001,
        0.5,
        unit="share of persons",
        source="assumed from reported crowds: dozens to about a thousand people (about 1,000 in Atarib, "
        "SMART News, 23 Jul 2017; about 250 in Kafranbel, SMART News, 12 May 2017; dozens in Kafranbel "
        "and Binnish, SMART News, 2 Feb 2018), about 0.5-5% of a town on a protest day",
        doc="Ordinary-day protest share in resisting towns that the threshold calibration matches "
        "(the documented order of magnitude of the rule itself, not a validation target).",
    )

    threshold_mean: float = param(
        0.2,
        0,
        1,
        source="Epstein 2002",
        doc="Mean protest threshold T_i before the calibration shift (protest.calibrate_threshold).",
    )
    threshold_sd: float = param(0.05, 0, 1, doc="Spread of T_i (normal, clipped at 0).")
    arrest_constant: float = param(
        2.3, 0, 50, source="Epstein 2002", doc="k in P_arrest = 1 - exp(-k * security / (1 + crowd))."
    )
    crowd_scale: float = param(
        5.0,
        0,
        1000,
        doc="Crowd size in P_arrest: protest share of town times this (safety in numbers; at 20 the ordinary "
        "protest level was an unstable state that tipped into mass protest within days, ODD 5.8).",
    )
    fear_risk_weight: float = param(
        1.0, 0, 50, source="Lyall 2009", doc="kappa: fear adds to the perceived risk of gathering."
    )
    peer_weight: float = param(0.3, 0, 10, doc="Town protest share's push to protest.")
    jail_days: int = param(30, 0, 3650, unit="days", doc="Days an arrested household cannot protest.")
    arrest_grievance: float = param(0.1, 0, 1, unit="0-1", doc="Jump of G_H toward 1 for an arrested household.")


class Flight(Strict):
    """Flight and return. P(flee) = 1 - exp(-(f_E * F * E_t + f_front * front_proximity_t))."""

    exposure_rate: float = param(0.002, 0, 10, unit="1/(harm*day)", doc="f_E.")
    front_rate: float = param(0.004, 0, 10, unit="1/day", doc="f_front.")
    distance_exponent: float = param(
        1.5, 0, 5, unit="-", doc="gamma in destination weight capacity*safety/distance^gamma."
    )
    return_rate: float = param(0.005, 0, 1, unit="1/day", doc="Daily return home probability when home is safe.")
    capture_rate: float = param(
        0.25,
        0,
        1,
        unit="1/day",
        source="assumed (a town taken by the regime empties over days, not in one day: about 94% gone in ten days)",
        doc="Daily probability that a household still in a town the regime has taken leaves it (1: all on the day).",
    )
    safety_harm_scale: float = param(1.0, 0.01, 100, unit="harm", doc="Exposure at which safety falls by 1/e.")
    border_safety: float = param(2.0, 1, 20, unit="multiplier", doc="Safety bonus of border towns.")
    network_weight: float = param(
        1.0,
        0,
        100,
        unit="per (hosted displaced per resident)",
        source="assumed (chain migration through kin and networks)",
        doc="Extra attraction of a destination per displaced person it already hosts per initial resident.",
    )


class Recruitment(Strict):
    """Fighters from households."""

    hts_rate: float = param(
        0.0002, 0, 1, unit="1/day", doc="Daily recruitment probability of cooperating households at G_R = 1."
    )
    rival_rate: float = param(
        0.0003,
        0,
        1,
        unit="1/day",
        doc="Daily recruitment probability of resisting households into a rival group present.",
    )


# --------------------------------------------------------------------------- actors


class DatedSwitch(Strict):
    """A date (or day index) from which something applies."""

    date: dt.date | None = Field(None, description="calendar date (ISO, needs start_date)")
    day: int | None = Field(None, ge=0, description="day index (0 = start_date)")

    @model_validator(mode="after")
    def _one_of(self) -> DatedSwitch:
        if (self.date is None) == (self.day is None):
            raise ValueError("give exactly one of 'date' or 'day'")
        return self


class GovernanceBody(DatedSwitch):
    """An HTS-affiliated governing body (the Salvation Government) that presses councils."""

    takeover_multiplier: float = param(
        2.0,
        0,
        100,
        unit="multiplier",
        source="assumed; the Salvation Government formed 2 Nov 2017 (date: no primary source identified; "
        "SMART News, 10 Nov 2017, reports councils joining it)",
        doc="Factor on council takeover rates from its founding.",
    )


class HTSConfig(Strict):
    """Hay'at Tahrir al-Sham: fighters, resources, legitimacy and policies."""

    fighters: float = param(10000, 0, 1e6, unit="fighters", doc="Initial fighters.")
    resources: float = param(100.0, 0, 1e9, unit="resource units", doc="Initial resources.")
    legitimacy: float = param(0.3, 0, 1, unit="0-1", doc="Initial legitimacy L (Epstein).")
    legitimacy_adjust: float = param(
        0.02, 0, 1, unit="1/day", doc="Daily adjustment of legitimacy toward the cooperating share."
    )
    income_per_control: float = param(
        0.02,
        0,
        100,
        unit="resources/(1,000 persons*day)",
        doc="Tax and trade income per 1,000 persons under full control.",
    )
    service_rate: float = param(0.02, 0, 1, unit="1/day", doc="Growth of services where HTS controls and is funded.")
    service_decay: float = param(0.005, 0, 1, unit="1/day", doc="Decay of services.")
    service_cost: float = param(
        0.01, 0, 100, unit="resources/(1,000 persons*day)", doc="Cost of services per 1,000 persons at full service."
    )
    funding_half: float = param(
        50.0, 0.001, 1e9, unit="resource units", doc="Resources at which services are half funded."
    )
    security_per_control: float = param(
        1.0, 0, 100, unit="-", doc="Security presence per unit control and relative fighters."
    )
    repression: float = param(0.5, 0, 1, unit="probability", doc="Probability that a feasible arrest is made.")
    takeover_rate: float = param(0.01, 0, 1, unit="1/day", doc="Base daily council takeover probability.")
    takeover_threshold: float = param(
        0.01,
        0,
        1,
        unit="pressure",
        source="assumed: above the sampling noise of the pressure's excess (99.9% point 0.007 at sample fraction "
        "0.02), below the campaign's median excess (0.03); docs/DECISIONS.md 33",
        doc="Excess of the takeover pressure over its standing level that HTS ignores: councils fall with "
        "probability takeover_rate * m_gov * max(0, g - g0 - takeover_threshold).",
    )
    takeover_control_gain: float = param(0.3, 0, 1, unit="share", doc="Control gained on a takeover (toward 1).")
    takeover_council_loss: float = param(0.6, 0, 1, unit="share", doc="Council legitimacy lost on a takeover.")
    protest_shield: float = param(3.0, 0, 100, unit="-", doc="How strongly protest protects a council from takeover.")
    consolidation_rate: float = param(0.003, 0, 1, unit="1/day", doc="Growth of control with the cooperating share.")
    control_half_life_days: float | None = param(
        None,
        7,
        3650,
        unit="days",
        source="assumed: a restoring force the record cannot date; proposed prior log-uniform on 30-730 days, not "
        "yet in the shipped calibration (docs/DECISIONS.md 34)",
        doc="Half-life of HTS control's return to its standing level (its level at the start, or at the town's "
        "last change of hands or council takeover), where the town is open. null: no return, control "
        "integrates every push (the model before decision 34).",
    )
    protest_erosion: float = param(0.05, 0, 1, unit="1/day", doc="Erosion of control per unit protest share.")
    retaliation_rate: float = param(
        0.05,
        0,
        10,
        unit="per strike",
        doc="Retaliation activity in a town per regime strike on it (neighbours' strikes weighted by "
        "exposure.neighbour_weight * exp(-distance / exposure.neighbour_range_km)).",
    )
    retaliation_half_life_days: float = param(14.0, 0.5, 365, unit="days", doc="Half-life of retaliation memory.")
    rally_protection_boost: float = param(
        1.0, 0, 20, unit="-", doc="Protection value gained per unit of the town's retaliation memory."
    )
    attack_rivals_rate: float = param(
        0.0, 0, 1, unit="1/day", doc="Daily probability of an HTS attack on a rival group."
    )
    reference_fighters: float = param(
        10000,
        1,
        1e6,
        unit="fighters",
        doc="Force at which HTS strength is 1 (security and protection scale with fighters / this).",
    )
    strength_cap: float = param(
        2.0, 0.1, 100, unit="-", doc="Cap on HTS (plus aligned rivals') relative strength in a town."
    )
    fighters_lost_per_strike: float = param(
        2.0, 0, 1000, unit="fighters", doc="Fighters killed per strike at full control."
    )
    cohesion: float = param(
        1.0, 0, 1, unit="0-1", doc="Share of HTS fighters present that fight as one (multiplies its local strength)."
    )
    governance_body: GovernanceBody | None = Field(None, description="Salvation-Government-style body.")


class ControlEvent(DatedSwitch):
    """A dated change of who holds a town: an input for replaying history, like a calendar strike.

    The shipped scenarios carry none: who holds what is an output of the model.
    """

    town: str
    controller: str = Field(description="'hts' or the name of a rival group present in the town")
    source: str = ASSUMED


#: Controller names that are not rival groups (a town's `controller` is one of these or a group's name).
RESERVED_CONTROLLERS: tuple[str, ...] = ("hts", "contested", "regime", "local")


class RivalGroupConfig(Strict):
    """A rival rebel group (Ahrar al-Sham, Nour al-Din al-Zenki, FSA factions)."""

    name: str
    fighters: float = param(2000, 0, 1e6, unit="fighters", doc="Initial fighters.")
    alignment: float = param(-0.3, -1, 1, unit="-1..1", doc="Initial alignment with HTS.")
    towns: dict[str, float] = Field(
        default_factory=dict,
        description="presence (0-1) of the group in each named town: its fighters are spread over its towns "
        "in proportion to these weights (shares sum to one over the open, non-local towns)",
    )
    cohesion: float = param(
        1.0,
        0,
        1,
        unit="0-1",
        source="assumed (Christia 2012: fragmented groups fight below their numbers)",
        doc="Share of the group's fighters present that fight as one (multiplies its local strength).",
    )
    outside_backing: float = param(
        0.0,
        0,
        1,
        unit="1/day",
        source="assumed (Christia 2012: outside patrons shift alliances)",
        doc="Daily pull of the group's alignment away from HTS by outside backers (toward -1); 0 = none.",
    )
    resources: float = param(
        20.0,
        0,
        1e9,
        unit="resource units",
        source="assumed (a fifth of the HTS default)",
        doc="Initial resources that fund the group's services where it holds towns.",
    )
    source: str = Field(ASSUMED, description="where the group's figures come from")

    @model_validator(mode="after")
    def _presence_range(self) -> RivalGroupConfig:
        for town, presence in self.towns.items():
            if not 0 <= presence <= 1:
                raise ValueError(f"presence in {town!r} must be in [0, 1] (got {presence})")
        if self.name in RESERVED_CONTROLLERS:
            raise ValueError(f"a rival group cannot be called {self.name!r} (a reserved controller name)")
        return self


class Rivals(Strict):
    """Rival groups: alignment drivers, coalitions and fighting for towns (ODD 7.6)."""

    pressure_rate: float = param(
        0.01,
        0,
        1,
        unit="1/day",
        source="Haid 2018 (the common threat reunites); Christia 2012",
        doc="Alignment gain toward HTS per unit common threat: presence-weighted regime harm (strikes) "
        "and front advance in the group's towns (a standing front is no pressure).",
    )
    advance_weight: float = param(
        1.0,
        0,
        100,
        unit="harm per front change",
        doc="Common threat of a front change (a town becoming contested or regime-held) at zero distance; "
        "decays with distance (front.range_km) and in time (exposure.half_life_days).",
    )
    pretext_rate: float = param(
        0.01,
        0,
        1,
        unit="1/day",
        source="Condra & Shapiro 2012 (blame for drawing strikes); default = the pressure_rate default (no built-in "
        "imbalance: which of the two is larger is left to the calibration prior), assumed",
        doc="Alignment loss per unit regime strike harm in the group's towns that the group blames on HTS for "
        "drawing the strikes (strikes only, not the front).",
    )
    threat_half_life_days: float = param(
        90.0,
        0.5,
        365,
        unit="days",
        source="assumed (a season; Christia 2012: alliances answer to the balance of threat as it shifts)",
        doc="Half-life at which a group's memory of the common threat's recent height in its towns fades "
        "(M = max(threat, q M)); relief is how far today's threat is below it. Longer than the harm memory "
        "(exposure.half_life_days), or relief never shows.",
    )
    relief_rate: float = param(
        0.01,
        0,
        1,
        unit="1/day",
        source="assumed (Christia 2012: when the common enemy recedes, old rivalries return)",
        doc="Alignment loss per unit relief from the common threat (its memory minus today's threat); 0 = relief "
        "changes nothing.",
    )
    predation_rate: float = param(
        0.1,
        0,
        100,
        unit="1/(harm*day)",
        source="assumed (Christia 2012; Kalyvas 2006)",
        doc="Alignment loss per unit HTS predation in the group's towns: the HTS-attributed harm of arrests, "
        "council takeovers and taxes there, weighted as households weigh it (grievance.*_weight).",
    )
    resistance_rate: float = param(
        0.002,
        0,
        1,
        unit="1/day",
        source="assumed (Kalyvas 2006: armed actors answer to their civilian base)",
        doc="Alignment loss per unit share of persons resisting HTS in the group's towns.",
    )
    attack_penalty: float = param(
        0.3, 0, 2, unit="-", doc="Alignment lost per HTS attack on the group (also when HTS attacks a town it holds)."
    )
    attack_fighter_loss: float = param(0.1, 0, 1, unit="share", doc="Share of a group's fighters lost per HTS attack.")
    attack_grievance: float = param(
        0.5,
        0,
        10,
        unit="per unit presence",
        doc="HTS-attributed harm (added to the takeover memory) per unit of the attacked group's presence in a town.",
    )
    council_shield: float = param(
        0.8, 0, 1, unit="share", doc="How much a distanced rival shields councils from takeover."
    )
    hostility_threshold: float = param(
        0.5,
        0,
        1,
        unit="-1..1",
        doc="A group is hostile to HTS (may fight it and join a coalition) when its alignment is at most minus this.",
    )
    contest_threshold: float = param(
        3.0,
        0,
        100,
        unit="ratio",
        source="assumed (the attacker's 3:1 rule of thumb, Mearsheimer 1989)",
        doc="Local strength ratio (attacker / holder) from which a side attacks a town.",
    )
    attack_rate: float = param(
        0.1,
        0,
        1,
        unit="1/day",
        doc="Daily probability that a hostile side strong enough in an HTS-held town attacks it; "
        "0 = rivals never attack.",
    )
    hts_retake_rate: float = param(
        0.1,
        0,
        1,
        unit="1/day",
        doc="Daily probability that HTS attacks a rival-held town where it is strong enough; 0 = HTS never retakes.",
    )
    hts_tolerance: float = param(
        0.5,
        -1,
        1,
        unit="-1..1",
        doc="HTS leaves a rival-held town alone while the holder's alignment is at least this.",
    )
    support_weight: float = param(
        1.0,
        0,
        100,
        unit="-",
        source="assumed (Kalyvas 2006: civilians' support and control feed each other)",
        doc="Local strength gained per unit share of civilian support (resisting persons for rivals, "
        "cooperating persons for HTS).",
    )
    resolution_rate: float = param(
        0.2, 0, 1, unit="1/day", doc="Daily probability that a fight for a contested town is decided."
    )
    decisiveness: float = param(
        2.0,
        0,
        20,
        unit="exponent",
        source="Tullock 1980; Hirshleifer 1989 (ratio-form contest success function)",
        doc="d in P(attacker wins) = r^d / (1 + r^d), r = attacker / defender local strength.",
    )
    fight_attrition: float = param(
        0.02,
        0,
        1,
        unit="1/day",
        source="assumed (Lanchester attrition)",
        doc="Fighters each side loses per fight day per fighter-equivalent of the opponent's local strength.",
    )
    fight_casualties: float = param(
        1.0, 0, 500, unit="persons/day", doc="Mean civilians killed per fight day at full population."
    )
    fight_harm: float = param(
        1.0, 0, 100, unit="harm/day", doc="Harm per fight day that raises fear (at fear.rate) of households present."
    )
    fight_flight: float = param(
        0.01, 0, 1, unit="1/day", doc="Daily probability that a household present in a contested town flees."
    )
    capture_control_loss: float = param(
        0.5, 0, 1, unit="share", doc="Share of HTS control lost when a rival takes a town from it."
    )
    retake_control_gain: float = param(
        0.3, 0, 1, unit="share", doc="HTS control gained (toward 1) when HTS retakes a town."
    )
    defeat_presence_loss: float = param(
        0.5, 0, 1, unit="share", doc="Share of a defeated rival side's presence in the town it loses or fails to take."
    )
    coalition_rate: float = param(
        0.05,
        0,
        1,
        unit="1/day",
        source="assumed (Christia 2012: alliances form to balance the strongest)",
        doc="Daily probability that hostile sides able together, not alone, to match HTS in a town merge; "
        "0 = no coalitions.",
    )
    coalition_match: float = param(
        1.0,
        0,
        100,
        unit="ratio",
        doc="Combined local strength ratio to HTS at which hostile sides can form a coalition (1 = parity).",
    )
    coalition_cohesion: float = param(
        0.8,
        0,
        1,
        unit="0-1",
        source="assumed (Christia 2012: coalitions are less cohesive than their members)",
        doc="Factor on a coalition's pooled local strength.",
    )
    rule_weight: float = param(
        1.0,
        0,
        50,
        source="assumed (Kalyvas 2006: control drives collaboration with the controller)",
        doc="Utility of resisting HTS in a town a rival holds (times mechanisms.control).",
    )
    split_gap: float = param(
        0.6,
        0,
        2,
        unit="alignment",
        source="assumed (Christia 2012: alliances split when members' interests diverge)",
        doc="A coalition member leaves when its alignment with HTS differs from the rest of the coalition's by "
        "more than this; rival sides whose alignments differ by more than this are enemies and may fight.",
    )
    rival_attack_rate: float = param(
        0.02,
        0,
        1,
        unit="1/day",
        doc="Daily probability that a rival side strong enough in a town an enemy rival side holds attacks it; "
        "0 = rivals never fight each other.",
    )
    holder_income_per_presence: float = param(
        0.02,
        0,
        100,
        unit="resources/(1,000 persons*day)",
        source="assumed (= hts.income_per_control: a holder taxes as HTS does)",
        doc="Tax and trade income of a rival holder per 1,000 persons in a town it holds, per unit presence.",
    )
    holder_service_rate: float = param(
        0.02,
        0,
        1,
        unit="1/day",
        source="assumed (= hts.service_rate)",
        doc="Growth of a rival holder's services per unit presence where it holds the town and is funded; "
        "0 = rival holders provide none.",
    )
    holder_service_decay: float = param(
        0.005, 0, 1, unit="1/day", source="assumed (= hts.service_decay)", doc="Decay of a rival holder's services."
    )
    holder_service_cost: float = param(
        0.01,
        0,
        100,
        unit="resources/(1,000 persons*day)",
        source="assumed (= hts.service_cost)",
        doc="Cost of a rival holder's services per 1,000 persons at full service.",
    )
    holder_funding_half: float = param(
        50.0,
        0.001,
        1e9,
        unit="resource units",
        source="assumed (= hts.funding_half)",
        doc="Resources at which a rival holder's services are half funded.",
    )
    local_rate: float = param(
        0.005,
        0,
        1,
        unit="1/day",
        source="assumed (Kalyvas 2006: control rests on civilians' compliance; Maarat al-Numan, June 2017, and "
        "Saraqib, July 2017: protests made HTS withdraw)",
        doc="Daily probability that a town whose sustained protest times council legitimacy matches its holder's "
        "local strength sends the armed groups away and keeps itself neutral ('local'); 0 = never.",
    )
    local_armed_weight: float = param(
        1.0,
        0,
        1000,
        unit="civil defence per unit local strength",
        doc="w_armed: how much one unit of the holder's local strength outweighs the town's civil defence "
        "(sustained protest share times council legitimacy).",
    )
    local_window_days: float = param(
        14.0,
        0.5,
        365,
        unit="days",
        source="assumed (sustained protest over weeks, not a day's crowd)",
        doc="Half-life of the town's protest memory that counts as sustained protest.",
    )
    local_retake_rate: float = param(
        0.05,
        0,
        1,
        unit="1/day",
        doc="Daily probability that the strongest armed side retakes a local town where its local strength "
        "outweighs the civil defence by rivals.contest_threshold; 0 = local towns stay local.",
    )
    groups: list[RivalGroupConfig] = Field(default_factory=list, description="rival rebel groups")
    events: list[ControlEvent] = Field(
        default_factory=list, description="dated changes of who holds a town (inputs; none by default)"
    )


class CalendarStrike(DatedSwitch):
    """A dated strike on a named town (historical record)."""

    town: str
    strikes: int = Field(1, ge=1, le=1000)
    killed: int | None = Field(None, ge=0, description="civilians killed, if recorded")
    source: str = ASSUMED


FrontStatus = Literal["opposition", "contested", "regime"]
FRONT_STATUS: tuple[str, ...] = get_args(FrontStatus)
Stance = Literal["resist", "neutral", "cooperate"]
STANCES: tuple[str, ...] = get_args(Stance)

Policy = Literal["none", "random", "hts_strongholds", "resisting_towns", "frontline", "calendar"]
POLICIES: tuple[str, ...] = get_args(Policy)


class SortiePeriod(DatedSwitch):
    """A period of the background campaign's intensity: from its date (or day) to the next period's."""

    name: str = Field(
        min_length=1, description="label of the period (key path air_campaign.schedule.<name>.sorties_per_day)"
    )
    sorties_per_day: float = param(
        3.0, 0, 500, unit="strikes/day", doc="Mean background strikes per day (Poisson) during this period."
    )
    source: str = Field(ASSUMED, description="where the period's dates and level come from")


class AirCampaignConfig(Strict):
    """Regime and Russian air campaign: the treatment."""

    policy: Policy = Field("resisting_towns", description="Targeting policy of the background sorties.")
    sorties_per_day: float = param(
        3.0,
        0,
        500,
        unit="strikes/day",
        doc="Mean background strikes per day (Poisson), the same for every policy; before the first period of "
        "air_campaign.schedule (throughout if there is none).",
    )
    schedule: list[SortiePeriod] = Field(
        default_factory=list,
        description="dated intensity periods of the background campaign (piecewise constant, in date order)",
    )
    start: DatedSwitch | None = Field(None, description="first day of the background campaign")
    end: DatedSwitch | None = Field(None, description="last day of the background campaign")
    accuracy: float = param(0.8, 0, 1, unit="probability", doc="Probability a strike lands on its target town.")
    miss_neighbour_share: float = param(0.5, 0, 1, unit="share", doc="Share of misses landing on the nearest town.")
    density_cap: float = param(
        3.0,
        0,
        100,
        unit="multiplier",
        doc="Cap on the crowding factor (persons present / initial persons) that scales casualties per strike.",
    )
    casualties_per_strike: float = param(
        2.0, 0, 500, unit="persons", doc="Mean civilians killed per strike at full population."
    )
    damage_per_strike: float = param(0.05, 0, 1, unit="share", doc="Physical damage per strike (toward 1).")
    damage_repair_rate: float = param(0.01, 0, 1, unit="1/day", doc="Daily repair of damage.")
    council_damage: float = param(0.03, 0, 1, unit="share", doc="Council legitimacy lost per strike (institutions).")
    targeting_sharpness: float = param(2.0, 0, 10, unit="exponent", doc="Exponent on the policy's target weights.")
    reputation_half_life_days: float = param(
        60.0, 1, 3650, unit="days", doc="Half-life of a town's resisting reputation."
    )
    reputation_protest_share: float = param(
        0.05, 1e-4, 1, unit="share", doc="Protest share at which a town's daily reputation signal is full (1)."
    )
    calendar: list[CalendarStrike] = Field(default_factory=list, description="dated strikes on named towns")


class FrontEvent(DatedSwitch):
    """A dated change of a town's front status."""

    town: str
    status: Literal["contested", "regime"]
    source: str = ASSUMED


class FrontConfig(Strict):
    """Regime ground front."""

    enabled: bool = Field(True, description="whether the ground front acts at all")
    range_km: float = param(15.0, 0.1, 500, unit="km", doc="e-folding distance of front proximity.")
    fall_rate: float = param(0.0, 0, 1, unit="1/day", doc="Daily probability a contested town falls (generic advance).")
    events: list[FrontEvent] = Field(default_factory=list, description="dated front status changes")


class CivilSocietyConfig(Strict):
    """Civil society investment in independent councils."""

    council_rate: float = param(0.02, 0, 1, unit="1/day", doc="Council legitimacy gain per unit investment.")
    council_decay: float = param(0.002, 0, 1, unit="1/day", doc="Decay of council legitimacy.")
    strike_loss: float = param(
        0.05, 0, 1, unit="share", doc="Investment lost per strike (times mechanisms.institutions)."
    )
    takeover_loss: float = param(0.5, 0, 1, unit="share", doc="Investment lost when HTS takes the council.")
    recovery_rate: float = param(
        0.01,
        0,
        1,
        unit="1/day",
        doc="Daily recovery of investment toward the town's initial level where the council is still independent.",
    )


class Baseline(Strict):
    """The no-shock baseline: a stationary state by construction (ODD 5.7)."""

    stationary: bool = Field(
        True,
        description="Balance every town-level process at the initial state (control, services, councils, "
        "HTS legitimacy and resources get a constant term that zeroes their drift at the start; HTS "
        "coercion and council takeovers act on departures from their standing levels), so that with no "
        "strikes and no front the whole system stands still; false gives the unbalanced processes.",
    )


# --------------------------------------------------------------------------- geography


TownStance = Literal["resisting", "hts", "rival", "mixed", "unknown"]


class TownSpec(Strict):
    """A town: location, population, initial stance and institutions."""

    name: str
    x: int | None = Field(None, ge=0, description="grid column (if no coordinates)")
    y: int | None = Field(None, ge=0, description="grid row (if no coordinates)")
    lat: float | None = Field(None, ge=-90, le=90, description="latitude, degrees north")
    lon: float | None = Field(None, ge=-180, le=180, description="longitude, degrees east")
    persons: int = Field(ge=1, le=10_000_000, description="persons at the start")
    displaced: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="of `persons`, those displaced to the town before the start (already present): counted as "
        "hosted there (times `households.displaced_before_scale`); they flee and return as its residents do",
    )
    stance: TownStance = Field("unknown", description="initial stance label (sets initial household shares)")
    council: float = Field(0.5, ge=0, le=1, description="independent council legitimacy")
    council_independent: bool = Field(True, description="council still independent of HTS at the start")
    hts_control: float = Field(0.3, ge=0, le=1, description="initial HTS control (0-1)")
    hts_services: float = Field(0.1, ge=0, le=1, description="initial HTS services (0-1)")
    civil_society: float = Field(0.3, ge=0, le=1, description="civil society investment")
    reputation: float | None = Field(
        None, ge=0, le=10, description="initial resisting reputation (default 1 if resisting, else 0)"
    )
    front: FrontStatus = Field("opposition", description="initial front status")
    host_capacity: float = Field(0.5, ge=0, le=20, description="displaced it can host, per resident")
    border: bool = Field(False, description="on the Turkish border (safer host for the displaced)")
    controller: str = Field(
        "hts",
        description="who holds the town at the start: 'hts' or the name of a rival group present in it "
        "(a regime-held town is held by the regime)",
    )
    source: str = Field(ASSUMED, description="where the town's figures come from")

    @model_validator(mode="after")
    def _location(self) -> TownSpec:
        grid = self.x is not None and self.y is not None
        geo = self.lat is not None and self.lon is not None
        if not (grid or geo):
            raise ValueError("give either x and y (grid cell) or lat and lon")
        if self.displaced > self.persons:
            raise ValueError(f"displaced ({self.displaced}) is part of persons ({self.persons}): it cannot exceed it")
        return self


class Grid(Strict):
    """The grid of cells that towns sit on."""

    width: int | None = Field(None, ge=1, le=2000, description="cells (derived from coordinates if omitted)")
    height: int | None = Field(None, ge=1, le=2000, description="cells (derived from coordinates if omitted)")
    cell_km: float = param(2.0, 0.1, 100, unit="km", doc="Cell size.")


class Output(Strict):
    """What a run stores besides the daily town and governorate tables."""

    household_snapshot_days: list[int] = Field(
        default_factory=list, description="days at which to store every household's state"
    )
    summary_window_days: int = param(30, 1, 3650, unit="days", doc="Window for window-averaged outcomes.")


# --------------------------------------------------------------------------- observed record


ObservedKind = Literal[
    "displacements",
    "arrival_share",
    "council_independent",
    "killed",
    "hosted_displaced",
    "protest_present",
    "cooperation_share",
]
ObservedRole = Literal["calibration", "validation", "check"]
OBSERVED_ROLES: tuple[str, ...] = get_args(ObservedRole)


class ObservedFigure(Strict):
    """A recorded figure the run is compared with (pattern-oriented check or calibration target).

    Kinds:
        ``displacements``: persons displaced (flight and front moves) from ``start`` to ``end``,
        both days included.
        ``arrival_share``: share of those displacements arriving in ``towns``.
        ``council_independent``: whether the council of the single town in ``towns`` is still
        independent of HTS on the last day (1 yes, 0 no).
        ``killed``: civilians killed from ``start`` to ``end`` in ``towns`` (all towns if empty).
        ``hosted_displaced``: displaced persons hosted in ``towns`` (together) on the window's last day,
        whenever they arrived (those displaced there before the start included: ``towns[].displaced``).
        ``protest_present``: whether protest against HTS is still present in ``towns`` over the
        window: 1 if their persons-weighted mean protest share exceeds ``threshold``, else 0.
        ``cooperation_share``: persons-weighted mean share of households cooperating with HTS in
        ``towns`` over the window (a survey figure).

    ``role`` says how calibration uses the figure: ``calibration`` (a target fitted by
    ``sim calibrate``), ``validation`` (held out, reported apart) or ``check`` (neither).
    """

    name: str = Field(min_length=1, description="label of the figure in the comparison table")
    kind: ObservedKind
    start: DatedSwitch | None = Field(None, description="first day of the window (default: 0)")
    end: DatedSwitch | None = Field(None, description="last day of the window (default: last)")
    towns: list[str] = Field(default_factory=list, description="towns the figure refers to")
    value: float = Field(description="recorded value")
    range: tuple[float, float] | None = Field(
        None, description="recorded range [low, high] when the record gives one (e.g. 50,000-70,000)"
    )
    threshold: float = Field(
        0.005, ge=0, le=1, description="protest_present: mean protest share above which protest counts as present"
    )
    comparison: Literal["equal", "at_least", "at_most"] = Field(
        "equal", description="how the record bounds the value ('mainly' -> at_least 0.5)"
    )
    source: str = Field(min_length=1, description="where the recorded value comes from")
    role: ObservedRole = Field("check", description="calibration target, held-out validation figure, or plain check")
    calibrated: bool = Field(False, description="whether free parameters were tuned to match it (else a check)")
    note: str = ""

    @model_validator(mode="after")
    def _towns_for_kind(self) -> ObservedFigure:
        if (
            self.kind in ("arrival_share", "hosted_displaced", "protest_present", "cooperation_share")
            and not self.towns
        ):
            raise ValueError(f"a {self.kind} figure needs its 'towns'")
        if self.kind == "council_independent" and len(self.towns) != 1:
            raise ValueError("a council_independent figure needs exactly one town in 'towns'")
        if self.range is not None and not self.range[0] <= self.value <= self.range[1]:
            raise ValueError(f"value {self.value} lies outside its range {list(self.range)}")
        if self.role == "calibration":
            # a calibration target is, by definition, a figure free parameters were fitted to
            object.__setattr__(self, "calibrated", True)
        return self


class Observed(Strict):
    """The record the run is checked against, and how many replicates the check uses."""

    replicates: int = param(
        3,
        1,
        100,
        unit="runs",
        doc="Runs behind each simulated value: the run itself plus replicates - 1 runs with seeds "
        "spawned from its seed (numpy SeedSequence); the table reports their mean, min and max.",
    )
    sample_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="households.sample_fraction of the extra replicates (default: the run's own)",
    )
    figures: list[ObservedFigure] = Field(default_factory=list)


# --------------------------------------------------------------------------- scenario


class Scenario(Strict):
    """A complete, validated scenario."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="scenario name (folder name of results)")
    description: str = ""
    seed: int = Field(12345, ge=0, le=2**63 - 1, description="root random seed (integer)")
    days: int = Field(120, ge=1, le=3650, description="days to simulate (one step is one day)")
    start_date: dt.date | None = Field(None, description="calendar date of day 0 (ISO); enables dated items")
    grid: Grid = Field(default_factory=Grid)
    towns: list[TownSpec] = Field(min_length=1)
    households: Households = Field(default_factory=Households)
    mechanisms: Mechanisms = Field(default_factory=Mechanisms)
    exposure: Exposure = Field(default_factory=Exposure)
    grievance: Grievance = Field(default_factory=Grievance)
    fear: Fear = Field(default_factory=Fear)
    choice: Choice = Field(default_factory=Choice)
    protest: Protest = Field(default_factory=Protest)
    flight: Flight = Field(default_factory=Flight)
    recruitment: Recruitment = Field(default_factory=Recruitment)
    hts: HTSConfig = Field(default_factory=HTSConfig)
    rivals: Rivals = Field(default_factory=Rivals)
    air_campaign: AirCampaignConfig = Field(default_factory=AirCampaignConfig)
    front: FrontConfig = Field(default_factory=FrontConfig)
    civil_society: CivilSocietyConfig = Field(default_factory=CivilSocietyConfig)
    baseline: Baseline = Field(default_factory=Baseline)
    output: Output = Field(default_factory=Output)
    observed: Observed = Field(default_factory=Observed)
    record: str | None = Field(
        None,
        description="the scenario's record file (scenarios/record/<name>.yaml), relative to the scenario file "
        "that names it: dated, sourced observations every run is compared with (record.csv)",
    )

    @model_validator(mode="after")
    def _cross_references(self) -> Scenario:
        names = [t.name for t in self.towns]
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                raise ScenarioRefError(("towns", i, "name"), f"duplicate town name {n!r}")
            seen.add(n)
        geo = [t.lat is not None for t in self.towns]
        if any(geo) and not all(geo):
            i = geo.index(False) if any(geo) else 0
            raise ScenarioRefError(("towns", i), "all towns need lat/lon once one town has them")
        valid = set(names)

        def check(name: str, loc: tuple[Any, ...]) -> None:
            if name not in valid:
                hint = difflib.get_close_matches(name, names, n=1)
                tip = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ScenarioRefError(loc, f"unknown town {name!r}{tip}")

        for i, s in enumerate(self.air_campaign.calendar):
            check(s.town, ("air_campaign", "calendar", i, "town"))
        periods = self.air_campaign.schedule
        if len({p.name for p in periods}) != len(periods):
            raise ScenarioRefError(("air_campaign", "schedule"), "duplicate period names")
        for i, e in enumerate(self.front.events):
            check(e.town, ("front", "events", i, "town"))
        for gi, g in enumerate(self.rivals.groups):
            for t in g.towns:
                check(t, ("rivals", "groups", gi, "towns", t))
        for i, f in enumerate(self.observed.figures):
            for j, t in enumerate(f.towns):
                check(t, ("observed", "figures", i, "towns", j))
        gnames = [g.name for g in self.rivals.groups]
        if len(set(gnames)) != len(gnames):
            raise ScenarioRefError(("rivals", "groups"), "duplicate rival group names")
        holders = [(("towns", i, "controller"), t.name, t.controller) for i, t in enumerate(self.towns)]
        for i, e in enumerate(self.rivals.events):
            check(e.town, ("rivals", "events", i, "town"))
            holders.append((("rivals", "events", i, "controller"), e.town, e.controller))
        for loc, town, holder in holders:
            if holder == "hts":
                continue
            if holder not in gnames:
                options = ", ".join(["'hts'", *(repr(g) for g in gnames)])
                raise ScenarioRefError(loc, f"unknown controller {holder!r} (use one of {options})")
            if self.rivals.groups[gnames.index(holder)].towns.get(town, 0.0) <= 0:
                raise ScenarioRefError(loc, f"{holder!r} holds {town!r} but has no presence there")
        for key in {t.stance for t in self.towns} - set(self.households.initial.stance):
            raise ScenarioRefError(
                ("households", "initial", "stance"), f"no initial stance shares for town stance {key!r}"
            )
        for loc, item in self._dated_items():
            if item.date is not None:
                if self.start_date is None:
                    raise ScenarioRefError(loc, "a 'date' needs the scenario's start_date")
                if item.date < self.start_date:
                    raise ScenarioRefError(loc, f"date {item.date} is before start_date {self.start_date}")
        for i, f in enumerate(self.observed.figures):
            if f.start and f.end and self.day_of(f.start) > self.day_of(f.end):
                raise ScenarioRefError(("observed", "figures", i, "end"), "end is before start")
        starts = [self.day_of(p) for p in periods]
        for i in range(1, len(starts)):
            if starts[i] <= starts[i - 1]:
                raise ScenarioRefError(("air_campaign", "schedule", i), "periods must be in date order")
        for d in self.output.household_snapshot_days:
            if not 0 <= d < self.days:
                raise ScenarioRefError(("output", "household_snapshot_days"), f"day {d} is outside 0..{self.days - 1}")
        return self

    def _dated_items(self) -> list[tuple[tuple[Any, ...], DatedSwitch]]:
        items: list[tuple[tuple[Any, ...], DatedSwitch]] = []
        items += [(("air_campaign", "calendar", i), s) for i, s in enumerate(self.air_campaign.calendar)]
        items += [(("front", "events", i), e) for i, e in enumerate(self.front.events)]
        items += [(("air_campaign", "schedule", i), p) for i, p in enumerate(self.air_campaign.schedule)]
        items += [(("rivals", "events", i), e) for i, e in enumerate(self.rivals.events)]
        for key in ("start", "end"):
            v = getattr(self.air_campaign, key)
            if v is not None:
                items.append((("air_campaign", key), v))
        if self.hts.governance_body is not None:
            items.append((("hts", "governance_body"), self.hts.governance_body))
        for i, f in enumerate(self.observed.figures):
            for key in ("start", "end"):
                v = getattr(f, key)
                if v is not None:
                    items.append((("observed", "figures", i, key), v))
        return items

    def dated_after(self, days: int) -> list[tuple[tuple[Any, ...], str]]:
        """Dated items after the last day of a ``days``-day window (they would never happen), each with a message.

        Not a validator: a shorter run (``--days``, a sweep's ``days``) may cut the window on purpose;
        the loader checks the window the scenario files give (:func:`sim.scenario.loader.load_scenario`).
        """
        out: list[tuple[tuple[Any, ...], str]] = []
        for loc, item in self._dated_items():
            day = self.day_of(item)
            if day > days - 1:
                if item.date is not None:
                    what = f"date {item.date} is after the last day of the scenario, {self.date_of(days - 1)}"
                else:
                    what = f"day {day} is after the last day of the scenario, day {days - 1}"
                out.append((loc, f"{what} (days: {days})"))
        return out

    # ----------------------------------------------------------------- calendar helpers

    def day_of(self, item: DatedSwitch) -> int:
        """Day index (0-based) of a dated item: the day whose step simulates that date."""
        if item.day is not None:
            return item.day
        assert self.start_date is not None and item.date is not None
        return (item.date - self.start_date).days

    def date_of(self, day: int) -> dt.date | None:
        """Calendar date simulated by day index ``day`` (None without start_date)."""
        if self.start_date is None:
            return None
        return self.start_date + dt.timedelta(days=day)

    @property
    def town_names(self) -> list[str]:
        """Town names in scenario order (the town index used everywhere)."""
        return [t.name for t in self.towns]

    @property
    def resisting_towns(self) -> list[str]:
        """Towns whose initial stance label is 'resisting'."""
        return [t.name for t in self.towns if t.stance == "resisting"]


class ScenarioRefError(ValueError):
    """A cross-reference problem, carrying the key path where it was found."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def parameter_table(model: type[BaseModel] = Scenario, prefix: str = "") -> list[dict[str, Any]]:
    """Flatten the schema into rows: key path, default, range, unit, source, meaning.

    Used to write the parameter tables of ``docs/ODD.md`` so that the docs and the
    validation cannot drift apart.
    """
    rows: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = field.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is not None and sub not in (StanceShares,):
            rows += parameter_table(sub, path + ".")
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        lo = hi = None
        for m in field.metadata:
            lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else getattr(m, "gt", lo)
            hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else getattr(m, "lt", hi)
        default = field.get_default(call_default_factory=True) if not field.is_required() else None
        if isinstance(default, BaseModel) or (isinstance(default, (list, dict)) and default):
            default = "(see text)"
        rows.append(
            {
                "key": path,
                "default": default,
                "min": lo,
                "max": hi,
                "unit": extra.get("unit", "-"),
                "source": extra.get("source", ASSUMED),
                "meaning": field.description or "",
            }
        )
    return rows
