"""Interactive browser app (Mesa's solara controls): watch a scenario unfold on the town map.

``sim app [SCENARIO]`` serves this module with solara on localhost. The page shows

* the towns on the grid (or at their latitude and longitude, over the bundled outline of
  the Turkish border, the governorate and the M5 and M4 roads, with the regime-held and
  contested areas from the front events), coloured by the share cooperating with HTS or
  by the share resisting, shaped by who holds them, sized by the persons present, ringed
  by the displaced they host, with strikes marked on the day they land (fading for a
  week); hovering a town shows its numbers on that day;
* charts of cooperation in resisting towns and elsewhere, protest participation,
  displaced persons and casualties, over dates for a calendar scenario;
* for a scenario with recorded figures, observed against simulated as the run passes
  each recorded window; a download of the run's tables as Parquet (the files ``sim run``
  writes);
* controls for the targeting policy, the mechanism strengths and the seed, with Mesa's
  step / play / pause / reset buttons, and the current day and date (in the header).

There is no second implementation of the model: :class:`AppModel` only turns the
controls into the same ``--set`` overrides that ``sim run`` accepts, loads the
scenario file with :func:`sim.scenario.loader.load_scenario` and builds an
:class:`~sim.model.model.AllegianceModel`. Mesa's ModelController rebuilds the model on
*Reset* by calling ``AppModel(**controls)``.

Drawing happens in the browser (Vega-Lite, :mod:`sim.viz.vega`): each view's spec is sent
once per model, then each day only its data (a few kilobytes), built from the town arrays
(``model.town_state``) and the collector's daily arrays; it never iterates the household
agents or the grid cells.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.scenario.schema import MECHANISM_NAMES, POLICIES, Mechanisms, Scenario
from sim.scenario.shipped import shipped_path
from sim.viz.style import colour_map

if TYPE_CHECKING:
    from sim.model.model import AllegianceModel

DEFAULT_SCENARIO = "synthetic_grid"  # a shipped scenario (sim.scenario.shipped)
SCENARIO_ENV = "SIM_APP_SCENARIO"
DEFAULT_PORT = 8765

#: Mechanism strengths offered as sliders (every mechanism of the schema).
MECHANISM_CONTROLS: tuple[str, ...] = MECHANISM_NAMES
#: Slider range for the multiplier mechanisms (the schema allows up to 10).
MULTIPLIER_MAX = 3.0
#: Step of the mechanism sliders (the slider's grid: 0, 0.05, 0.10, ...).
SLIDER_STEP = 0.05
#: Map colouring modes: label -> (town array, legend title); the colour map is the
#: variable's own (:func:`sim.viz.style.colour_map`), as in every figure.
COLOUR_MODES: dict[str, tuple[str, str]] = {
    "cooperation": ("coop_share", "share cooperating with HTS"),
    "resistance": ("resist_share", "share resisting HTS"),
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

    A mechanism slider that shows the file's value is no override, whether it sends that value
    or its :func:`slider_position` (the browser's slider sends a calibrated 1.18056 back as 1.2
    as soon as the page loads), so untouched controls run exactly the model ``sim run FILE`` runs.

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
        in_file = getattr(scenario.mechanisms, name)
        untouched = (in_file, slider_position(in_file, slider_max(name, in_file)))
        if all(abs(value - v) > 1e-9 for v in untouched):
            out.append(f"mechanisms.{name}={value!r}")
    if seed is not None and seed != scenario.seed:
        out.append(f"seed={seed}")
    return out


def slider_max(name: str, value: float) -> float:
    """Upper end of a mechanism's slider: the schema's bound for a share, else :data:`MULTIPLIER_MAX`
    (or the file's value when it is higher)."""
    bounds = Mechanisms.model_fields[name].metadata
    upper = next((b.le for b in bounds if hasattr(b, "le")), MULTIPLIER_MAX)
    return float(min(upper, max(MULTIPLIER_MAX, value)))


def slider_position(value: float, maximum: float, step: float = SLIDER_STEP) -> float:
    """The value a mechanism slider (from 0) holds and sends for ``value``: its nearest grid point.

    Solara's ``SliderFloat`` is a Vuetify 2 ``v-slider``, which rounds the value it is given to
    its step grid before it is first drawn and, when that changes it, sends the rounded value
    back (``VSlider.beforeMount`` sets ``internalValue``, whose setter applies ``roundValue`` and
    emits ``input``). So a calibrated 1.18056 comes back as 1.2 as soon as the page loads, and
    Mesa's *Reset* passes 1.2. This is ``roundValue`` for a slider whose minimum is 0:
    ``parseFloat(Math.min(Math.round(v / step) * step, max).toFixed(decimals of step))``.
    """
    decimals = len(f"{step}".partition(".")[2])
    return float(f"{min(math.floor(value / step + 0.5) * step, maximum):.{decimals}f}")


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
        value = getattr(scenario.mechanisms, name)
        params[name] = {
            "type": "SliderFloat",
            "value": value,  # the slider shows slider_position(value); either one is no override
            "min": 0.0,
            "max": slider_max(name, value),
            "step": SLIDER_STEP,
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


def map_view(model: AllegianceModel, mode: str) -> tuple[str, Any]:
    """The map's Vega-Lite spec (JSON) for a colouring mode, and the model's fixed layout (cached per scenario)."""
    from sim.scenario.basemap import basemap_covering
    from sim.viz.maps import town_positions
    from sim.viz.vega import cmap_scale, map_layout, map_spec

    x, y, geo = town_positions(model.scenario)
    layout = map_layout(model, x, y, geo)
    base = basemap_covering(x, y) if geo else None
    variable, title = COLOUR_MODES[mode]
    scale = cmap_scale(colour_map(variable))
    spec = map_spec(layout.frame, base, layout.u, layout.v, colour_title=title, colour_scale=scale)
    return json.dumps(spec), layout


def map_title(model: AllegianceModel) -> str:
    """Header drawn inside the map: the scenario and the same day and date as the page header."""
    return f"{model.scenario.name}: {day_label(model)}"


def charts_view(model: AllegianceModel) -> dict[str, Any]:
    """The charts' Vega-Lite spec: dates on the x axis for a calendar scenario, days otherwise."""
    from sim.viz.vega import chart_spec

    sc = model.scenario
    if sc.start_date is None:
        return chart_spec(calendar=False, first=0, last=sc.days)
    return chart_spec(calendar=True, first=f"{sc.date_of(0):%Y-%m-%d}", last=f"{sc.date_of(sc.days - 1):%Y-%m-%d}")


def observed_so_far(model: AllegianceModel) -> tuple[Any, int]:
    """Observed-versus-simulated rows for the recorded figures whose window the run has passed.

    Uses :func:`sim.analysis.observed.observed_table` on this run's tables (one replicate: the
    run on the page; ``sim run`` adds the spawned-seed replicates). Returns the table (None when
    the scenario has no recorded figures) and how many figures there are in all.
    """
    from sim.analysis.observed import observed_table, window_days

    sc = model.scenario
    figures = sc.observed.figures
    if not figures:
        return None, 0
    done = model.collector.days_done
    passed = []
    for fig in figures:
        if fig.kind == "council_independent":
            ready = done >= sc.days
        else:
            _, last, _ = window_days(fig, sc, sc.days)
            ready = done > last
        if ready:
            passed.append(fig)
    if not passed:
        return None, len(figures)
    partial = sc.model_copy(update={"observed": sc.observed.model_copy(update={"figures": passed})})
    return observed_table(partial, [model.collector.frames()]), len(figures)


def observed_markdown(table: Any, total: int) -> str:
    """The observed-versus-simulated rows as a Markdown table."""
    lines = [
        "| recorded figure | window | simulated (this run) | recorded | ratio | check |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in table.itertuples(index=False):

        def num(v: float) -> str:
            return "n/a" if v != v else (f"{v:.2f}" if abs(v) < 10 else f"{v:,.0f}")

        calibrated = " (calibration target)" if row.calibrated == "yes" else ""
        check = row.check
        if row.comparison == "equal" and row.replicates == 1:
            check = "one run: no range (sim run adds replicates)"  # min = max = this run
        lines.append(
            f"| {row.figure}{calibrated} | {row.window} | {num(row.simulated)} | {row.comparison.replace('_', ' ')} "
            f"{num(row.observed)} | {num(row.ratio)} | {check} |"
        )
    waiting = total - len(table)
    if waiting:
        lines.append(f"\n{waiting} more recorded figure(s) fill in when the run passes their window.")
    return "\n".join(lines)


def run_tables_zip(model: AllegianceModel) -> bytes:
    """The run's tables so far as Parquet files in a zip: the files ``sim run`` writes.

    The tables come from the model's collector and are written by :func:`sim.run.store.write_parquet`
    (the one writer ``sim run`` uses), so each file equals ``sim run``'s for the same scenario,
    overrides and number of days.
    """
    import io
    import tempfile
    import zipfile

    from sim.run.store import write_parquet

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="sim-app-") as tmp, zipfile.ZipFile(buffer, "w") as zf:
        for name, df in model.collector.frames().items():
            path = Path(tmp) / f"{name}.parquet"
            write_parquet(df, path)
            info = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes for the same run
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def download_name(model: AllegianceModel) -> str:
    """File name of the download: scenario, seed and days simulated."""
    return f"{model.scenario.name}_seed{model.seed}_{model.collector.days_done}days_tables.zip"


#: The page's Vega view (an ipyvue template): embeds a Vega-Lite spec once, then applies
#: each change of ``datasets`` as Vega changesets to the named datasets, so a day redraws in
#: place instead of rebuilding the view. Vega is loaded from solara's bundled assets (offline).
VEGA_VIEW_TEMPLATE = Path(__file__).with_name("vega_view.vue")
#: The Vega libraries solara-assets 1.58.2 (pinned in pyproject.toml) serves under ``/_solara/cdn``.
VEGA_VERSIONS = {"vega": "5.21.0", "vega-lite": "5.2.0", "vega-embed": "6.20.2"}


# --------------------------------------------------------------------------- the app proper
#
# ``sim`` imports this module on every command (for :func:`register`), so the heavy part
# (solara, Mesa's SolaraViz, the model) is defined on first use of one of these names
# (PEP 562 module ``__getattr__``): ``from sim.viz.app import AppModel`` and solara's
# ``sim.viz.app:Page`` both work, and ``sim validate`` stays fast.

_APP_NAMES = ("AppModel", "Page", "Main", "VegaView", "colour_mode")
#: Milliseconds Mesa's play loop waits between days (a day's own work comes on top).
PLAY_INTERVAL_MS = 60


def __getattr__(name: str) -> Any:
    if name in _APP_NAMES:
        return _app()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _app() -> dict[str, Any]:
    """Import solara, Mesa's controls and the model; define the model class and the page (once)."""
    # Mesa 3.3.1's own ComponentsView trips solara's hook linter on import; nothing to act on here.
    warnings.filterwarnings("ignore", message=r".*ComponentsView: `use_state` found despite")
    import ipyvuetify
    import solara
    import traitlets
    from mesa.visualization.solara_viz import ModelController, ModelCreator
    from mesa.visualization.utils import update_counter

    from sim.model.model import AllegianceModel
    from sim.scenario.loader import load_scenario
    from sim.viz.vega import chart_data, map_data

    class AppModel(AllegianceModel):
        """The allegiance model built from a scenario file and the app's controls.

        Only the constructor differs from :class:`~sim.model.model.AllegianceModel`: Mesa's
        controller re-creates the model on *Reset* as ``AppModel(**controls)``, so the controls
        must be flat keyword arguments. They become ``--set`` overrides of the scenario file,
        exactly as ``sim run FILE --set ... --seed ...`` would apply them. The Mesa household
        view agents are not created (the page reads the household arrays through the town
        arrays and the collector; the tables are the same either way), which keeps Reset fast.

        Args:
            scenario_file: path of the scenario YAML (default: :func:`served_scenario`).
            policy: targeting policy of the air campaign (default: the file's).
            seed: root seed, an integer or the text of the seed box (default: the file's;
                text that is not an integer falls back to the file's seed with a notice).
            rally, regime_blame, institutions, suppression, pretext_blame, exit, control, consolidation:
                mechanism strengths (default: the file's); see :class:`sim.scenario.schema.Mechanisms`.
                The file's value and the slider's position for it (:func:`slider_position`) both
                mean the file's value.
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
            consolidation: float | None = None,
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
                "consolidation": consolidation,
            }
            self.overrides = control_overrides(base, policy=policy, seed=seed_value, **mechanisms)
            self.loaded = load_scenario(path, self.overrides)
            super().__init__(self.loaded.scenario, household_agents=False)

    class VegaView(ipyvuetify.VuetifyTemplate):
        """A Vega-Lite view whose named datasets update in place (see :data:`VEGA_VIEW_TEMPLATE`)."""

        template_file = str(VEGA_VIEW_TEMPLATE)
        # JSON text, not dicts: reacton walks dict and list arguments of every element on each
        # render (looking for child elements), which costs more than the whole model day.
        spec_json = traitlets.Unicode("{}").tag(sync=True)
        datasets_json = traitlets.Unicode("{}").tag(sync=True)  # not `data`: ipyvue reserves it
        view_class = traitlets.Unicode("").tag(sync=True)
        versions = traitlets.Dict(VEGA_VERSIONS).tag(sync=True)
        cdn = traitlets.Unicode(None, allow_none=True).tag(sync=True)

        @traitlets.default("cdn")
        def _cdn(self) -> str | None:
            import solara.settings

            return None if solara.settings.assets.proxy else solara.settings.assets.cdn

    colour_mode = solara.reactive("cooperation")  # one value per browser session

    @solara.component
    def TownMap(model: AllegianceModel) -> None:
        """The town map: spec once per model and colouring, the day's data as a changeset."""
        update_counter.get()
        mode = colour_mode.value
        spec, layout = solara.use_memo(lambda: map_view(model, mode), [id(model), mode])
        data = map_data(model, layout, COLOUR_MODES[mode][0], map_title(model))
        VegaView.element(spec_json=spec, datasets_json=json.dumps(data), view_class="sim-map")

    @solara.component
    def Charts(model: AllegianceModel) -> None:
        """The four time-series panels, dates on the x axis for a calendar scenario."""
        update_counter.get()
        spec = solara.use_memo(lambda: json.dumps(charts_view(model)), [id(model)])
        VegaView.element(spec_json=spec, datasets_json=json.dumps(chart_data(model)), view_class="sim-charts")

    @solara.component
    def Observed(model: AllegianceModel) -> None:
        """Observed against simulated, filled in as the run passes each recorded window."""
        update_counter.get()
        sc = model.scenario
        done = model.collector.days_done
        passed = sum(
            1
            for f in sc.observed.figures
            if (done >= sc.days if f.kind == "council_independent" else done > _window_last(f, sc))
        )
        table, total = solara.use_memo(lambda: observed_so_far(model), [id(model), passed])
        if not total:
            return
        with solara.Card("Observed against simulated", classes=["sim-observed"]):
            if table is None:
                solara.Text(f"{total} recorded figures; each fills in when the run passes its window.")
            else:
                solara.Markdown(observed_markdown(table, total))

    @solara.component
    def Main(model: AllegianceModel) -> None:
        """Header (day, colouring, download, what runs), the map at page width, charts, observed."""
        update_counter.get()
        running, command = run_summary(model)
        with solara.Column(classes=["sim-main"], style={"width": "100%", "padding": "4px"}):
            with solara.Row(style={"align-items": "center", "flex-wrap": "wrap"}):
                solara.Text(day_label(model), classes=["sim-day"], style={"font-size": "1.15em", "font-weight": "bold"})
                solara.ToggleButtonsSingle(
                    value=colour_mode, values=list(COLOUR_MODES), dense=True, classes=["sim-colour-mode"]
                )
                solara.FileDownload(
                    lambda: run_tables_zip(model),
                    filename=download_name(model),
                    label="Download tables (Parquet)",
                    mime_type="application/zip",
                )
            solara.Text(running, classes=["sim-run-info"], style={"font-size": "0.85em"})
            solara.Text(command, classes=["sim-run-command"], style=COMMAND_STYLE)
            if getattr(model, "notice", ""):
                solara.Warning(model.notice, dense=True)
            TownMap(model)
            Charts(model)
            Observed(model)

    @solara.component
    def Page() -> None:
        """One browser session: its own model, rebuilt by Mesa's controller on Reset.

        Mesa's ModelController and ModelCreator make the sidebar; SolaraViz's page tabs,
        draggable grid, thread switch, render-interval slider and step counter ("Information",
        which the day in the header replaces) are left out.
        """
        path = served_scenario()
        initial = solara.use_memo(lambda: AppModel(path), [])
        model = solara.use_reactive(initial)
        parameters = solara.use_reactive({})
        play_interval = solara.use_reactive(PLAY_INTERVAL_MS)
        render_interval = solara.use_reactive(1)
        use_threads = solara.use_reactive(False)

        def release_on_replace():
            current = model.value
            return current.release  # Mesa 3.3 keeps finished models alive otherwise

        solara.use_effect(release_on_replace, [model.value])
        solara.Style(PAGE_CSS)
        with solara.AppBar():
            solara.AppBarTitle(f"Allegiance under air strikes: {initial.scenario.name}")
        with solara.Sidebar(), solara.Column():
            with solara.Card("Controls"):
                solara.SliderInt(label="Pause between days (ms)", value=play_interval, min=0, max=500, step=10)
                ModelController(
                    model,
                    model_parameters=parameters,
                    play_interval=play_interval,
                    render_interval=render_interval,
                    use_threads=use_threads,
                )
            with solara.Card("Model Parameters"):
                ModelCreator(model, model_params(initial.loaded.scenario, path), model_parameters=parameters)
        Main(model.value)

    return {name: value for name, value in locals().items() if name in _APP_NAMES}


def _window_last(fig: Any, scenario: Scenario) -> int:
    """Last day index of a recorded figure's window."""
    from sim.analysis.observed import window_days

    return window_days(fig, scenario, scenario.days)[1]


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
