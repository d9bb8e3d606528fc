"""``ketapain demo``: simulate a seed protocol for a demo patient and show the result.

The protocol is the 10-weekday outpatient series (Schwartzman 2009: 4 h a day, weekends
off, 0.35 mg/kg/h and not above 25 mg/h) followed by two weeks of low-dose oral ketamine
(seed page 003; Blonk 2010 starting dose 0.5 mg/kg three times daily).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ketapain.pharmacology import (
    DEFAULT_MODEL,
    Covariates,
    Infusion,
    OralDose,
    Schedule,
    Sex,
    get_model,
    simulate,
    weekdays,
)
from ketapain.pharmacology.population import virtual_population
from ketapain.reports.plots import Curve, plot_concentrations
from ketapain.sources import BLONK_2010, SCHWARTZMAN_2009

RATE_MG_PER_KG_H: Final = 0.35  # Schwartzman 2009
MAX_RATE_MG_PER_H: Final = 25.0  # Schwartzman 2009
SESSION_H: Final = 4.0  # Schwartzman 2009
SESSIONS: Final = 10  # Schwartzman 2009
ORAL_MG_PER_KG: Final = 0.5  # Blonk 2010 starting dose
ORAL_TIMES_PER_DAY: Final = 3  # Blonk 2010: 3-4 times daily
ORAL_DAYS: Final = 14  # seed page 003: "very low dose oral ketamine for two weeks"
START_HOUR: Final = 9.0
_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

console = Console()


def demo_schedule(weight_kg: float) -> Schedule:
    """Return the demo course for a patient of ``weight_kg``, starting on a Monday."""
    rate = min(RATE_MG_PER_KG_H * weight_kg, MAX_RATE_MG_PER_H)
    day = Schedule.of(Infusion(start_h=START_HOUR, duration_h=SESSION_H, rate_mg_per_h=rate))
    series = day.repeat_on_days(weekdays(SESSIONS))
    first_oral_day = weekdays(SESSIONS)[-1] + 1
    dose_mg = ORAL_MG_PER_KG * weight_kg
    oral_day = Schedule.of(
        *(OralDose(time_h=8.0 + 6.0 * k, dose_mg=dose_mg) for k in range(ORAL_TIMES_PER_DAY))
    )
    oral = oral_day.repeat_on_days(range(first_oral_day, first_oral_day + ORAL_DAYS))
    return series + oral


def demo_command(
    weight_kg: Annotated[float, typer.Option("--weight-kg", help="demo patient's weight")] = 70.0,
    population: Annotated[int, typer.Option("--population", min=1)] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    output: Annotated[Path, typer.Option("--output", help="plot file")] = Path("ketapain-demo.png"),
) -> None:
    """Simulate a 10-weekday series plus oral follow-on and plot it."""
    model = get_model(DEFAULT_MODEL)
    schedule = demo_schedule(weight_kg)
    covariates = Covariates.single(weight_kg=weight_kg, sex=Sex.FEMALE, age_y=45)
    end_h = schedule.end_h() + 24.0
    time_h = np.arange(0.0, end_h + 1e-9, 5.0 / 60.0)
    console.print(
        Panel.fit(
            f"[bold]Demo patient[/]: female, 45 y, {weight_kg:g} kg\n"
            f"[bold]Protocol[/]: {SESSIONS} weekday infusions of {SESSION_H:g} h at "
            f"{RATE_MG_PER_KG_H} mg/kg/h (max {MAX_RATE_MG_PER_H:g} mg/h), "
            f"{SCHWARTZMAN_2009.short()}; then {ORAL_DAYS} days oral "
            f"{ORAL_MG_PER_KG} mg/kg x{ORAL_TIMES_PER_DAY}/day ({BLONK_2010.short()})\n"
            f"[bold]Model[/]: {model.name} - {model.source.cite()}",
            title="ketapain demo",
        )
    )
    with console.status(f"simulating {population} virtual patients over {end_h / 24:.0f} days"):
        pop = virtual_population(model, n=population, seed=seed, covariates=covariates)
        profile = simulate(pop.parameters, schedule, times_h=time_h)
    bands = profile.percentiles((5.0, 50.0, 95.0))
    _session_table(schedule, profile.time_h, bands, weight_kg)
    curves = [
        Curve(name=n, values=bands[f"{n}_p50"], low=bands[f"{n}_p05"], high=bands[f"{n}_p95"])
        for n in ("ketamine_plasma_ng_per_ml", "norketamine_plasma_ng_per_ml")
    ]
    plot_concentrations(
        time_h=time_h,
        curves=curves,
        schedule=schedule,
        path=output,
        title=f"10-weekday series + oral follow-on, {weight_kg:g} kg ({model.name}, "
        f"{population} virtual patients)",
    )
    console.print(f"Plot written to [bold]{output}[/]")


def _session_table(
    schedule: Schedule, time_h: np.ndarray, bands: dict[str, np.ndarray], weight_kg: float
) -> None:
    table = Table(title="Predicted concentrations per session (median [5th-95th percentile])")
    for col in (
        "session",
        "day",
        "rate mg/h",
        "dose mg",
        "peak ketamine ng/mL",
        "peak effect site ng/mL",
        "norketamine at end ng/mL",
    ):
        table.add_column(col, justify="right")
    for i, inf in enumerate(schedule.infusions, start=1):
        window = (time_h >= inf.start_h) & (time_h <= inf.end_h)
        end = int(np.flatnonzero(window)[-1])
        day = int(inf.start_h // 24)
        table.add_row(
            str(i),
            f"{day} ({_DAY_NAMES[day % 7]})",
            f"{inf.rate_for(weight_kg):.1f}",
            f"{inf.amount_mg(weight_kg):.0f}",
            _band(bands, "ketamine_plasma_ng_per_ml", window),
            _band(bands, "ketamine_effect_site_ng_per_ml", window),
            _band(bands, "norketamine_plasma_ng_per_ml", slice(end, end + 1)),
        )
    oral = schedule.oral_doses
    if oral:
        window = time_h >= oral[0].time_h
        table.add_row(
            "oral",
            f"{int(oral[0].time_h // 24)}-{int(oral[-1].time_h // 24)}",
            "-",
            f"{len(oral)} x {oral[0].amount_mg(weight_kg):.0f}",
            _band(bands, "ketamine_plasma_ng_per_ml", window),
            _band(bands, "ketamine_effect_site_ng_per_ml", window),
            _band(bands, "norketamine_plasma_ng_per_ml", window),
        )
    console.print(table)


def _band(bands: dict[str, np.ndarray], name: str, window: np.ndarray | slice) -> str:
    p50, p05, p95 = (float(np.max(bands[f"{name}_p{q}"][window])) for q in ("50", "05", "95"))
    return f"{p50:.0f} [{p05:.0f}-{p95:.0f}]"
