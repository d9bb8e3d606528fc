"""Course plans for the synthetic registry: one real plan per protocol and weekday, copied.

:func:`ketapain.protocols.planning.build_plan` takes milliseconds, too long for 100,000
courses. A :class:`PlanTemplate` builds the real plan once per protocol and start weekday
(the weekday decides which days the weekends push a session to) and then writes each
patient's plan as the planner would: the same dates moved to the patient's start, the
rates of the patient's weight rounded to the pump's resolution as the planner rounds
them, the findings of the patient's chart (screened once per diagnosis and medication
list), the dosing weight, the oral follow-on, and the pain forecast scaled to the
patient's baseline (the predicted NRS is proportional to the baseline,
:mod:`ketapain.pharmacology.pd.pain`). The test suite compares these plans with
``build_plan``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any, Final

from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose
from ketapain.protocols import patient as pp
from ketapain.protocols.dosing_weight import WeightPolicy, dosing_weight
from ketapain.protocols.findings import Finding, Severity, blocking
from ketapain.protocols.guardrails import load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.protocols.planning import Bag, build_plan
from ketapain.protocols.schema import Protocol, Slot
from ketapain.protocols.screening import screen

__all__ = [
    "BAG",
    "REFERENCE_BASELINE_NRS",
    "PlanTemplate",
    "reference_chart",
    "screening",
    "template",
]

# The bag every synthetic session hangs: 250 mg in 250 mL (1 mg/mL, the demo's bag).
BAG: Final = Bag(drug_mg=250.0, volume_ml=250.0)
# The reference patient's pain: the forecast of a patient is scaled from it.
REFERENCE_BASELINE_NRS: Final = 7.0
# A Monday: reference plans start on it plus 0 to 6 days.
_REFERENCE_MONDAY: Final = date(2024, 1, 1)
# Normal liver tests and vital signs, as every synthetic chart has them at intake.
_LABS: Final = {"alt_u_per_l": 22, "ast_u_per_l": 20, "alt_uln_u_per_l": 40, "ast_uln_u_per_l": 40}
_VITALS: Final = {
    "sbp_mmhg": 122,
    "dbp_mmhg": 76,
    "hr_per_min": 72,
    "spo2_pct": 98,
    "rr_per_min": 14,
}
_RANK: Final = {s.value: s.rank for s in Severity}
_FORECAST_POINTS: Final = ("sessions", "follow_up")
_FORECAST_ANCHORS: Final = ("end_of_series", "week_4", "week_12")

Meds = tuple[tuple[str, float], ...]


def reference_chart(*, diagnosis: str = "crps_1", meds: Meds = ()) -> pp.Patient:
    """The reference patient (a woman of 45, 70 kg, pain NRS 7) with a diagnosis,
    medications, and the normal intake labs and vitals every synthetic patient has."""
    return pp.Patient.from_dict(
        {
            "patient_id": "ref",
            "age_y": 45,
            "sex": "female",
            "weight_kg": 70.0,
            "pain_nrs": REFERENCE_BASELINE_NRS,
            "diagnoses": [diagnosis],
            "medications": [{"name": n, "dose_mg_per_day": mg} for n, mg in meds],
            "labs": _LABS,
            "vitals": _VITALS,
        }
    )


@dataclass(frozen=True, slots=True)
class _Session:
    number: int
    phase: str
    day: int
    infusions: tuple[Infusion, ...]
    boluses: tuple[Bolus, ...]
    pending: int | None


@dataclass(slots=True)
class PlanTemplate:
    """The real plan of a protocol for courses starting on one weekday, ready to copy."""

    protocol: Protocol
    weekday: int
    reference: dict[str, Any] = field(init=False)
    sessions: tuple[_Session, ...] = field(init=False)
    _oral: tuple[Slot, ...] = field(init=False)
    _oral_doses: tuple[OralDose, ...] = field(init=False)
    premedication: list[str] = field(init=False)  # the planned (not as-needed) drugs

    def __post_init__(self) -> None:
        start = _REFERENCE_MONDAY + timedelta(days=self.weekday)
        plan = build_plan(
            reference_chart(), self.protocol, start_date=start, bag=BAG, predict_outcome=False
        )
        self.reference = plan.as_dict()
        slots = [s for s in self.protocol.slots(start_weekday=self.weekday) if not s.phase.oral]
        self.sessions = tuple(
            _Session(
                number=n,
                phase=slot.phase.name,
                day=slot.day,
                infusions=tuple(d for d in slot.schedule.doses if isinstance(d, Infusion)),
                boluses=tuple(d for d in slot.schedule.doses if isinstance(d, Bolus)),
                pending=ref["pending_decision_after_session"],
            )
            for n, (slot, ref) in enumerate(zip(slots, self.reference["sessions"], strict=True), 1)
        )
        self._oral = tuple(
            s for s in self.protocol.slots(start_weekday=self.weekday) if s.phase.oral
        )
        self._oral_doses = tuple(d for s in self._oral for d in s.schedule.oral_doses)
        self.premedication = [p["drug"] for p in self.reference["premedication"] if not p["prn"]]

    def plan(
        self,
        *,
        start: date,
        mrn: str,
        weight_kg: float,
        height_cm: float,
        sex: str,
        baseline_nrs: float,
        diagnosis: str,
        meds: Meds,
    ) -> dict[str, Any]:
        """The plan JSON ``build_plan`` writes for this patient (forecast scaled)."""
        if start.weekday() != self.weekday:
            raise ValueError(f"{start} is not weekday {self.weekday}")
        sessions, capped = self._sessions(start, weight_kg)
        screened, eligible = screening(self.protocol.name, diagnosis, meds)
        findings = list(screened)
        if capped:
            findings.append(self._rate_cap())
        first = self.sessions[0].day if self.sessions else 0
        if first > 0:
            findings.append(_start_moved(start + timedelta(days=first)))
        findings.sort(key=lambda f: _RANK[f["severity"]])
        ref = self.reference
        plan = dict(ref)
        plan.update(
            patient_id=mrn,
            start_date=start.isoformat(),
            dosing_weight=_weight(weight_kg, height_cm, sex),
            eligible=eligible,
            blocked=False,
            findings=findings,
            sessions=sessions,
            course_dose_mg=sessions[-1]["cumulative_dose_mg"] if sessions else 0.0,
            decision_points=[
                {**dp, "date": sessions[dp["after_session"] - 1]["date"]}
                for dp in ref["decision_points"]
            ],
            oral_follow_on=self._oral_plan(start, weight_kg),
            baseline_nrs=baseline_nrs,
            pain_forecast=_scaled_forecast(ref["pain_forecast"], baseline_nrs),
        )
        return plan

    def _sessions(self, start: date, weight_kg: float) -> tuple[list[dict[str, Any]], bool]:
        """Sessions as ``build_plan`` computes them (``planning._Context.session``)."""
        midnight = datetime.combine(start, time())
        cap = self.protocol.max_rate_mg_per_h
        conc = BAG.conc_mg_per_ml
        capped = False
        cumulative = 0.0
        out: list[dict[str, Any]] = []
        for s in self.sessions:
            steps: list[dict[str, Any]] = []
            for d in s.infusions:
                rate = d.rate_for(weight_kg)
                if cap is not None and rate > cap:
                    rate, capped = cap, True
                ml_per_h = BAG.pump_ml_per_h(rate)
                mg_per_h = ml_per_h * conc
                step_start = midnight + timedelta(hours=d.start_h)
                steps.append(
                    {
                        "start": step_start.isoformat(timespec="minutes"),
                        "duration_min": round(d.duration_h * 60.0, 6),
                        "rate_mg_per_kg_h": mg_per_h / weight_kg,
                        "rate_mg_per_h": mg_per_h,
                        "rate_ml_per_h": ml_per_h,
                        "dose_mg": mg_per_h * d.duration_h,
                        "at_max_rate": False,
                        "_t": step_start,
                    }
                )
            boluses = [b.amount_mg(weight_kg) for b in s.boluses]
            dose = sum(st["dose_mg"] for st in steps) + sum(boluses)
            cumulative += dose
            volume = sum(st["dose_mg"] for st in steps) / conc
            begin, last = steps[0]["_t"], steps[-1]
            end = last["_t"] + timedelta(minutes=last["duration_min"])
            for st in steps:
                del st["_t"]
            out.append(
                {
                    "number": s.number,
                    "phase": s.phase,
                    "date": (start + timedelta(days=s.day)).isoformat(),
                    "start": begin.isoformat(timespec="minutes"),
                    "end": end.isoformat(timespec="minutes"),
                    "duration_h": (end - begin).total_seconds() / 3600.0,
                    "dose_mg": dose,
                    "cumulative_dose_mg": cumulative,
                    "volume_ml": volume,
                    "bags": max(1, math.ceil(volume / BAG.volume_ml - 1e-9)) if volume > 0 else 0,
                    "boluses_mg": boluses,
                    "pending_decision_after_session": s.pending,
                    "steps": steps,
                }
            )
        return out, capped

    def _oral_plan(self, start: date, weight_kg: float) -> dict[str, Any] | None:
        ref = self.reference["oral_follow_on"]
        if not self._oral or ref is None:
            return None
        first = self._oral[0].phase.session.oral_doses
        daily = sum(d.amount_mg(weight_kg) for d in first)
        total = sum(d.amount_mg(weight_kg) for d in self._oral_doses)
        return {
            **ref,
            "start_date": (start + timedelta(days=self._oral[0].day)).isoformat(),
            "end_date": (start + timedelta(days=self._oral[-1].day)).isoformat(),
            "dose_mg": first[0].amount_mg(weight_kg),
            "daily_dose_mg": daily,
            "total_dose_mg": total,
        }

    def _rate_cap(self) -> dict[str, Any]:
        p = self.protocol
        return Finding(
            severity=Severity.INFO,
            code="protocol_rate_cap",
            reason=f"Rates limited to {p.max_rate_mg_per_h:g} mg/h by the protocol's dosing rule.",
            source=p.sources[0] if p.sources else None,
        ).as_dict()


@cache
def template(name: str, weekday: int) -> PlanTemplate:
    """The template of the protocol called ``name`` for starts on ``weekday`` (0 = Monday)."""
    return PlanTemplate(get_protocol(name), weekday)


@cache
def screening(name: str, diagnosis: str, meds: Meds) -> tuple[tuple[dict[str, Any], ...], bool]:
    """The findings (JSON) and eligibility of a synthetic chart for a protocol.

    A synthetic chart differs from the reference only by its diagnosis and medications
    as far as screening reads it (normal labs and vitals, no history, weight 45-150 kg).
    """
    protocol = get_protocol(name)
    result = screen(
        reference_chart(diagnosis=diagnosis, meds=meds),
        protocol=protocol,
        limits=load_drug_library().limits_for(protocol.setting.value) + protocol.limits,
        overrides=(),
    )
    if blocking(result.findings):
        raise ValueError(f"a synthetic chart {(diagnosis, meds)} has a hard stop for {name}")
    return tuple(f.as_dict() for f in result.findings), result.eligible


def _start_moved(first_day: date) -> dict[str, Any]:
    return Finding(
        severity=Severity.INFO,
        code="start_moved",
        reason=f"The protocol skips weekends: the course starts on {first_day:%A %d %B %Y}.",
        source=None,
    ).as_dict()


def _weight(weight_kg: float, height_cm: float, sex: str) -> dict[str, Any]:
    w = dosing_weight(
        weight_kg=weight_kg, height_cm=height_cm, sex=sex, policy=WeightPolicy.ACTUAL, cap_kg=None
    )
    return {
        "policy": w.policy.value,
        "actual_kg": w.actual_kg,
        "ideal_kg": w.ideal_kg,
        "adjusted_kg": w.adjusted_kg,
        "cap_kg": w.cap_kg,
        "dosing_kg": w.dosing_kg,
        "explanation": w.explain(),
        "source": None if w.source is None else w.source.cite(),
    }


def _scaled_forecast(ref: dict[str, Any] | None, baseline_nrs: float) -> dict[str, Any] | None:
    """The reference forecast with every predicted NRS scaled to ``baseline_nrs``."""
    if ref is None:
        return None
    k = baseline_nrs / REFERENCE_BASELINE_NRS

    def point(p: dict[str, Any]) -> dict[str, Any]:
        return {
            **p,
            "nrs_expected": round(p["nrs_expected"] * k, 3),
            "nrs_responder": round(p["nrs_responder"] * k, 3),
        }

    out = dict(ref, baseline_nrs=baseline_nrs)
    for key in _FORECAST_ANCHORS:
        out[key] = point(ref[key])
    for key in _FORECAST_POINTS:
        out[key] = [point(p) for p in ref[key]]
    return out
