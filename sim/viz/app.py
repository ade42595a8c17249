"""Interactive browser app (Mesa SolaraViz): watch a scenario unfold on the town grid.

``sim app [SCENARIO]`` serves this module with solara on localhost. The page shows

* the towns on the grid (or placed by latitude and longitude when the scenario has
  coordinates), coloured by the share cooperating with HTS or by the share resisting,
  sized by the persons present, ringed by the displaced they host, with strikes
  marked on the day they land (and fading for a week);
* charts of cooperation in resisting towns and elsewhere, protest participation,
  displaced persons and casualties;
* controls for the targeting policy, the mechanism strengths and the seed, with
  Mesa's step / play / pause / reset buttons, and the current day and date.

There is no second implementation of the model: :class:`AppModel` only turns the
controls into the same ``--set`` overrides that ``sim run`` accepts, loads the
scenario file with :func:`sim.scenario.loader.load_scenario` and builds an
:class:`~sim.model.model.AllegianceModel`. SolaraViz rebuilds the model on *Reset* by
calling ``AppModel(**controls)``.

Drawing reads the town arrays (``model.town_state``) and the collector's daily arrays only:
it never iterates the household agents or the grid cells, so the page stays
responsive at the synthetic scenario's size.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.scenario.schema import MECHANISM_NAMES, POLICIES, Mechanisms, Scenario
from sim.scenario.shipped import shipped_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sim.model.model import AllegianceModel

DEFAULT_SCENARIO = "synthetic_grid"  # a shipped scenario (sim.scenario.shipped)
SCENARIO_ENV = "SIM_APP_SCENARIO"
DEFAULT_PORT = 8765

#: Mechanism strengths offered as sliders (every mechanism of the schema).
MECHANISM_CONTROLS: tuple[str, ...] = MECHANISM_NAMES
#: Slider range for the multiplier mechanisms (the schema allows up to 10).
MULTIPLIER_MAX = 3.0
#: Days a strike stays marked on the map, fading.
STRIKE_TRAIL_DAYS = 7
#: Font size of town labels on the map (points).
LABEL_SIZE = 7.5
#: Map colouring modes: label -> (town array, colour map, legend title).
COLOUR_MODES: dict[str, tuple[str, str, str]] = {
    "cooperation": ("coop_share", "YlOrBr", "share cooperating with HTS"),
    "resistance": ("resist_share", "PuBu", "share resisting HTS"),
}


# --------------------------------------------------------------------------- model factory


def served_scenario() -> Path:
    """The scenario the app serves: ``$SIM_APP_SCENARIO``, else the synthetic grid."""
    env = os.environ.get(SCENARIO_ENV)
    if env:
        return Path(env)
    return shipped_path(DEFAULT_SCENARIO) or Path(DEFAULT_SCENARIO)


def parse_seed(value: int | str | None, default: int) -> tuple[int, str]:
    """The seed typed into the seed box, or ``default`` with a notice when it is not a seed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default, ""
    try:
        seed = int(str(value).strip())
    except ValueError:
        return default, f"seed {value!r} is not an integer: using the scenario's seed {default}"
    if not 0 <= seed <= 2**63 - 1:
        return default, f"seed {seed} is out of range: using the scenario's seed {default}"
    return seed, ""


def control_overrides(
    scenario: Scenario,
    *,
    policy: str | None = None,
    seed: int | None = None,
    **mechanisms: float | None,
) -> list[str]:
    """``--set`` overrides (as ``sim run`` takes them) for controls that differ from the file.

    Args:
        scenario: the scenario as the file defines it.
        policy: targeting policy (``air_campaign.policy``).
        seed: root seed.
        **mechanisms: mechanism strengths by name (``mechanisms.<name>``).
    """
    out: list[str] = []
    if policy is not None and policy != scenario.air_campaign.policy:
        out.append(f"air_campaign.policy={policy}")
    for name, value in mechanisms.items():
        if name not in MECHANISM_NAMES:
            raise TypeError(f"unknown mechanism {name!r}")
        if value is None:
            continue
        value = round(float(value), 9)  # slider steps carry float noise (0.30000000000000004)
        if value != getattr(scenario.mechanisms, name):
            out.append(f"mechanisms.{name}={value!r}")
    if seed is not None and seed != scenario.seed:
        out.append(f"seed={seed}")
    return out


