"""``ketapain predict`` and ``ketapain compare``: what a protocol is expected to do.

A protocol is a built-in name (``ketapain protocols``), a protocol TOML file, or a
schedule JSON file given with a PK model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ketapain.errors import InvalidValueError, KetapainError
from ketapain.pharmacology import DEFAULT_MODEL, PKModel, Schedule, Sex, get_model
from ketapain.pharmacology.model_file import load_model_file
from ketapain.pharmacology.pd import PDModel
from ketapain.pharmacology.prediction import DEFAULT_FOLLOW_UP_DAYS, Prediction, predict
from ketapain.protocols import get_protocol, list_protocols, load_protocol_file
from ketapain.reports.prediction_plots import plot_comparison, plot_prediction
from ketapain.sources import Source

console = Console()
err_console = Console(stderr=True)

SEED_COMPARISON = ("single-day", "ten-weekdays", "five-day-ramp", "continuous-100h")


class ReportFormat(StrEnum):
    """How a command prints its result."""

    TABLE = "table"
    JSON = "json"


# Options shared by `predict` and `compare`.
ModelOption = Annotated[str, typer.Option("--model", help="PK model for --schedule")]
BaselineOption = Annotated[
    float, typer.Option("--baseline-nrs", help="pain before treatment, NRS 0-10")
]
SexOption = Annotated[Sex, typer.Option("--sex")]
AgeOption = Annotated[float, typer.Option("--age-y", help="age, years")]
FollowUpOption = Annotated[
    float, typer.Option("--follow-up-days", help="days predicted after the last dose")
]
FormatOption = Annotated[ReportFormat, typer.Option("--format")]
PlotOption = Annotated[Path, typer.Option("--plot", help="PNG figure to write")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (code 2)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@dataclass(frozen=True, slots=True)
class Plan:
    """A named schedule with its PK model, rate cap and sources."""

    name: str
    title: str
    schedule: Schedule
    model: PKModel
    dosing_weight_cap_kg: float | None
    sources: tuple[Source, ...]

    def dosing_weight_kg(self, weight_kg: float) -> float:
        """Weight that applies the protocol's rate cap to mg/kg/h infusions."""
        cap = self.dosing_weight_cap_kg
        return weight_kg if cap is None else min(weight_kg, cap)


def plan_from_protocol(name_or_path: str) -> Plan:
    """A plan from a built-in protocol name or a protocol TOML file."""
    p = get_protocol(name_or_path)
    return Plan(p.name, p.title, p.schedule(), p.pk_model(), p.dosing_weight_cap_kg, p.sources)


def plan_from_schedule(path: Path, model: PKModel) -> Plan:
    """A plan from a schedule JSON file and a PK model."""
    return Plan(
        path.stem, f"{path.name} ({model.name})", Schedule.from_json_file(path), model, None, ()
    )


def resolve_model(model_name: str, model_file: Path | None) -> PKModel:
    """The PK model named, or the one in ``model_file``."""
    return load_model_file(model_file) if model_file else get_model(model_name)


def run_prediction(
    plan: Plan,
    *,
    weight_kg: float,
    baseline_nrs: float,
    sex: Sex,
    age_y: float,
    follow_up_days: float,
) -> Prediction:
    """Predict one plan for one patient."""
    return predict(
        plan.model,
        plan.schedule,
        weight_kg=weight_kg,
        baseline_nrs=baseline_nrs,
        sex=sex,
        age_y=age_y,
        dosing_weight_kg=plan.dosing_weight_kg(weight_kg),
        follow_up_days=follow_up_days,
    )


