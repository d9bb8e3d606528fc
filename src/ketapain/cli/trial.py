"""``ketapain trial``: a virtual trial of one or more protocols, on Dask.

Writes to ``--output-dir``:

* ``patients.parquet`` (or ``.csv``): one row per virtual patient: arm, patient_id,
  covariates, baseline_nrs, responder, relief_days, relief_censored, peak levels,
  side-effect flags, total_dose_mg and ``nrs_week_<k>`` for every report week;
* ``trajectories.parquet``: arm, day, mean_nrs, ci_low, ci_high, p10, p90;
* ``relief_km.parquet``: arm, day, survival, ci_low, ci_high, at_risk;
* ``summary.json``: the summary printed with ``--format json``;
* ``report.png``: NRS trajectories, responder rates, relief Kaplan-Meier, side effects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ketapain import __version__
from ketapain.analytics.trials import INLINE, ArmSummary, TrialResult, run_trial
from ketapain.cli.predict import FormatOption, ReportFormat, fail, plan_from_protocol
from ketapain.errors import InvalidValueError, KetapainError
from ketapain.pharmacology.trial import Arm, TrialDesign
from ketapain.reports.prediction_plots import plot_trial_report

console = Console()
err_console = Console(stderr=True)


def _weeks(text: str) -> tuple[int, ...]:
    try:
        weeks = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise InvalidValueError(
            "--weeks", "comma-separated whole weeks, e.g. 1,4,12", text
        ) from None
    if not weeks:
        raise InvalidValueError("--weeks", "at least one week", text)
    return weeks


def _write_table(columns: dict[str, Any], path: Path, table_format: str) -> Path:
    table = pa.table({k: np.asarray(v) for k, v in columns.items()})
    out = path.with_suffix(f".{table_format}")
    if table_format == "parquet":
        pq.write_table(table, out)
    else:
        pacsv.write_csv(table, out)
    return out


def summary_json(design: TrialDesign, arms: list[ArmSummary]) -> dict[str, Any]:
    """The machine-readable summary (``--format json`` and ``summary.json``)."""
    return {
        "ketapain_version": __version__,
        "design": {
            "arms": [
                {"name": a.name, "placebo": a.placebo, "model": a.model.name} for a in design.arms
            ],
            "n_per_arm": design.n_per_arm,
            "seed": design.seed,
            "follow_up_weeks": design.follow_up_weeks,
            "report_weeks": list(design.report_weeks),
            "chunk_size": design.chunk_size,
        },
        "arms": [a.as_dict() for a in arms],
    }


def _stack(
    arms: list[ArmSummary], curves: dict[str, Callable[[ArmSummary], Any]]
) -> dict[str, Any]:
    """One long table of every arm's curves: an ``arm`` column plus one column per curve."""
    lengths = [len(next(iter(curves.values()))(a)) for a in arms]
    columns: dict[str, Any] = {"arm": np.repeat([a.name for a in arms], lengths)}
    for name, curve in curves.items():
        columns[name] = np.concatenate([curve(a) for a in arms])
    return columns


def _save(
    result: TrialResult, arms: list[ArmSummary], out_dir: Path, table_format: str
) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    trajectories = _stack(
        arms,
        {
            "day": lambda a: a.day,
            "mean_nrs": lambda a: a.mean_nrs,
            "ci_low": lambda a: a.ci_low,
            "ci_high": lambda a: a.ci_high,
            "p10": lambda a: a.p10,
            "p90": lambda a: a.p90,
        },
    )
    km = _stack(
        arms,
        {
            "day": lambda a: a.relief.time,
            "survival": lambda a: a.relief.survival,
            "ci_low": lambda a: a.relief.ci_low,
            "ci_high": lambda a: a.relief.ci_high,
            "at_risk": lambda a: a.relief.at_risk,
        },
    )
    tables = {
        "patients": result.patient_columns(),
        "trajectories": trajectories,
        "relief_km": km,
    }
    return {
        name: str(_write_table(columns, out_dir / name, table_format))
        for name, columns in tables.items()
    }