def mechanism_label(name: str) -> str:
    """Slider label of a mechanism: 'Regime blame strength', 'Pretext blame share'."""
    unit = Mechanisms.model_fields[name].json_schema_extra["unit"]  # type: ignore[index]
    return name.replace("_", " ").capitalize() + (" strength" if unit == "multiplier" else f" {unit}")


def model_params(scenario: Scenario, path: Path) -> dict[str, Any]:
    """SolaraViz controls, with the scenario file's values as defaults."""
    policies = [
        p
        for p in POLICIES
        if p != "calendar" or scenario.air_campaign.calendar or scenario.air_campaign.policy == "calendar"
    ]
    params: dict[str, Any] = {
        "scenario_file": str(path),
        "policy": {
            "type": "Select",
            "value": scenario.air_campaign.policy,
            "values": policies,
            "label": "Targeting policy",
        },
    }
    for name in MECHANISM_CONTROLS:
        bounds = Mechanisms.model_fields[name].metadata
        upper = next((b.le for b in bounds if hasattr(b, "le")), MULTIPLIER_MAX)
        value = getattr(scenario.mechanisms, name)
        params[name] = {
            "type": "SliderFloat",
            "value": value,
            "min": 0.0,
            "max": float(min(upper, max(MULTIPLIER_MAX, value))),
            "step": 0.05,
            "label": mechanism_label(name),
        }
    params["seed"] = {"type": "InputText", "value": str(scenario.seed), "label": "Seed"}
    return params


# --------------------------------------------------------------------------- drawing

#: Show slider values all the time, as small numbers under the knob (Vuetify shows
#: them only while dragging, in a bubble that would cover the slider above).
PAGE_CSS = """
.v-slider__thumb-label-container { display: block !important; }
.v-slider .v-slider__thumb-container .v-slider__thumb-label {
  transform: translate(-50%, 19px) !important; background-color: transparent !important;
  border-color: transparent !important; width: 40px !important; height: 12px !important;
  border-radius: 0 !important;
}
.v-slider .v-slider__thumb-label > * {
  transform: none !important; color: #1565c0 !important; font-size: 10px; font-weight: 500;
}
"""
COMMAND_STYLE = {"font-size": "0.8em", "font-family": "monospace", "color": "#555"}


def run_summary(model: AllegianceModel) -> tuple[str, str]:
    """What is running (policy, seed, mechanism strengths) and the ``sim run`` line for it."""
    sc = model.scenario
    mech = " · ".join(f"{n.replace('_', ' ')} {getattr(sc.mechanisms, n):g}" for n in MECHANISM_NAMES)
    running = f"Running: policy {sc.air_campaign.policy} · seed {model.seed} · {mech}"
    loaded = getattr(model, "loaded", None)
    if loaded is None:
        return running, ""
    try:
        path = loaded.path.resolve().relative_to(Path.cwd())
    except ValueError:
        path = loaded.path
    sets = "".join(f" --set {o}" for o in loaded.overrides)
    return running, f"same run: sim run {path}{sets}   (controls apply on Reset)"


def day_label(model: AllegianceModel) -> str:
    """'Day 12 of 120 · 2018-01-13': days simulated and the date of the last one."""
    day = model.day
    text = f"Day {day} of {model.scenario.days}"
    if model.scenario.start_date is None:
        return text + " · no start date"
    if day == 0:
        return text + f" · starts {model.scenario.date_of(0):%Y-%m-%d}"
    return text + f" · {model.scenario.date_of(day - 1):%Y-%m-%d}"


def town_positions(model: AllegianceModel) -> tuple[np.ndarray, np.ndarray, float]:
    """Town x and y for drawing, and the axes' aspect ratio.

    Longitude and latitude for scenarios with coordinates (aspect corrected for the
    latitude), otherwise the grid cell of each town.
    """
    if model.geo.has_coordinates:
        lon = np.array([t.lon for t in model.scenario.towns], dtype=float)
        lat = np.array([t.lat for t in model.scenario.towns], dtype=float)
        return lon, lat, 1.0 / math.cos(math.radians(float(lat.mean())))
    cells = np.array(model.geo.cells, dtype=float)
    return cells[:, 0], cells[:, 1], 1.0