def _fmt(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def summary_row(plan: Plan, pred: Prediction) -> dict[str, Any]:
    """The JSON record of one prediction."""
    s = pred.summary
    return {
        "protocol": plan.name,
        "title": plan.title,
        "model": plan.model.name,
        "drug": plan.model.drug.value,
        **s.as_dict(),
        "sources": [src.cite() for src in plan.sources],
    }


def _relief_text(pred: Prediction) -> str:
    s = pred.summary
    if s.relief_duration_days <= 0:
        return "none"
    more = "+" if s.relief_censored else ""
    return f"{s.relief_duration_days:.1f}{more} d"


def _model_notes(pd: PDModel) -> list[str]:
    return [
        f"acute relief and psychotomimetic effect: sigmoid Emax, S-ketamine C50 "
        f"{pd.acute.c50_ng_per_ml:.0f} ng/mL (Olofsen 2022)",
        f"sustained relief: slow biophase t1/2 {pd.sustained.t_half_days:g} d, C50 "
        f"{pd.sustained.c50_ng_per_ml:g} ng/mL S-ketamine, response probability "
        f"{pd.sustained.p_response:.0%} (Dahan 2011); gamma {pd.sustained.gamma:g} calibrated "
        "on Sigtermans 2009",
        "blood pressure: MAP rise vs S-ketamine (Långsjö 2005, Sigtermans 2009), "
        "without premedication: an upper bound",
    ]


def predict_command(
    weight_kg: Annotated[float, typer.Option("--weight-kg", help="body weight, kg")],
    protocol: Annotated[
        str | None, typer.Option("--protocol", help="built-in protocol name (ketapain protocols)")
    ] = None,
    protocol_file: Annotated[
        Path | None, typer.Option("--protocol-file", help="protocol TOML file")
    ] = None,
    schedule: Annotated[
        Path | None, typer.Option("--schedule", help="schedule JSON file (with --model)")
    ] = None,
    model_name: ModelOption = DEFAULT_MODEL,
    model_file: Annotated[
        Path | None, typer.Option("--model-file", help="user-defined model (TOML)")
    ] = None,
    baseline_nrs: BaselineOption = 7.0,
    sex: SexOption = Sex.MALE,
    age_y: AgeOption = 40.0,
    follow_up_days: FollowUpOption = DEFAULT_FOLLOW_UP_DAYS,
    fmt: FormatOption = ReportFormat.TABLE,
    plot: PlotOption = Path("ketapain-prediction.png"),
) -> None:
    """Predict concentrations, receptor occupancy, relief and side effects for one patient."""
    given = [x for x in (protocol, protocol_file, schedule) if x is not None]
    if len(given) != 1:
        raise fail("give exactly one of --protocol, --protocol-file or --schedule")
    try:
        if schedule is not None:
            plan = plan_from_schedule(schedule, resolve_model(model_name, model_file))
        else:
            plan = plan_from_protocol(str(protocol if protocol is not None else protocol_file))
        pred = run_prediction(
            plan,
            weight_kg=weight_kg,
            baseline_nrs=baseline_nrs,
            sex=sex,
            age_y=age_y,
            follow_up_days=follow_up_days,
        )
        plot_prediction(
            pred,
            plan.schedule,
            title=f"{plan.title}: {weight_kg:g} kg, baseline NRS {baseline_nrs:g} "
            f"({plan.model.name})",
            path=plot,
        )
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps(summary_row(plan, pred) | {"plot": str(plot)}, indent=2))
        return
    s = pred.summary
    table = Table(
        title=f"{plan.title}: predicted for {weight_kg:g} kg, baseline NRS {baseline_nrs:g}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("note", overflow="fold")
    rows = [
        ("total dose", f"{s.total_dose_mg:.0f} mg", f"{plan.model.drug.value}, {plan.model.name}"),
        ("peak plasma ketamine", _fmt(s.peak_plasma_ng_per_ml, ".0f", " ng/mL"), "total"),
        ("peak S-ketamine, effect site", _fmt(s.peak_s_effect_site_ng_per_ml, ".0f", " ng/mL"), ""),
        ("peak norketamine", _fmt(s.peak_norketamine_ng_per_ml, ".0f", " ng/mL"), ""),
        ("peak NMDA occupancy", f"{s.peak_occupancy:.0%}", "unbound drug, Ki (Ebert 1997)"),
        (
            "peak psychotomimetic effect",
            f"{s.peak_psychotomimetic_effect:.0%}",
            f"chance of reporting it {s.psychotomimetic_probability:.0%}",
        ),
        (
            "peak MAP rise",
            f"{s.peak_map_rise:.0%}",
            "[bold yellow]above 20%: check blood pressure[/]" if s.bp_warning else "",
        ),
        ("time to relief", _fmt(s.time_to_relief_h, ".1f", " h"), ">= 30% below baseline"),
        ("relief after treatment", _relief_text(pred), "responder; + = beyond follow-up"),
        ("lowest NRS", f"{s.lowest_nrs:.1f}", "responder"),
        ("chance of response", f"{s.response_probability:.0%}", "Dahan 2011"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    dosing = plan.dosing_weight_kg(weight_kg)
    if dosing < weight_kg:
        console.print(f"Rates capped by the protocol's mg/h limit: dosed as {dosing:.1f} kg.")
    for line in _model_notes(PDModel()):
        console.print(f"[dim]- {line}[/]")
    console.print(f"Figure written to [bold]{plot}[/]")


def compare_command(
    weight_kg: Annotated[float, typer.Option("--weight-kg", help="body weight, kg")] = 70.0,
    protocols: Annotated[
        list[str] | None,
        typer.Option("--protocol", help="protocol name or TOML file (repeat); default: seeds"),
    ] = None,
    schedules: Annotated[
        list[Path] | None, typer.Option("--schedule", help="schedule JSON file (repeat)")
    ] = None,
    model_name: ModelOption = DEFAULT_MODEL,
    baseline_nrs: BaselineOption = 7.0,
    sex: SexOption = Sex.MALE,
    age_y: AgeOption = 40.0,
    follow_up_days: FollowUpOption = DEFAULT_FOLLOW_UP_DAYS,
    fmt: FormatOption = ReportFormat.TABLE,
    plot: PlotOption = Path("ketapain-compare.png"),
) -> None:
    """Compare protocols for the same patient (default: the four seed protocols)."""
    try:
        model = get_model(model_name)
        plans = [plan_from_protocol(p) for p in protocols or []]
        plans += [plan_from_schedule(s, model) for s in schedules or []]
        if not plans:
            plans = [plan_from_protocol(p) for p in SEED_COMPARISON]
        names = [p.name for p in plans]
        if len(set(names)) != len(names):
            raise InvalidValueError("--protocol/--schedule", "distinct protocols", names)
        preds = [
            run_prediction(
                p,
                weight_kg=weight_kg,
                baseline_nrs=baseline_nrs,
                sex=sex,
                age_y=age_y,
                follow_up_days=follow_up_days,
            )
            for p in plans
        ]
        plot_comparison(
            [(p.name, pr, p.schedule) for p, pr in zip(plans, preds, strict=True)],
            title=f"Protocols compared: {weight_kg:g} kg, baseline NRS {baseline_nrs:g}",
            path=plot,
        )
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    rows = [summary_row(p, pr) for p, pr in zip(plans, preds, strict=True)]
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps({"protocols": rows, "plot": str(plot)}, indent=2))
        return
    table = Table(title=f"Protocols for {weight_kg:g} kg, baseline NRS {baseline_nrs:g}")
    for col in (
        "protocol",
        "total dose",
        "peak S plasma",
        "peak psychotomimetic",
        "MAP rise",
        "lowest NRS",
        "relief after treatment",
    ):
        if col == "protocol":  # names in full, however narrow the terminal
            table.add_column(col, no_wrap=True, min_width=max(len(p.name) for p in plans))
        else:
            table.add_column(col, justify="right")
    for p, pr in zip(plans, preds, strict=True):
        s = pr.summary
        table.add_row(
            p.name,
            f"{s.total_dose_mg:.0f} mg",
            f"{s.peak_s_plasma_ng_per_ml:.0f} ng/mL",
            f"{s.peak_psychotomimetic_effect:.0%}",
            f"{s.peak_map_rise:.0%}" + (" !" if s.bp_warning else ""),
            f"{s.lowest_nrs:.1f}",
            _relief_text(pr),
        )
    console.print(table)
    console.print(
        "[dim]Relief: days after the last dose until NRS returns within 30% of baseline, for a "
        "responder (chance of response 67%, Dahan 2011). ! = MAP rise above 20%.[/]"
    )
    console.print(f"Figure written to [bold]{plot}[/]")


def protocols_command(
    files: Annotated[
        list[Path] | None,
        typer.Option("--protocol-file", help="also list this clinic protocol file (repeat)"),
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--protocol-dir", help="also list every *.toml file here")
    ] = None,
    fmt: FormatOption = ReportFormat.TABLE,
) -> None:
    """List the built-in protocols (and clinic protocol files) with their sources."""
    try:
        paths = list(files or []) + (sorted(directory.glob("*.toml")) if directory else [])
        items = list_protocols() + [load_protocol_file(f) for f in paths]
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    if fmt is ReportFormat.JSON:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "title": p.title,
                        "drug": p.drug.value,
                        "model": p.model,
                        "setting": p.setting.value,
                        "max_rate_mg_per_h": p.max_rate_mg_per_h,
                        "days": [s.day for s in p.slots()],
                        "phases": [
                            {"name": ph.name, "title": ph.title, "trigger": ph.trigger.value}
                            for ph in p.phases
                        ],
                        "description": p.description,
                        "sources": [s.cite() for s in p.sources],
                        "file": None if p.path is None else str(p.path),
                    }
                    for p in items
                ],
                indent=2,
            )
        )
        return
    table = Table(title="ketapain protocols", show_lines=True)
    for col in ("name", "title", "setting / drug / model", "phases", "sources"):
        table.add_column(col, overflow="fold")
    for p in items:
        table.add_row(
            p.name,
            p.title,
            f"{p.setting.value} / {p.drug.value} / {p.model}",
            "\n".join(f"{ph.name} ({ph.trigger.value})" for ph in p.phases),
            "\n".join(s.cite() for s in p.sources),
        )
    console.print(table)