def trial_command(
    protocols: Annotated[
        list[str] | None,
        typer.Option(
            "--protocol", help="protocol name or TOML file (repeat); default ten-weekdays"
        ),
    ] = None,
    placebo: Annotated[
        bool, typer.Option("--placebo/--no-placebo", help="add a placebo arm")
    ] = True,
    patients: Annotated[
        int, typer.Option("--patients", help="virtual patients per arm", min=1)
    ] = 1000,
    follow_up_weeks: Annotated[float, typer.Option("--follow-up-weeks")] = 12.0,
    weeks: Annotated[str, typer.Option("--weeks", help="report weeks, e.g. 1,4,12")] = "1,4,12",
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    workers: Annotated[
        int | None, typer.Option("--workers", help="local Dask worker processes", min=1)
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="address of a running dask.distributed scheduler, or 'inline'"
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1)] = 5000,
    output_dir: Annotated[Path, typer.Option("--output-dir")] = Path("ketapain-trial"),
    table_format: Annotated[str, typer.Option("--table-format", help="parquet or csv")] = "parquet",
    fmt: FormatOption = ReportFormat.TABLE,
) -> None:
    """Run a virtual trial: responder rates, relief duration, side effects, NRS over time."""
    if table_format not in ("parquet", "csv"):
        raise fail(f"--table-format must be parquet or csv; got {table_format!r}")
    try:
        plans = [plan_from_protocol(p) for p in protocols or ["ten-weekdays"]]
        arms = [
            Arm(
                name=p.name,
                schedule=p.schedule,
                model=p.model,
                dosing_weight_cap_kg=p.dosing_weight_cap_kg,
            )
            for p in plans
        ]
        if placebo:
            first = plans[0]
            arms.append(
                Arm(name="placebo", schedule=first.schedule, model=first.model, placebo=True)
            )
        design = TrialDesign(
            arms=tuple(arms),
            n_per_arm=patients,
            seed=seed,
            follow_up_weeks=follow_up_weeks,
            report_weeks=_weeks(weeks),
            chunk_size=chunk_size,
        )
        where = (
            "in this process"
            if scheduler == INLINE
            else (
                f"on {scheduler}"
                if scheduler
                else f"on a local Dask cluster ({workers or 'all'} workers)"
            )
        )
        with Progress(
            TextColumn("[bold]virtual trial[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks"),
            TimeElapsedColumn(),
            console=err_console,
            transient=fmt is ReportFormat.JSON,
        ) as bar:
            task = bar.add_task("trial", total=None)
            err_console.print(
                f"{len(arms)} arm(s) x {patients} patients, {follow_up_weeks:g} weeks, {where}"
            )

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = run_trial(design, scheduler=scheduler, workers=workers, progress=progress)
        arm_summaries = result.summary()
        files = _save(result, arm_summaries, output_dir, table_format)
        files["report"] = str(
            plot_trial_report(
                arm_summaries,
                title=f"Virtual trial: {patients} patients per arm, seed {seed}",
                path=output_dir / "report.png",
            )
        )
        summary = summary_json(design, arm_summaries) | {"files": files}
        (output_dir / "summary.json").write_text(
            json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print(arm_summaries)
    console.print(
        f"Results in [bold]{output_dir}[/]: " + ", ".join(Path(f).name for f in files.values())
    )


def _print(arms: list[ArmSummary]) -> None:
    table = Table(title="Virtual trial: NRS and responders (>= 30% / >= 50% below baseline)")
    table.add_column("arm")
    table.add_column("week", justify="right")
    table.add_column("mean NRS", justify="right")
    table.add_column(">= 30%", justify="right")
    table.add_column(">= 50%", justify="right")
    table.add_column("P vs placebo", justify="right")
    for a in arms:
        for w in a.weeks:
            p = "-" if w.p_value_vs_placebo is None else f"{w.p_value_vs_placebo:.3g}"
            table.add_row(
                a.name,
                str(w.week),
                f"{w.mean_nrs:.2f}",
                f"{w.responders_30.rate:.0%}",
                f"{w.responders_50.rate:.0%}",
                p,
            )
    console.print(table)
    side = Table(title="Relief duration and side effects")
    for col in (
        "arm",
        "median relief (days, 95% CI)",
        "psychotomimetic",
        "MAP rise > 20%",
        "mean dose",
    ):
        side.add_column(col, justify="left" if col == "arm" else "right")
    for a in arms:
        med = a.relief.median()
        lo, hi = a.relief.median_ci()
        text = "not reached" if med is None else f"{med:.1f} ({_d(lo)}-{_d(hi)})"
        side.add_row(
            a.name,
            text,
            f"{a.psychotomimetic.rate:.0%}",
            f"{a.bp_warning.rate:.0%}",
            f"{a.mean_total_dose_mg:.0f} mg",
        )
    console.print(side)


def _d(x: float | None) -> str:
    return "NR" if x is None else f"{x:.1f}"
