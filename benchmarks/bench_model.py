"""Speed and memory of the model, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_model.py            # full set (about 3-4 minutes)
    .venv/bin/python benchmarks/bench_model.py --quick    # tiny sizes, a smoke check (under a minute)

Measures, interleaved over rounds so that machine drift cancels out:

* household-steps per second of the full daily step (all mechanisms on, daily
  town and governorate collection) at 10,000, 100,000 and 400,000 households;
* Mesa's shipped ``EpsteinCivilViolence`` example, agent-steps per second, as the
  external reference (the ratio is per agent-step);
* a bare numpy kernel of the household decision rule alone (the floor: the same
  :mod:`sim.model.rules` functions over the same arrays, nothing else), and the full
  step's ratio to it;

and, each in a fresh process: peak RSS per household and construction time at
400,000 households; and a person-level run (one agent per person, about 2.4
million agents, 120 days) of the Idlib scenario, end to end.

Prints a table and writes ``benchmarks/out/bench_model.json`` (or ``--out``). The
project's speed and memory targets (``targets`` in the report) are printed next to the
measurements, never asserted in tests; ``--quick`` measures tiny sizes (its numbers
only show that every part runs) and is run by ``tests/test_benchmarks.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SYNTHETIC = ROOT / "scenarios" / "synthetic_grid.yaml"
IDLIB = ROOT / "scenarios" / "idlib_2017_2018.yaml"
#: ``--quick``: the person-level run samples this share of the persons (about 50,000 agents).
QUICK_PERSON_FRACTION = 0.02


def scaled_scenario(households: int):
    """The synthetic grid with town populations scaled to about ``households`` households."""
    from sim.scenario.loader import load_scenario, with_values

    sc = load_scenario(SYNTHETIC).scenario
    size = sc.households.size
    total = sum(t.persons for t in sc.towns) / size
    factor = households / total
    return with_values(sc, {f"towns.{i}.persons": max(1, round(t.persons * factor)) for i, t in enumerate(sc.towns)})


def time_model_steps(model, steps: int) -> float:
    """Seconds per step over ``steps`` steps."""
    t0 = time.perf_counter()
    for _ in range(steps):
        model.step()
    return (time.perf_counter() - t0) / steps


class FloorKernel:
    """The household decision rule alone: grievances, fear, stance, protest, flight hazard.

    The same :mod:`sim.model.rules` functions, called with the same parameters of the
    scenario (grievance rates and decays, choice weights, protest and flight settings,
    mechanism strengths) and the same array layout as the model's household step
    (:mod:`sim.model.households`), with town-level inputs held fixed: what the daily step
    would cost with no model around it. Nothing is copied from the rules, so a change
    of their signatures breaks this kernel (and the test that runs ``--quick``) at once.
    """

    def __init__(self, n: int, scenario=None, towns: int = 16, seed: int = 1):
        from sim.model.rules import F32
        from sim.scenario.loader import load_scenario

        self.scenario = scenario if scenario is not None else load_scenario(SYNTHETIC).scenario
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.towns = towns
        self.town = np.sort(rng.integers(0, towns, n)).astype(np.int16)
        self.g_regime = rng.random(n, dtype=F32)
        self.g_hts = rng.random(n, dtype=F32)
        self.g0 = self.g_regime.copy()
        self.h0 = self.g_hts.copy()
        self.fear = rng.random(n, dtype=F32) * F32(0.2)
        self.risk = rng.random(n, dtype=F32)
        self.threshold = rng.random(n, dtype=F32) * F32(0.3)
        self.intercept_coop = rng.normal(0, 0.3, n).astype(F32)
        self.intercept_resist = rng.normal(0, 0.3, n).astype(F32)
        self.stance = rng.integers(0, 3, n).astype(np.int8)
        self.displaced = np.zeros(n, dtype=bool)
        self.exposure_town = rng.random(towns).astype(F32)
        self.hts_harm_town = (rng.random(towns) * 0.1).astype(F32)
        self.base = rng.random(towns).astype(F32)
        self.persons = np.full(n, 6, dtype=F32)

    def step(self) -> None:
        """One day of the bare household rules (the order and arguments of the model's step)."""
        from sim.model import rules
        from sim.model.rules import F32, RESIST

        sc = self.scenario
        g, ch, pr, mech = sc.grievance, sc.choice, sc.protest, sc.mechanisms
        t = self.town
        n = len(t)
        e = self.exposure_town
        h = self.hts_harm_town

        def gains(rate: np.ndarray) -> np.ndarray:
            return rules.saturating_gain(rate)[t]

        rules.saturating_update(
            self.g_regime,
            gains(rules.regime_grievance_rate(e, g.regime_rate, mech.regime_blame)),
            g.regime_decay,
            self.g0,
        )
        rules.saturating_update(
            self.g_hts,
            gains(rules.hts_grievance_rate(e, h, g.hts_rate, mech.pretext_blame, g.home_team_discount)),
            g.hts_decay,
            self.h0,
        )
        rules.saturating_update(self.fear, gains(e * F32(sc.fear.rate)), sc.fear.decay)
        u = self.rng.random(n, dtype=F32)
        rev = np.flatnonzero(u < ch.revision_rate)
        tr = t[rev]
        ur, un, uc = rules.stance_utilities(
            self.g_regime[rev],
            self.g_hts[rev],
            self.fear[rev],
            self.displaced[rev],
            self.base[tr] + self.intercept_coop[rev],
            self.base[tr] + self.intercept_resist[rev],
            self.base[tr],
            protection_weight=ch.protection_weight,
            grievance_weight=ch.grievance_weight,
            fear_withdrawal=ch.fear_withdrawal * mech.suppression,
            disengagement=ch.displaced_disengagement * mech.exit,
        )
        self.stance[rev] = rules.choose_stance(ur, un, uc, u[rev] / F32(ch.revision_rate))
        eligible = self.stance == RESIST
        rules.protest_decision(
            self.g_hts,
            0.3,
            self.risk,
            self.base[t],
            self.fear,
            self.threshold,
            (pr.peer_weight * self.base).astype(F32)[t],
            eligible,
            fear_risk_weight=pr.fear_risk_weight * mech.suppression,
        )
        u2 = self.rng.random(n, dtype=F32)
        fl = sc.flight
        hazard = rules.flight_hazard(
            self.fear,
            e[t],
            (fl.front_rate * self.base * F32(0.01)).astype(F32)[t],
            exposure_rate=fl.exposure_rate * mech.exit,
        )
        cand = np.flatnonzero(u2 < hazard)
        rules.flee_probability(hazard[cand])
        np.bincount(t.astype(np.intp) * 3 + self.stance, weights=self.persons, minlength=3 * self.towns)


def epstein_model(agents_target: int, seed: int = 1):
    """Mesa's own Epstein civil violence example sized to about ``agents_target`` agents."""
    from mesa.examples.advanced.epstein_civil_violence.model import EpsteinCivilViolence

    density = 0.7 + 0.074
    side = round((agents_target / density) ** 0.5)
    return EpsteinCivilViolence(width=side, height=side, seed=seed)


def measure_interleaved(sizes: list[int], rounds: int, steps: int, epstein_agents: int, floor_n: int) -> dict:
    """Per-agent-step speeds of the full step, Epstein and the floor, interleaved over rounds."""
    from sim.model.model import AllegianceModel

    models = {}
    for n in sizes:
        m = AllegianceModel(scaled_scenario(n))
        for _ in range(3):  # warm up past initial transients
            m.step()
        models[n] = m
    ep = epstein_model(epstein_agents)
    ep.step()
    floor = FloorKernel(floor_n)
    floor.step()
    times: dict[str, list[float]] = {f"full_{n}": [] for n in sizes} | {"epstein": [], "floor": []}
    ep_steps = 3
    for _ in range(rounds):
        for n, m in models.items():
            times[f"full_{n}"].append(time_model_steps(m, steps))
        t0 = time.perf_counter()
        for _ in range(ep_steps):
            ep.step()
        times["epstein"].append((time.perf_counter() - t0) / ep_steps)
        t0 = time.perf_counter()
        for _ in range(steps):
            floor.step()
        times["floor"].append((time.perf_counter() - t0) / steps)
    out = {}
    for n, m in models.items():
        sec = statistics.median(times[f"full_{n}"])
        out[f"full_{n}"] = {"agents": len(m.hh), "s_per_step": sec, "agent_steps_per_s": len(m.hh) / sec}
    ep_n = len(ep.agents)
    sec = statistics.median(times["epstein"])
    out["epstein"] = {"agents": ep_n, "s_per_step": sec, "agent_steps_per_s": ep_n / sec}
    sec = statistics.median(times["floor"])
    out["floor"] = {"agents": floor_n, "s_per_step": sec, "agent_steps_per_s": floor_n / sec}
    return out


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process from /proc (VmHWM: the peak since exec; ru_maxrss is
    inherited from the parent across fork and exec, so it would count the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child_memory(households: int) -> dict:
    """In a fresh process: construction time and peak RSS of a 400k model run for 10 days."""
    from sim.model.model import AllegianceModel

    sc = scaled_scenario(households)
    base = rss_mb()
    t0 = time.perf_counter()
    m = AllegianceModel(sc)
    build = time.perf_counter() - t0
    for _ in range(10):
        m.step()
    peak = rss_mb("VmHWM")
    return {
        "agents": len(m.hh),
        "build_s": build,
        "peak_rss_mb": peak,
        "rss_after_imports_mb": base,
        "bytes_per_household": (peak - base) * 2**20 / len(m.hh),
    }


def _child_person_level(days: int, sample_fraction: float = 1.0) -> dict:
    """In a fresh process: a person-level run of the Idlib scenario (or the scaled grid)."""
    from sim.run.simulate import simulate
    from sim.scenario.loader import load_scenario

    if IDLIB.exists():
        sets = ["households.unit=person", f"households.sample_fraction={sample_fraction}", f"days={days}"]
        loaded = load_scenario(IDLIB, sets)
        name = "idlib_2017_2018"
    else:  # before the Idlib scenario exists: the grid scaled to Idlib's 2.4 million persons
        from sim.scenario.loader import with_values

        loaded = with_values(scaled_scenario(400_000), {"days": days, "households.unit": "person"})
        name = "synthetic_grid x 2.4M persons"
    t0 = time.perf_counter()
    r = simulate(loaded)
    wall = time.perf_counter() - t0
    return {
        "scenario": name,
        "sample_fraction": sample_fraction,
        "agents": r.manifest["agents"],
        "days": days,
        "wall_s": wall,
        "build_s": r.manifest["build_time_s"],
        "peak_rss_mb": rss_mb("VmHWM"),
    }


def run_child(kind: str, arg: int, quick: bool = False) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON."""
    cmd = [sys.executable, __file__, "--child", kind, str(arg), *(["--quick"] if quick else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few rounds: a smoke check")
    parser.add_argument("--out", type=Path, default=OUT / "bench_model.json", help="JSON file to write")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, arg = args.child[0], int(args.child[1])
        if kind == "memory":
            result = _child_memory(arg)
        else:
            result = _child_person_level(arg, QUICK_PERSON_FRACTION if args.quick else 1.0)
        print(json.dumps(result))
        return
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000, 400_000]
    rounds, steps = (2, 2) if args.quick else (5, 5)
    big = sizes[-1]
    speed = measure_interleaved(sizes, rounds, steps, epstein_agents=2_000 if args.quick else 10_000, floor_n=big)
    memory = run_child("memory", big)
    person = run_child("person", 5 if args.quick else 120, quick=args.quick)
    full_big = speed[f"full_{big}"]["agent_steps_per_s"]
    ratios = {
        "full_vs_epstein": full_big / speed["epstein"]["agent_steps_per_s"],
        "floor_vs_full": speed["floor"]["agent_steps_per_s"] / full_big,
    }
    report = {
        "quick": args.quick,
        "speed": speed,
        "ratios": ratios,
        "memory": memory,
        "person_level": person,
        "targets": {
            "full_step_400k_agent_steps_per_s": 5e6,
            "full_vs_epstein": 250,
            "floor_vs_full_max": 5,
            "peak_rss_mb_400k": 1536,
            "person_level_wall_s": 120,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'measurement':44s} {'agents':>10s} {'agent-steps/s':>15s}")
    for key, v in speed.items():
        print(f"{key:44s} {v['agents']:>10,d} {v['agent_steps_per_s']:>15,.0f}")
    print(
        f"\nfull step at {big:,} vs Mesa Epstein example, per agent-step: {ratios['full_vs_epstein']:,.0f}x "
        f"(target >= 250x)"
    )
    print(f"bare numpy floor vs full step: floor is {ratios['floor_vs_full']:.2f}x faster (target: full within 5x)")
    print(
        f"construction at {memory['agents']:,} households: {memory['build_s']:.2f} s; peak RSS "
        f"{memory['peak_rss_mb']:,.0f} MB ({memory['bytes_per_household']:,.0f} bytes/household; target <= 1,536 MB)"
    )
    print(
        f"person-level run ({person['scenario']}, {person['agents']:,} agents, {person['days']} days): "
        f"{person['wall_s']:.1f} s (build {person['build_s']:.1f} s; peak RSS {person['peak_rss_mb']:,.0f} MB; "
        f"target < 120 s for 120 days)"
    )
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