def label_offsets(
    ax: Any,
    x: np.ndarray,
    y: np.ndarray,
    radius: np.ndarray,
    labels: list[str],
    fontsize: float,
    order: np.ndarray,
) -> list[tuple[float, float, str, str]]:
    """Where to put each town's label so that labels do not overprint each other.

    Tries below, above, right and left of the marker (``radius`` in points), in that
    order, and takes the first place that overlaps no marker, no label placed before
    (towns in ``order``, biggest first) and stays inside the axes; if there is none,
    the least crowded place.

    Returns:
        Per town: x and y offset in points, horizontal and vertical alignment.
    """
    ax.apply_aspect()
    scale = 72.0 / ax.figure.dpi
    centre = ax.transData.transform(np.column_stack([x, y])) * scale
    frame = ax.get_window_extent().extents * scale
    # Markers are obstacles too; labels placed so far are added as they come.
    placed = [(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centre, radius, strict=True)]
    out: list[tuple[float, float, str, str]] = [(0.0, 0.0, "center", "top")] * len(labels)

    def overlap(box: tuple[float, float, float, float]) -> float:
        w = min(box[2], frame[2]) - max(box[0], frame[0])
        h = min(box[3], frame[3]) - max(box[1], frame[1])
        total = (box[2] - box[0]) * (box[3] - box[1]) - max(w, 0.0) * max(h, 0.0)  # outside
        for other in placed:
            w = min(box[2], other[2]) - max(box[0], other[0])
            h = min(box[3], other[3]) - max(box[1], other[1])
            total += max(w, 0.0) * max(h, 0.0)
        return total

    for i in order:
        cx, cy = centre[i]
        w, h = 0.58 * fontsize * len(labels[i]), 1.25 * fontsize
        r = float(radius[i]) + 2
        options = [
            ((0.0, -r, "center", "top"), (cx - w / 2, cy - r - h, cx + w / 2, cy - r)),
            ((0.0, r, "center", "bottom"), (cx - w / 2, cy + r, cx + w / 2, cy + r + h)),
            ((r, 0.0, "left", "center"), (cx + r, cy - h / 2, cx + r + w, cy + h / 2)),
            ((-r, 0.0, "right", "center"), (cx - r - w, cy - h / 2, cx - r, cy + h / 2)),
        ]
        crowding = [overlap(box) for _, box in options]
        best = next((k for k, c in enumerate(crowding) if c == 0), int(np.argmin(crowding)))
        out[i] = options[best][0]
        placed.append(options[best][1])
    return out


