"""The ``ketapain`` command line.

Examples (see the README for more)::

    ketapain models
    ketapain simulate --model domino-cl79 --weight-kg 70 --schedule s.json --times-h 0:8:0.25
    ketapain demo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ketapain.cli._io import (
    Format,
    parse_times,
    save_curves,
    summary_columns,
    to_csv,
    to_json,
)
from ketapain.errors import KetapainError
from ketapain.pharmacology import (
    DEFAULT_MODEL,
    Covariates,
    PKModel,
    Profile,
    Schedule,
    Sex,
    get_model,
    list_models,
    simulate,
)
from ketapain.pharmacology.model_file import load_model_file
from ketapain.pharmacology.population import virtual_population
from ketapain.reports.plots import Curve, plot_concentrations

app = typer.Typer(
    name="ketapain",
    help="Ketamine infusion therapy for chronic pain: pharmacology, protocols and records.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@app.command("models")
def models_command(
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List the published PK models with their population and source."""
    rows = [
        {
            "name": m.name,
            "drug": m.drug.value,
            "population": m.population,
            "source": m.source.cite(),
            "compartments": m.n_compartments,
            "metabolite": m.metabolite.name if m.metabolite else None,
            "oral": m.oral is not None,
            "default": m.name == DEFAULT_MODEL,
            "references": [s.cite() for s in m.sources()],
        }
        for m in list_models()
    ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if fmt != "table":
        raise _fail(f"--format must be table or json; got {fmt!r}")
    table = Table(title="ketapain PK models", show_lines=True)
    for col in ("name", "drug", "population", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        name = f"{r['name']} (default)" if r["default"] else str(r["name"])
        table.add_row(name, str(r["drug"]), str(r["population"]), str(r["source"]))
    console.print(table)


@app.command("simulate")
def simulate_command(
    schedule_path: Annotated[Path, typer.Option("--schedule", help="schedule JSON file")],
    weight_kg: Annotated[float, typer.Option("--weight-kg", help="body weight, kg")],
    model_name: Annotated[str, typer.Option("--model", help="model name (ketapain models)")] = (
        DEFAULT_MODEL
    ),
    sex: Annotated[Sex, typer.Option("--sex")] = Sex.MALE,
    age_y: Annotated[float, typer.Option("--age-y", help="age, years")] = 40.0,
    times: Annotated[str, typer.Option("--times-h", help="START:STOP:STEP in hours")] = (
        "0:8:0.25"
    ),
    fmt: Annotated[Format, typer.Option("--format")] = Format.TABLE,
    model_file: Annotated[
        Path | None, typer.Option("--model-file", help="user-defined model (TOML)")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="write here")] = None,
    population: Annotated[
        int | None, typer.Option("--population", help="simulate N virtual patients", min=1)
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed for --population")] = 0,
) -> None:
    """Predict ketamine (and norketamine) concentrations for a schedule."""
    try:
        model = load_model_file(model_file) if model_file else get_model(model_name)
        schedule = Schedule.from_json_file(schedule_path)
        time_h = parse_times(times)
        covariates = Covariates.single(weight_kg=weight_kg, sex=sex, age_y=age_y)
        for message in model.check_covariates(covariates):
            err_console.print(f"[yellow]warning:[/] {message}")
        profile, extra = _run(model, schedule, covariates, time_h, population, seed)
    except (KetapainError, OSError) as err:
        raise _fail(str(err)) from None
    _emit(
        model,
        schedule,
        profile,
        extra,
        fmt=fmt,
        output=output,
        population=population,
        weight_kg=weight_kg,
    )


def _run(
    model: PKModel,
    schedule: Schedule,
    covariates: Covariates,
    time_h: np.ndarray,
    population: int | None,
    seed: int,
) -> tuple[Profile, dict[str, np.ndarray]]:
    if population is None:
        params = model.parameters(covariates, warn=False)
        return simulate(params, schedule, times_h=time_h), {}
    pop = virtual_population(model, n=population, seed=seed, covariates=covariates)
    with console.status(f"simulating {population} virtual patients", spinner="dots"):
        profile = simulate(pop.parameters, schedule, times_h=time_h)
    extra = {
        "weight_kg": pop.parameters.weight_kg,
        "cl_l_per_h": pop.parameters.cl_l_per_h,
        "v1_l": pop.parameters.v1_l,
    }
    return profile, extra


def _emit(
    model: PKModel,
    schedule: Schedule,
    profile: Profile,
    extra: dict[str, np.ndarray],
    *,
    fmt: Format,
    output: Path | None,
    population: int | None,
    weight_kg: float,
) -> None:
    columns = summary_columns(profile, population=population is not None)
    if fmt in (Format.NPZ, Format.PARQUET):
        if output is None:
            raise _fail(f"--format {fmt.value} needs --output FILE")
        save_curves(profile, output, fmt, extra)
        err_console.print(f"wrote {profile.n_subjects} curves to {output}")
        return
    if fmt is Format.PNG:
        path = output or Path("ketapain-simulation.png")
        curves = _plot_curves(columns, population=population is not None)
        who = f"{population} virtual patients" if population else "one patient"
        plot_concentrations(
            time_h=profile.time_h,
            curves=curves,
            schedule=schedule,
            path=path,
            title=f"{model.name}: {who}, {weight_kg:g} kg",
        )
        err_console.print(f"wrote plot to {path}")
        return
    if fmt is Format.TABLE:
        _print_table(model, columns)
        return
    text = to_json(columns) if fmt is Format.JSON else to_csv(columns)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + ("\n" if fmt is Format.JSON else ""), encoding="utf-8")
        err_console.print(f"wrote {fmt.value} to {output}")


def _plot_curves(columns: dict[str, np.ndarray], *, population: bool) -> list[Curve]:
    names = [
        "ketamine_plasma_ng_per_ml",
        "ketamine_effect_site_ng_per_ml",
        "norketamine_plasma_ng_per_ml",
    ]
    if not population:
        return [Curve(name=n, values=columns[n]) for n in names if n in columns]
    return [
        Curve(name=n, values=columns[f"{n}_p50"], low=columns[f"{n}_p05"], high=columns[f"{n}_p95"])
        for n in names
        if f"{n}_p50" in columns
    ]


def _print_table(model: PKModel, columns: dict[str, np.ndarray]) -> None:
    cited = model.source.short() if model.source.year is not None else "user-defined"
    table = Table(title=f"{model.name} ({cited}): concentrations, ng/mL")
    for name in columns:
        label = name.removesuffix("_ng_per_ml").replace("_", " ")
        table.add_column(label, justify="right")
    for row in zip(*columns.values(), strict=True):
        table.add_row(*(f"{float(x):.4g}" for x in row))
    console.print(table)


from ketapain.cli import admin as _admin  # noqa: E402
from ketapain.cli import clinic as _clinic  # noqa: E402
from ketapain.cli import demo as _demo  # noqa: E402  (registers the demo command)
from ketapain.cli import fhir as _fhir  # noqa: E402
from ketapain.cli import plan as _plan  # noqa: E402
from ketapain.cli import predict as _predict  # noqa: E402
from ketapain.cli import report as _report  # noqa: E402
from ketapain.cli import trial as _trial  # noqa: E402

app.command("demo")(_demo.demo_command)
app.command("protocols")(_predict.protocols_command)
app.command("predict")(_predict.predict_command)
app.command("compare")(_predict.compare_command)
app.command("trial")(_trial.trial_command)
app.command("screen")(_plan.screen_command)
app.command("plan")(_plan.plan_command)
app.command("check-rate")(_plan.check_rate_command)
app.command("serve")(_clinic.serve_command)
app.command("report")(_report.report_command)
app.add_typer(_clinic.db_app, name="db")
app.add_typer(_clinic.users_app, name="users")
app.add_typer(_fhir.fhir_app, name="fhir")
app.command("backup")(_admin.backup_command)
app.command("restore")(_admin.restore_command)
app.add_typer(_admin.audit_app, name="audit")
