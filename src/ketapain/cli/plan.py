"""``ketapain screen``, ``ketapain plan`` and ``ketapain check-rate``: before the first
infusion, decide whether the patient may be treated, plan the course, check a rate.

Exit codes: 0 done (eligible, not blocked); 2 bad input; 3 a hard stop stands (not
eligible, or the plan or rate is blocked until a clinician overrides it).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ketapain.cli.predict import FormatOption, ReportFormat, fail
from ketapain.errors import InvalidValueError, KetapainError
from ketapain.pharmacology.targeting import TargetSite
from ketapain.protocols import get_protocol
from ketapain.protocols.dosing_weight import WeightPolicy, dosing_weight
from ketapain.protocols.findings import (
    Finding,
    Override,
    Severity,
    apply_overrides,
    blocking,
    parse_override,
    unused_overrides,
)
from ketapain.protocols.guardrails import check_rate, load_drug_library
from ketapain.protocols.patient import Patient
from ketapain.protocols.planning import (
    Bag,
    CoursePlan,
    TargetRequest,
    build_plan,
)
from ketapain.protocols.screening import screen
from ketapain.reports.plan_document import render_handout_html, render_plan_html
from ketapain.reports.plan_plots import plot_plan

console = Console()
BLOCKED_EXIT = 3
_STYLE = {Severity.HARD_STOP: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}

PatientArg = Annotated[Path, typer.Argument(help="patient JSON file (see the README)")]
PatientOption = Annotated[Path, typer.Option("--patient", help="patient JSON file")]
ProtocolOption = Annotated[str, typer.Option("--protocol", help="protocol name or TOML file")]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("--override", help="CODE:REASON to override a hard stop (repeat)"),
]
ClinicianOption = Annotated[
    str | None, typer.Option("--clinician", help="name of the clinician overriding")
]
LibraryOption = Annotated[
    Path | None, typer.Option("--drug-library", help="clinic drug library TOML")
]
AuditOption = Annotated[
    Path, typer.Option("--audit-log", help="JSON-lines file the overrides are appended to")
]
PolicyOption = Annotated[WeightPolicy, typer.Option("--weight-policy")]
CapOption = Annotated[
    float | None, typer.Option("--weight-cap-kg", help="dosing weight cap (clinic policy)")
]
BagMgOption = Annotated[float, typer.Option("--bag-mg", help="ketamine in the bag, mg")]
BagMlOption = Annotated[float, typer.Option("--bag-ml", help="bag volume, mL")]
DEFAULT_AUDIT = Path("ketapain-audit.jsonl")


def _overrides(items: list[str] | None, clinician: str | None) -> list[Override]:
    return [parse_override(text, clinician=clinician) for text in items or []]


def _check_codes(findings: list[Finding] | tuple[Finding, ...], ov: list[Override]) -> None:
    unused = unused_overrides(list(findings), ov)
    if unused:
        hard = sorted({f.code for f in findings if f.severity is Severity.HARD_STOP}) or ["none"]
        raise InvalidValueError("--override", f"a hard-stop code ({', '.join(hard)})", unused[0])


def audit(path: Path, overrides: list[Override], *, command: str, context: dict[str, Any]) -> None:
    """Append each override to the audit log (one JSON object per line, synced to disk)."""
    if not overrides:
        return
    with path.open("a", encoding="utf-8") as fh:
        for o in overrides:
            fh.write(json.dumps({"command": command, **context, **o.as_dict()}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def print_findings(findings: list[Finding] | tuple[Finding, ...], *, title: str) -> None:
    """The findings as a rich table, most serious first."""
    table = Table(title=title, show_lines=True)
    for col in ("severity", "code", "reason", "source"):
        table.add_column(col, overflow="fold")
    for f in findings:
        sev = f.severity.value + (" (overridden)" if f.override else "")
        reason = f.reason + (
            f"\nOverridden by {f.override.clinician}: {f.override.reason}" if f.override else ""
        )
        table.add_row(
            f"[{_STYLE[f.severity]}]{sev}[/]", f.code, reason, f.source.short() if f.source else ""
        )
    console.print(table)


def screen_command(
    patient_file: PatientArg,
    protocol: Annotated[
        str | None, typer.Option("--protocol", help="screen for this protocol")
    ] = None,
    overrides: OverrideOption = None,
    clinician: ClinicianOption = None,
    drug_library: LibraryOption = None,
    audit_log: AuditOption = DEFAULT_AUDIT,
    fmt: FormatOption = ReportFormat.TABLE,
) -> None:
    """Screen a patient for ketamine infusion: contraindications, work-up, interactions."""
    try:
        patient = Patient.from_json_file(patient_file)
        proto = get_protocol(protocol) if protocol else None
        library = load_drug_library(drug_library)
        setting = proto.setting.value if proto else "outpatient"
        limits = library.limits_for(setting)
        if proto is not None:
            limits = limits + proto.limits
        ov = _overrides(overrides, clinician)
        result = screen(patient, protocol=proto, limits=limits, overrides=ov)
        _check_codes(result.findings, ov)
        audit(audit_log, ov, command="screen", context={"patient_id": patient.patient_id})
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        print_findings(result.findings, title=f"Screening of {patient_file.name}")
        verdict = "[bold green]eligible[/]" if result.eligible else "[bold red]not eligible[/]"
        console.print(f"Result: {verdict} (a clinician decides; hard stops need an override).")
    if not result.eligible:
        raise typer.Exit(code=BLOCKED_EXIT)


def plan_command(
    patient_file: PatientOption,
    protocol: ProtocolOption,
    start_date: Annotated[str, typer.Option("--start-date", help="first day, YYYY-MM-DD")],
    bag_mg: BagMgOption = 250.0,
    bag_ml: BagMlOption = 250.0,
    policy: PolicyOption = WeightPolicy.ACTUAL,
    cap_kg: CapOption = None,
    target_ng_per_ml: Annotated[
        float | None, typer.Option("--target-ng-per-ml", help="target mode: concentration")
    ] = None,
    target_site: Annotated[TargetSite, typer.Option("--target-site")] = TargetSite.PLASMA,
    target_hours: Annotated[
        float | None,
        typer.Option("--target-hours", help="hold time per session (default: session)"),
    ] = None,
    min_step_min: Annotated[
        float, typer.Option("--min-step-min", help="shortest pump step, min")
    ] = 10.0,
    overrides: OverrideOption = None,
    clinician: ClinicianOption = None,
    drug_library: LibraryOption = None,
    audit_log: AuditOption = DEFAULT_AUDIT,
    follow_up_days: Annotated[float, typer.Option("--follow-up-days")] = 84.0,
    fmt: FormatOption = ReportFormat.TABLE,
    plot: Annotated[Path, typer.Option("--plot", help="PNG figure")] = Path("ketapain-plan.png"),
    html: Annotated[Path | None, typer.Option("--html", help="printable plan (HTML)")] = None,
    handout: Annotated[
        Path | None, typer.Option("--handout", help="patient handout (HTML)")
    ] = None,
) -> None:
    """Plan a course: dates, pump steps, doses, premedication, decisions, oral follow-on."""
    try:
        patient = Patient.from_json_file(patient_file)
        try:
            start = date.fromisoformat(start_date)
        except ValueError:
            raise InvalidValueError("--start-date", "a date YYYY-MM-DD", start_date) from None
        target = None
        if target_ng_per_ml is not None:
            target = TargetRequest(
                conc_ng_per_ml=target_ng_per_ml,
                site=target_site,
                duration_h=target_hours,
                min_step_min=min_step_min,
            )
        ov = _overrides(overrides, clinician)
        plan = build_plan(
            patient,
            get_protocol(protocol),
            start_date=start,
            bag=Bag(drug_mg=bag_mg, volume_ml=bag_ml),
            policy=policy,
            weight_cap_kg=cap_kg,
            library=load_drug_library(drug_library),
            overrides=ov,
            target=target,
            follow_up_days=follow_up_days,
        )
        _check_codes(plan.findings, ov)
        audit(
            audit_log,
            ov,
            command="plan",
            context={"patient_id": patient.patient_id, "protocol": plan.protocol.name},
        )
        plot_plan(plan, path=plot)
        if html is not None:
            html.write_text(render_plan_html(plan, figure=plot), encoding="utf-8")
        if handout is not None:
            handout.write_text(render_handout_html(plan), encoding="utf-8")
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps(plan.as_dict() | {"plot": str(plot)}, indent=2))
    else:
        _print_plan(plan)
        for label, path in (("Figure", plot), ("Plan", html), ("Handout", handout)):
            if path is not None:
                console.print(f"{label} written to [bold]{path}[/]")
    if plan.blocked:
        raise typer.Exit(code=BLOCKED_EXIT)


def _print_plan(plan: CoursePlan) -> None:
    p = plan.protocol
    console.print(
        f"[bold]{p.title}[/] ({p.name}, {p.setting.value}); {plan.weight.explain()}; "
        f"bag {plan.bag.drug_mg:g} mg / {plan.bag.volume_ml:g} mL "
        f"({plan.bag.conc_mg_per_ml:.3g} mg/mL)"
    )
    table = Table(title="Sessions (pump rates rounded down to 0.1 mL/h)")
    for col in (
        "#",
        "date",
        "phase",
        "start",
        "min",
        "mg/kg/h",
        "mg/h",
        "mL/h",
        "session mg",
        "cumulative mg",
    ):
        table.add_column(col, justify="right" if col not in ("date", "phase") else "left")
    for s in plan.sessions:
        for k, st in enumerate(s.steps):
            first = k == 0
            note = f" (if continued after {s.pending_decision})" if s.pending_decision else ""
            table.add_row(
                str(s.number) if first else "",
                f"{s.date:%a %d %b}{note}" if first else "",
                s.phase.name if first else "",
                f"{st.start:%H:%M}",
                f"{st.duration_min:.0f}",
                f"{st.rate_mg_per_kg_h:.3f}",
                f"{st.rate_mg_per_h:.1f}",
                f"[bold]{st.rate_ml_per_h:.1f}[/]",
                f"{s.dose_mg:.1f}" if first else "",
                f"{s.cumulative_mg:.0f}" if first else "",
            )
    console.print(table)
    for pm in p.premedication:
        console.print(f"Premedication: {pm.text()}")
    if p.discharge:
        escort = "; escort home" if p.discharge.escort_home else ""
        console.print(
            f"Observe {p.discharge.observation_min:.0f} min after each session"
            f"{escort}; no driving {p.discharge.no_driving}."
        )
    for dp, day in plan.decisions:
        console.print(
            f"Decision on {day:%a %d %b} after session {dp.after_session}: "
            f"{dp.decision} {dp.criterion}"
        )
    if plan.oral:
        o = plan.oral
        console.print(
            f"Oral follow-on: {o.dose_mg:.0f} mg at {', '.join(o.clock_times)} from "
            f"{o.start_date:%a %d %b} to {o.end_date:%a %d %b} ({o.total_mg:.0f} mg)."
        )
    for b in p.boosters():
        console.print(f"Booster on relapse: {b.title}. {b.note}")
    if plan.prediction is not None:
        ps = plan.prediction.summary
        console.print(
            f"Predicted: peak plasma {ps.peak_plasma_ng_per_ml:.0f} ng/mL, lowest NRS "
            f"{ps.lowest_nrs:.1f} (responder), relief {ps.relief_duration_days:.1f} d "
            f"after the course, chance of response {ps.response_probability:.0%}."
        )
    print_findings(plan.findings, title="Findings")
    verdict = "[bold red]BLOCKED[/]" if plan.blocked else "[bold green]not blocked[/]"
    console.print(f"Plan: {verdict}. Clinical decision support: the prescriber decides.")


def check_rate_command(
    patient_file: PatientOption,
    protocol: ProtocolOption,
    rate_mg_per_kg_h: Annotated[
        float | None, typer.Option("--rate-mg-per-kg-h", help="new rate per kg")
    ] = None,
    rate_mg_per_h: Annotated[float | None, typer.Option("--rate-mg-per-h", help="new rate")] = None,
    bag_mg: BagMgOption = 250.0,
    bag_ml: BagMlOption = 250.0,
    policy: PolicyOption = WeightPolicy.ACTUAL,
    cap_kg: CapOption = None,
    overrides: OverrideOption = None,
    clinician: ClinicianOption = None,
    drug_library: LibraryOption = None,
    audit_log: AuditOption = DEFAULT_AUDIT,
    fmt: FormatOption = ReportFormat.TABLE,
) -> None:
    """Check a rate change against the guardrails and give the pump mL/h."""
    try:
        if (rate_mg_per_kg_h is None) == (rate_mg_per_h is None):
            raise InvalidValueError("--rate-mg-per-kg-h/--rate-mg-per-h", "exactly one", None)
        patient = Patient.from_json_file(patient_file)
        proto = get_protocol(protocol)
        weight = dosing_weight(
            weight_kg=patient.weight_kg,
            height_cm=patient.height_cm,
            sex=patient.sex,
            policy=policy,
            cap_kg=cap_kg,
        )
        bag = Bag(drug_mg=bag_mg, volume_ml=bag_ml)
        limits = load_drug_library(drug_library).limits_for(proto.setting.value) + proto.limits
        mg_per_h = (
            rate_mg_per_h
            if rate_mg_per_h is not None
            else (rate_mg_per_kg_h or 0.0) * weight.dosing_kg
        )
        if not (math.isfinite(mg_per_h) and mg_per_h >= 0):
            raise InvalidValueError("rate", "0 or more", mg_per_h)
        ml_per_h = bag.pump_ml_per_h(mg_per_h)
        ov = _overrides(overrides, clinician)
        findings = apply_overrides(
            check_rate(
                limits,
                rate_mg_per_h=mg_per_h,
                dosing_weight_kg=weight.dosing_kg,
                what="Rate change",
            ),
            ov,
        )
        _check_codes(findings, ov)
        audit(
            audit_log,
            ov,
            command="check-rate",
            context={
                "patient_id": patient.patient_id,
                "protocol": proto.name,
                "rate_mg_per_h": mg_per_h,
            },
        )
    except (KetapainError, OSError) as err:
        raise fail(str(err)) from None
    blocked = bool(blocking(findings))
    result = {
        "rate_mg_per_h": mg_per_h,
        "rate_mg_per_kg_h": mg_per_h / weight.dosing_kg,
        "rate_ml_per_h": ml_per_h,
        "dosing_weight_kg": weight.dosing_kg,
        "blocked": blocked,
        "findings": [f.as_dict() for f in findings],
        "overrides": [o.as_dict() for o in ov],
        "checked_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(
            f"{mg_per_h:.1f} mg/h = {mg_per_h / weight.dosing_kg:.3f} mg/kg/h "
            f"({weight.explain()}) = [bold]{ml_per_h:.1f} mL/h[/] at "
            f"{bag.conc_mg_per_ml:.3g} mg/mL"
        )
        if findings:
            print_findings(findings, title="Guardrails")
        console.print("[bold red]BLOCKED[/]" if blocked else "[bold green]within hard limits[/]")
    if blocked:
        raise typer.Exit(code=BLOCKED_EXIT)
