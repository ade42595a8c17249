"""Who holds each town: the pure rules of rival alignment, coalitions and fights for towns.

Every function here is a pure function of arrays and parameters; the actors
(:class:`sim.model.actors.RivalGroup` for alignment, :class:`sim.model.actors.Conflict`
for coalitions and fights) call them once a day. Symbols follow ``docs/ODD.md`` 7.6.

Controller codes: a town is held by HTS (:data:`HTS_HOLDS`), contested between two armed
sides (:data:`CONTESTED`), held by the regime (:data:`REGIME_HOLDS`), kept neutral by its own
council and civil committees with every armed group sent away (:data:`LOCAL`), or held by
rival group ``g`` (code ``GROUP0 + g``). :func:`controller_names` gives the names the codes index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.scenario.schema import RESERVED_CONTROLLERS

HTS_HOLDS, CONTESTED, REGIME_HOLDS, LOCAL = (
    RESERVED_CONTROLLERS.index(s) for s in ("hts", "contested", "regime", "local")
)
GROUP0 = len(RESERVED_CONTROLLERS)
NO_SIDE = -1


def controller_names(groups: Sequence[str]) -> list[str]:
    """Names indexed by controller codes: ``hts``, ``contested``, ``regime``, ``local``, then the groups."""
    return [*RESERVED_CONTROLLERS, *groups]


def presence_weighted(presence: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per group, the presence-weighted mean of a town quantity (0 for a group present nowhere).

    Args:
        presence: (towns, groups) presence 0-1.
        values: (towns,) the town quantity.
    """
    total = presence.sum(axis=0)
    sums = values @ presence
    return np.divide(sums, total, out=np.zeros_like(sums, dtype=float), where=total > 0)


def common_threat(exposure: np.ndarray, advance: np.ndarray, harm_scale: float, advance_weight: float) -> np.ndarray:
    """Common regime threat per town, 0-1: ``1 - exp(-(E_eff / harm_scale + w_adv * advance))``.

    Only harm (strikes) and front *changes* count: a front that stands still is no
    news and no pressure, so with no strikes and a static front the threat is zero.
    """
    return -np.expm1(-(exposure / harm_scale + advance_weight * advance))