def draw_town_map(model: AllegianceModel, mode: str = "cooperation") -> Figure:
    """The towns coloured by cooperation or resistance, with strikes and displaced.

    Marker area grows with the persons present; a blue ring grows with the displaced
    persons a town hosts; a red cross marks a town struck on the last simulated day,
    fading crosses the strikes of the previous week; regime-held towns are grey.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ts = model.town_state
    key, cmap, title = COLOUR_MODES[mode]
    x, y, aspect = town_positions(model)
    w = model.weight
    present = ts.present * w
    hosted = ts.hosted * w
    scale = max(float((ts.persons0 * w).max()), 1.0)
    size = 60 + 900 * present / scale

    # Fixed axes positions: a layout engine would cost a second draw per frame.
    fig = Figure(figsize=(6.4, 6.2))
    ax = fig.add_axes((0.1, 0.17, 0.74, 0.76))
    cax = fig.add_axes((0.87, 0.3, 0.025, 0.5))
    ring = (np.sqrt(size) + 3 + 28 * np.sqrt(np.minimum(hosted / scale, 1.5))) ** 2
    has_hosted = hosted >= 1
    ax.scatter(
        x[has_hosted],
        y[has_hosted],
        s=ring[has_hosted],
        facecolors="#dbe9f6",
        edgecolors="#2c7fb8",
        linewidths=1.5,
        zorder=2,
    )
    value = getattr(ts, key)
    held = ~ts.open  # regime-held
    dots = ax.scatter(
        x[~held],
        y[~held],
        s=size[~held],
        c=value[~held],
        cmap=cmap,
        vmin=0,
        vmax=1,
        edgecolors=np.where(model.resisting[~held], "#b30000", "#333333"),
        linewidths=np.where(model.resisting[~held], 2.0, 0.8),
        zorder=3,
    )
    if held.any():
        ax.scatter(x[held], y[held], s=size[held], c="#9e9e9e", marker="s", edgecolors="black", zorder=3)
    cbar = fig.colorbar(dots, cax=cax)
    cbar.set_label(title)

    done = model.collector.days_done
    recent = model.collector.town["strikes"][max(0, done - STRIKE_TRAIL_DAYS) : done]
    for age, row in enumerate(recent[::-1]):  # age 0: the last simulated day
        hit = row > 0
        if hit.any():
            ax.scatter(
                x[hit],
                y[hit],
                s=260 if age == 0 else 160,
                marker="X",
                c="#e31a1c",
                alpha=1.0 if age == 0 else 0.45 * (1 - age / STRIKE_TRAIL_DAYS),
                edgecolors="white",
                linewidths=1.0,
                zorder=5,
            )
    if model.geo.has_coordinates:
        pad = 0.08
        ax.set_xlim(x.min() - pad, x.max() + pad)
        ax.set_ylim(y.min() - pad, y.max() + pad)
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
    else:
        ax.set_xlim(-0.5, model.geo.width - 0.5)
        ax.set_ylim(-0.5, model.geo.height - 0.5)
        ax.set_xlabel(f"grid column ({model.geo.cell_km:g} km cells)")
        ax.set_ylabel("grid row (north up)")
        ax.grid(alpha=0.25, linewidth=0.5)
    ax.set_aspect(aspect)
    today = recent[-1] if done else np.zeros(ts.n)
    labels = [n if k <= 1 else f"{n} ({int(k)} strikes)" for n, k in zip(ts.names, today, strict=True)]
    radius = np.sqrt(np.where(has_hosted, ring, size)) / 2
    offsets = label_offsets(ax, x, y, radius, labels, LABEL_SIZE, order=np.argsort(-ts.persons0))
    for i, (dx, dy, ha, va) in enumerate(offsets):
        ax.annotate(
            labels[i],
            (x[i], y[i]),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=LABEL_SIZE,
            zorder=6,
            fontweight="bold" if today[i] else "normal",
        )
    # Titles as plain text: Axes.set_title re-measures every tick label on each draw.
    ax.text(
        0.5,
        1.015,
        f"{model.scenario.name}: {day_label(model)}",
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=10,
    )
    handles = [
        Line2D(
            [],
            [],
            marker="X",
            ls="",
            color="#e31a1c",
            markeredgecolor="white",
            markersize=10,
            label="strike (last day; faded: past week)",
        ),
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            markerfacecolor="#dbe9f6",
            markeredgecolor="#2c7fb8",
            markersize=11,
            label="ring: displaced hosted",
        ),
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            markerfacecolor="white",
            markeredgecolor="#b30000",
            markeredgewidth=2,
            markersize=8,
            label="resisting town (initially)",
        ),
        Line2D(
            [],
            [],
            marker="s",
            ls="",
            markerfacecolor="#9e9e9e",
            markeredgecolor="black",
            markersize=8,
            label="regime-held",
        ),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7.5, frameon=False)
    return fig


def draw_charts(model: AllegianceModel) -> Figure:
    """Four panels over the days simulated so far (x axis fixed to the scenario's length)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    gov = model.collector.gov
    done = model.collector.days_done
    days = np.arange(1, done + 1)  # collector row d is the end of day d + 1
    series = {k: v[:done] for k, v in gov.items()}
    fig = Figure(figsize=(6.4, 6.2))
    axes = fig.subplots(2, 2, sharex=True)
    fig.subplots_adjust(left=0.1, right=0.9, bottom=0.08, top=0.95, wspace=0.42, hspace=0.2)
    panels = [
        (
            "Cooperation with HTS",
            "share of persons present",
            [
                ("coop_share_resisting", "resisting towns", "#d95f02"),
                ("coop_share_other", "elsewhere", "#7570b3"),
            ],
            True,
        ),
        (
            "Protest participation",
            "share of persons present",
            [
                ("protest_share_resisting", "resisting towns", "#d95f02"),
                ("protest_share", "all towns", "#1b9e77"),
            ],
            True,
        ),
        (
            "Displaced",
            "persons",
            [
                ("displaced_persons", "away from home now", "#2c7fb8"),
                ("displacement_moves_cum", "moves so far", "#9ecae1"),
            ],
            False,
        ),
        ("Casualties", "persons killed (cumulative)", [("killed_cum", "killed", "#e31a1c")], False),
    ]
    for ax, (title, ylabel, lines, share) in zip(axes.ravel(), panels, strict=True):
        for key, label, colour in lines:
            ax.plot(days, series[key], color=colour, label=label, lw=1.8)
        ax.text(0.5, 1.02, title, transform=ax.transAxes, ha="center", va="bottom", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_xlim(0, model.scenario.days)
        top = max((float(series[k].max()) for k, _, _ in lines), default=0.0) if done else 0.0
        ax.set_ylim(0, max(top * 1.4, 0.05 if share else 10.0))  # headroom for the legend
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    strikes = series["strikes"]
    ax = axes[1, 1]
    if done:
        twin = ax.twinx()
        edges = np.arange(done + 1) + 0.5  # one artist for all days (bar() makes one per day)
        twin.stairs(strikes, edges, fill=True, color="#fdae6b", alpha=0.6)
        twin.set_ylim(0, max(float(strikes.max()) * 3, 5))
        twin.tick_params(labelsize=8)
        twin.set_ylabel("strikes per day", fontsize=8, color="#e6550d")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
    start = model.scenario.start_date
    for ax in axes[1]:
        ax.set_xlabel(f"day (0 = {start:%d %b %Y})" if start else "day", fontsize=8)
    for ax in axes[1]:
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    return fig


def _thousands(value: float, _pos: int | None = None) -> str:
    """Tick label: 250000 -> '250k'."""
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


# --------------------------------------------------------------------------- the app proper
#
# ``sim`` imports this module on every command (for :func:`register`), so the heavy part
# (solara, Mesa's SolaraViz, the model) is defined on first use of one of these names
# (PEP 562 module ``__getattr__``): ``from sim.viz.app import AppModel`` and solara's
# ``sim.viz.app:Page`` both work, and ``sim validate`` stays fast.

_APP_NAMES = ("AppModel", "Page", "TownMap", "Charts", "colour_mode")


def __getattr__(name: str) -> Any:
    if name in _APP_NAMES:
        return _app()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _app() -> dict[str, Any]:
    """Import solara, SolaraViz and the model; define the model class and the page (once)."""
    # Mesa 3.3.1's own ComponentsView trips solara's hook linter; nothing to act on here.
    warnings.filterwarnings("ignore", message=r".*ComponentsView: `use_state` found despite")
    import solara
    from mesa.visualization import SolaraViz
    from mesa.visualization.utils import update_counter

    from sim.model.model import AllegianceModel
    from sim.scenario.loader import load_scenario

    class AppModel(AllegianceModel):
        """The allegiance model built from a scenario file and the app's controls.

        Only the constructor differs from :class:`~sim.model.model.AllegianceModel`: SolaraViz
        re-creates the model on *Reset* as ``AppModel(**controls)``, so the controls must
        be flat keyword arguments. They become ``--set`` overrides of the scenario file,
        exactly as ``sim run FILE --set ... --seed ...`` would apply them.

        Args:
            scenario_file: path of the scenario YAML (default: :func:`served_scenario`).
            policy: targeting policy of the air campaign (default: the file's).
            seed: root seed, an integer or the text of the seed box (default: the file's;
                text that is not an integer falls back to the file's seed with a notice).
            rally, regime_blame, institutions, suppression, pretext_blame, exit, control:
                mechanism strengths (default: the file's); see :class:`sim.scenario.schema.Mechanisms`.
        """

        def __init__(
            self,
            scenario_file: str | Path | None = None,
            policy: str | None = None,
            seed: int | str | None = None,
            rally: float | None = None,
            regime_blame: float | None = None,
            institutions: float | None = None,
            suppression: float | None = None,
            pretext_blame: float | None = None,
            exit: float | None = None,
            control: float | None = None,
        ):
            path = Path(scenario_file) if scenario_file else served_scenario()
            base = load_scenario(path).scenario
            seed_value, self.notice = parse_seed(seed, base.seed)
            mechanisms = {
                "rally": rally,
                "regime_blame": regime_blame,
                "institutions": institutions,
                "suppression": suppression,
                "pretext_blame": pretext_blame,
                "exit": exit,
                "control": control,
            }
            self.overrides = control_overrides(base, policy=policy, seed=seed_value, **mechanisms)
            self.loaded = load_scenario(path, self.overrides)
            super().__init__(self.loaded.scenario)

    colour_mode = solara.reactive("cooperation")  # one value per browser session

    @solara.component
    def TownMap(model: AllegianceModel) -> None:
        """The town map with the day counter and the colouring control."""
        update_counter.get()  # re-render on every step Mesa's controller renders
        with solara.Column(classes=["sim-map"], style={"padding": "4px"}):
            with solara.Row(style={"align-items": "center", "flex-wrap": "wrap"}):
                solara.Text(
                    day_label(model),
                    classes=["sim-day"],
                    style={"font-size": "1.15em", "font-weight": "bold"},
                )
                solara.ToggleButtonsSingle(
                    value=colour_mode,
                    values=list(COLOUR_MODES),
                    dense=True,
                    classes=["sim-colour-mode"],
                )
            if getattr(model, "notice", ""):
                solara.Warning(model.notice, dense=True)
            mode = colour_mode.value
            fig = draw_town_map(model, mode)
            solara.FigureMatplotlib(fig, format="png", dpi=90, dependencies=[id(model), model.day, mode])

    @solara.component
    def Charts(model: AllegianceModel) -> None:
        """The four time-series panels."""
        update_counter.get()
        with solara.Column(classes=["sim-charts"], style={"padding": "4px"}):
            running, command = run_summary(model)
            solara.Text(running, classes=["sim-run-info"], style={"font-size": "0.85em"})
            solara.Text(command, classes=["sim-run-command"], style=COMMAND_STYLE)
            fig = draw_charts(model)
            solara.FigureMatplotlib(fig, format="png", dpi=90, dependencies=[id(model), model.day])

    @solara.component
    def Page() -> None:
        """One browser session: its own model, rebuilt by SolaraViz on Reset."""
        path = served_scenario()
        initial = solara.use_memo(lambda: AppModel(path), [])
        model = solara.use_reactive(initial)

        def release_on_replace():
            current = model.value
            return current.release  # Mesa 3.3 keeps finished models alive otherwise

        solara.use_effect(release_on_replace, [model.value])
        solara.Style(PAGE_CSS)
        SolaraViz(
            model,
            components=[(TownMap, 0), (Charts, 0)],
            model_params=model_params(initial.loaded.scenario, path),
            name=f"Allegiance under air strikes: {initial.scenario.name}",
            play_interval=201,  # about five days a second at most: time to see the strikes
            render_interval=1,
        )

    return {name: value for name, value in locals().items() if name in _APP_NAMES}


# --------------------------------------------------------------------------- command line


def serve(path: Path, host: str, port: int) -> None:
    """Run the solara server for scenario ``path`` (blocks until interrupted)."""
    from solara.__main__ import run as solara_run

    os.environ[SCENARIO_ENV] = str(path.resolve())
    os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")  # offline: no analytics
    # A local http server has no use for cross-site cookies; keep the terminal quiet.
    warnings.filterwarnings("ignore", message=r"Cookies with samesite=none require https")
    args = [
        "sim.viz.app",
        "--host",
        host,
        "--port",
        str(port),
        "--production",
        "--no-open",
        "--no-check-version",
        "--log-level-uvicorn",
        "warning",
    ]
    solara_run.main(args=args, prog_name="sim app", standalone_mode=False)