def alignment_update(alignment: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Alignment after one day: ``a + (1 - a) * (1 - exp(-up)) - (1 + a) * (1 - exp(-down))``.

    Rises with ``up`` toward +1 and falls with ``down`` toward -1; the exponential
    gains keep it in [-1, 1] however large a day's drivers, and zero drivers leave it
    exactly unchanged.
    """
    a = np.asarray(alignment, dtype=float)
    return a + (1 - a) * -np.expm1(-np.asarray(up, dtype=float)) - (1 + a) * -np.expm1(-np.asarray(down, dtype=float))


def spread(weights: np.ndarray) -> np.ndarray:
    """Each column's weights as shares of its total over towns (a column of zeros stays zero).

    Args:
        weights: (towns,) or (towns, groups) non-negative presence weights.

    Returns:
        The same shape; every column with any weight sums to exactly one, so a group's
        fighters spread over its towns are conserved.
    """
    w = np.asarray(weights, dtype=float)
    total = w.sum(axis=0)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def rival_local_strength(
    presence: np.ndarray,
    fighters: np.ndarray,
    cohesion: np.ndarray,
    reference_fighters: float,
    resist_share: np.ndarray,
    support_weight: float,
) -> np.ndarray:
    """Local strength of each group in each town, (towns, groups): conserved over towns.

    ``L_tg = cohesion_g * s_tg * fighters_g / reference * (1 + w_support * resist_share_t)`` with
    ``s_tg = presence_tg / sum_u presence_ug`` (:func:`spread`): the group's fighters are spread
    over the towns where it is present, so summed over towns (support aside) a group counts
    its fighters once, times its cohesion.
    """
    base = spread(presence) * (cohesion * fighters / reference_fighters)[None, :]
    return base * (1 + support_weight * resist_share)[:, None]


def hts_local_strength(
    control: np.ndarray,
    fighters: float,
    cohesion: float,
    reference_fighters: float,
    coop_share: np.ndarray,
    support_weight: float,
) -> np.ndarray:
    """Local strength of HTS per town: ``cohesion * s_t * fighters / reference * (1 + w_support * coop_share_t)``.

    ``s_t = C_t / sum_u C_u``: HTS's fighters spread over the towns in proportion to its control
    there (its presence), so summed over towns (support aside) they count once.
    """
    return cohesion * spread(control) * fighters / reference_fighters * (1 + support_weight * coop_share)


def ema(memory: np.ndarray, value: np.ndarray, retention: float) -> np.ndarray:
    """A decaying memory (exponential moving average): ``M' = q * M + (1 - q) * value``."""
    return retention * np.asarray(memory, dtype=float) + (1 - retention) * np.asarray(value, dtype=float)


def threat_memory_update(memory: np.ndarray, threat: np.ndarray, retention: float) -> np.ndarray:
    """The common threat's recent height, fading: ``M' = max(threat, q * M)``.

    It follows the threat up at once and lets it go at half-life ``ln 2 / -ln q`` once the
    threat eases, so ``M - threat`` measures how far the threat has receded from its recent
    height (:func:`relief`).
    """
    return np.maximum(np.asarray(threat, dtype=float), retention * np.asarray(memory, dtype=float))


def relief(memory: np.ndarray, threat: np.ndarray) -> np.ndarray:
    """Relief from the common threat: how far today's threat is below its memory, ``max(0, M - threat)``."""
    return np.maximum(np.asarray(memory, dtype=float) - np.asarray(threat, dtype=float), 0.0)


def local_hazard(defence: np.ndarray, armed: np.ndarray, rate: float, armed_weight: float) -> np.ndarray:
    """Daily probability that a town sends its armed groups away and becomes ``local``.

    ``p_t = rate * min(1, D_t / (w_armed * A_t))`` (``rate`` where no armed strength is left and
    ``D_t > 0``; 0 where ``D_t = 0``): it rises with the civil defence ``D_t`` (sustained
    protest times council legitimacy) and falls with the holder's local strength ``A_t``.
    """
    d = np.asarray(defence, dtype=float)
    a = armed_weight * np.asarray(armed, dtype=float)
    ratio = np.divide(d, a, out=np.where(d > 0, np.inf, 0.0), where=a > 0)
    return rate * np.minimum(1.0, ratio)


def side_strength(local: np.ndarray, side: np.ndarray, coalition_cohesion: float) -> tuple[np.ndarray, np.ndarray]:
    """Local strength of each side (a group alone or a coalition), (towns, groups), and side sizes.

    Column ``s`` is the pooled strength of the groups whose side is ``s`` (zero for groups
    that are not a side's root); a coalition of more than one group fights at
    ``coalition_cohesion`` times its members' summed strength.
    """
    n_groups = local.shape[1]
    onehot = np.zeros((n_groups, n_groups))
    onehot[np.arange(n_groups), side] = 1.0
    sizes = onehot.sum(axis=0)
    factor = np.where(sizes > 1, coalition_cohesion, 1.0)
    return (local @ onehot) * factor[None, :], sizes


def coalition_candidate(
    sides: np.ndarray,
    hts: np.ndarray,
    hostile: np.ndarray,
    eligible: np.ndarray,
    contest_threshold: float,
    match: float,
) -> tuple[int, list[int]] | None:
    """The town where hostile sides can match HTS together but none can attack alone, and those sides.

    Args:
        sides: (towns, groups) side strengths from :func:`side_strength`.
        hts: (towns,) HTS local strength.
        hostile: (groups,) whether each side (by its root) is hostile to HTS.
        eligible: (towns,) towns where a coalition could fight (open, held by HTS).
        contest_threshold: the ratio from which one side attacks alone.
        match: the combined ratio from which sides can join forces.

    Returns:
        ``(town, side roots)`` for the town with the largest combined ratio, or None.
        Only sides present in the town count; at least two are needed.
    """
    ratio = np.divide(sides, hts[:, None], out=np.full(sides.shape, np.inf), where=hts[:, None] > 0)
    ratio = np.where(sides > 0, ratio, 0.0)
    members = (sides > 0) & hostile[None, :] & eligible[:, None]
    alone = np.where(members, ratio, 0.0).max(axis=1, initial=0.0)
    combined = np.where(members, ratio, 0.0).sum(axis=1)
    ok = (members.sum(axis=1) >= 2) & (alone < contest_threshold) & (combined >= match)
    if not ok.any():
        return None
    town = int(ok.nonzero()[0][np.argmax(combined[ok])])
    return town, [int(s) for s in members[town].nonzero()[0]]


def attack_ratio(attacker: np.ndarray, defender: np.ndarray) -> np.ndarray:
    """Attacker / defender local strength (inf against a defender of zero strength, 0 for no attacker)."""
    attacker = np.asarray(attacker, dtype=float)
    defender = np.asarray(defender, dtype=float)
    r = np.divide(attacker, defender, out=np.full(attacker.shape, np.inf), where=defender > 0)
    return np.where(attacker > 0, r, 0.0)


def contest_success(ratio: np.ndarray, decisiveness: float) -> np.ndarray:
    """P(attacker wins) = ``r^d / (1 + r^d)`` (ratio-form contest success function; Tullock 1980).

    ``d = 0`` gives a coin flip whatever the forces; large ``d`` lets the stronger side
    win almost surely. ``r = inf`` (no defence) gives 1, ``r = 0`` gives 0.
    """
    r = np.asarray(ratio, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        x = r**decisiveness
        p = np.where(np.isinf(x), 1.0, x / (1 + x))
    return np.where(r <= 0, 0.0 if decisiveness > 0 else 0.5, p)


def fight_losses(
    attacker_fighters: float,
    defender_fighters: float,
    attacker_strength: float,
    defender_strength: float,
    attrition: float,
    reference_fighters: float,
) -> tuple[float, float]:
    """Fighters each side loses in one fight day (Lanchester-style attrition), capped at those present.

    Each side loses ``attrition * reference * opponent's local strength``: the opponent's
    strength in fighter-equivalents (cohesion and civilian support included).
    """
    lost_attacker = min(attacker_fighters, attrition * reference_fighters * defender_strength)
    lost_defender = min(defender_fighters, attrition * reference_fighters * attacker_strength)
    return float(lost_attacker), float(lost_defender)


def split_losses(loss: float, shares: np.ndarray) -> np.ndarray:
    """A side's loss split among its members in proportion to ``shares`` (fighters present)."""
    total = float(shares.sum())
    if total <= 0 or loss <= 0:
        return np.zeros_like(shares, dtype=float)
    return loss * shares / total
