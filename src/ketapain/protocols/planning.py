"""Dose planning: a protocol, a patient, a start date and a bag -> the whole course.

The plan lays the protocol's sessions on calendar dates (weekends skipped where the
protocol says so), turns every rate into mg/kg/h, mg/h and pump mL/h for the bag, adds
session and cumulative doses, premedication, observation, decision points, the oral
follow-on prescription and boosters, checks every number against the guardrails, and
predicts concentrations and relief for the plan. In target mode the infusion of each
session is replaced by pump steps that reach and hold a target concentration.

Pump rates are rounded to the pump's resolution (0.1 mL/h); the plan checks and
predicts the rates as programmed, and shows the mg/h each programmed rate delivers.

>>> from datetime import date
>>> from ketapain.protocols.library import get_protocol
>>> from ketapain.protocols.patient import Patient
>>> patient = Patient.from_dict({"age_y": 45, "sex": "female", "weight_kg": 68,
...                              "diagnoses": ["crps_1"]})
>>> plan = build_plan(patient, get_protocol("ten-weekdays"), start_date=date(2026, 12, 7),
...                   bag=Bag(drug_mg=250, volume_ml=250), predict_outcome=False)
>>> s = plan.sessions[5]
>>> str(s.date), s.steps[0].rate_ml_per_h, round(s.dose_mg, 1)
('2026-12-14', 23.8, 95.2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.pharmacology import Covariates
from ketapain.pharmacology.prediction import DEFAULT_FOLLOW_UP_DAYS, Prediction, predict
from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose, Schedule
from ketapain.pharmacology.targeting import TargetPlan, TargetSite, target_steps
from ketapain.protocols.dosing_weight import DosingWeight, WeightPolicy, dosing_weight
from ketapain.protocols.findings import Finding, Override, Severity, apply_overrides, blocking
from ketapain.protocols.forecast import PainForecast, forecast_pain
from ketapain.protocols.guardrails import DrugLibrary, LimitSet, Quantity, load_drug_library
from ketapain.protocols.patient import Patient
from ketapain.protocols.schema import DecisionPoint, Phase, Protocol, Slot, Trigger
from ketapain.protocols.screening import Screening, screen

__all__ = [
    "PUMP_RESOLUTION_ML_PER_H",
    "Bag",
    "CoursePlan",
    "OralPlan",
    "PlannedSession",
    "PumpStep",
    "TargetRequest",
    "build_plan",
]

PUMP_RESOLUTION_ML_PER_H: Final = 0.1  # the rate increment of common infusion pumps
DEFAULT_BASELINE_NRS: Final = 7.0  # used for the prediction when the file gives none


@dataclass(frozen=True, slots=True, kw_only=True)
class Bag:
    """The infusion bag: ketamine (base) in mg and the total volume in mL."""

    drug_mg: float
    volume_ml: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.drug_mg) and 1 <= self.drug_mg <= 5000):
            raise InvalidValueError("bag drug_mg", "from 1 to 5000 mg", self.drug_mg)
        if not (math.isfinite(self.volume_ml) and 10 <= self.volume_ml <= 1000):
            raise InvalidValueError("bag volume_ml", "from 10 to 1000 mL", self.volume_ml)

    @property
    def conc_mg_per_ml(self) -> float:
        """Concentration, mg/mL."""
        return self.drug_mg / self.volume_ml

    def pump_ml_per_h(self, rate_mg_per_h: float) -> float:
        """The pump rate for ``rate_mg_per_h``, rounded down to the pump's resolution so
        the pump never runs above the prescribed rate."""
        steps = math.floor(rate_mg_per_h / self.conc_mg_per_ml / PUMP_RESOLUTION_ML_PER_H + 1e-9)
        return round(steps * PUMP_RESOLUTION_ML_PER_H, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRequest:
    """Target mode: hold ``conc_ng_per_ml`` at ``site`` for ``duration_h`` per session."""

    conc_ng_per_ml: float
    site: TargetSite = TargetSite.PLASMA
    duration_h: float | None = None
    min_step_min: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpStep:
    """One pump rate: when, how long, and the rate in each unit."""

    start: datetime
    duration_min: float
    rate_mg_per_kg_h: float
    rate_mg_per_h: float
    rate_ml_per_h: float
    dose_mg: float
    at_max_rate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedSession:
    """One infusion session on the calendar."""

    number: int
    phase: Phase
    date: date
    steps: tuple[PumpStep, ...]
    boluses_mg: tuple[float, ...]
    dose_mg: float
    cumulative_mg: float
    pending_decision: int | None
    volume_ml: float
    bags: int
    target: TargetPlan | None = None

    @property
    def start(self) -> datetime:
        """Start of the first step."""
        return self.steps[0].start

    @property
    def end(self) -> datetime:
        """End of the last step."""
        last = self.steps[-1]
        return last.start + timedelta(minutes=last.duration_min)


@dataclass(frozen=True, slots=True, kw_only=True)
class OralPlan:
    """The oral follow-on prescription."""

    phase: Phase
    start_date: date
    end_date: date
    clock_times: tuple[str, ...]
    dose_mg: float
    daily_mg: float
    total_mg: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CoursePlan:
    """Everything a physician signs and a nurse programs, with findings and prediction."""

    patient: Patient
    protocol: Protocol
    start_date: date
    bag: Bag
    weight: DosingWeight
    screening: Screening
    findings: tuple[Finding, ...]
    overrides: tuple[Override, ...]
    sessions: tuple[PlannedSession, ...]
    decisions: tuple[tuple[DecisionPoint, date], ...]
    oral: OralPlan | None
    schedule: Schedule
    prediction: Prediction | None
    baseline_nrs: float
    target: TargetRequest | None = None
    forecast: PainForecast | None = None

    @property
    def blocked(self) -> bool:
        """True while a hard stop (screening or guardrail) stands un-overridden."""
        return bool(blocking(self.findings))

    @property
    def course_dose_mg(self) -> float:
        """Total IV dose of the course (boosters excluded), mg."""
        return self.sessions[-1].cumulative_mg if self.sessions else 0.0

    def clock(self, t_h: float) -> datetime:
        """Date and time of ``t_h`` hours after midnight of the start date."""
        return datetime.combine(self.start_date, time()) + timedelta(hours=t_h)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON (keys documented in the README, "ketapain plan")."""
        from ketapain.protocols._plan_json import plan_as_dict

        return plan_as_dict(self)


def build_plan(
    patient: Patient,
    protocol: Protocol,
    *,
    start_date: date,
    bag: Bag,
    policy: WeightPolicy = WeightPolicy.ACTUAL,
    weight_cap_kg: float | None = None,
    library: DrugLibrary | None = None,
    overrides: Iterable[Override] = (),
    target: TargetRequest | None = None,
    predict_outcome: bool = True,
    follow_up_days: float = DEFAULT_FOLLOW_UP_DAYS,
) -> CoursePlan:
    """Plan ``protocol`` for ``patient`` from ``start_date`` with ``bag``."""
    library = library or load_drug_library()
    limits = library.limits_for(protocol.setting.value) + protocol.limits
    weight = dosing_weight(
        weight_kg=patient.weight_kg,
        height_cm=patient.height_cm,
        sex=patient.sex,
        policy=policy,
        cap_kg=weight_cap_kg,
    )
    ov = tuple(overrides)
    screening = screen(patient, protocol=protocol, limits=limits, overrides=ov)
    slots = protocol.slots(start_weekday=start_date.weekday())
    pk_params = None
    if target is not None:  # only target mode needs the patient's PK parameters here
        pk_params = protocol.pk_model().parameters(
            Covariates.single(weight_kg=patient.weight_kg, sex=patient.sex, age_y=patient.age_y)
        )
    ctx = _Context(protocol, start_date, bag, weight.dosing_kg, limits)
    sessions: list[PlannedSession] = []
    given = Schedule()
    for slot in (s for s in slots if not s.phase.oral):
        tplan = None
        doses = ctx.absolute(slot)
        if target is not None:
            doses, tplan = ctx.targeted(doses, target, given, pk_params)
        session = ctx.session(slot, len(sessions) + 1, doses, sessions, tplan)
        sessions.append(session)
        # Predict what the pump delivers: the programmed (rounded) rates.
        given = given + Schedule.of(
            *(
                Infusion(
                    start_h=(st.start - ctx.midnight).total_seconds() / 3600.0,
                    duration_h=st.duration_min / 60.0,
                    rate_mg_per_h=st.rate_mg_per_h,
                )
                for st in session.steps
                if st.rate_mg_per_h > 0
            ),
            *(d for d in doses if isinstance(d, Bolus)),
        )
    oral, oral_doses = ctx.oral([s for s in slots if s.phase.oral])
    schedule = given + Schedule.of(oral_doses)
    findings = list(screening.findings) + _course_checks(ctx, sessions)
    if slots and slots[0].day > 0:
        findings.append(
            Finding(
                severity=Severity.INFO,
                code="start_moved",
                reason=f"The protocol skips weekends: the course starts on "
                f"{start_date + timedelta(days=slots[0].day):%A %d %B %Y}.",
                source=None,
            )
        )
    findings = apply_overrides(sorted(findings, key=lambda f: f.severity.rank), ov)
    baseline = patient.pain_nrs if patient.pain_nrs is not None else DEFAULT_BASELINE_NRS
    prediction = None
    if predict_outcome and schedule.doses:
        prediction = predict(
            protocol.pk_model(),
            schedule,
            weight_kg=patient.weight_kg,
            baseline_nrs=baseline,
            sex=patient.sex,
            age_y=patient.age_y,
            follow_up_days=follow_up_days,
        )
    forecast = None
    if sessions and given.doses:
        midnight = datetime.combine(start_date, time())
        forecast = forecast_pain(
            protocol.pk_model(),
            schedule,
            session_ends_h=tuple((s.end - midnight).total_seconds() / 3600.0 for s in sessions),
            baseline_nrs=baseline,
            weight_kg=patient.weight_kg,
            sex=patient.sex,
            age_y=patient.age_y,
        )
    return CoursePlan(
        patient=patient,
        protocol=protocol,
        start_date=start_date,
        bag=bag,
        weight=weight,
        screening=screening,
        findings=tuple(findings),
        overrides=ov,
        sessions=tuple(sessions),
        decisions=tuple(
            (dp, sessions[dp.after_session - 1].date)
            for dp in protocol.decision_points
            if dp.after_session <= len(sessions)
        ),
        oral=oral,
        schedule=schedule,
        prediction=prediction,
        baseline_nrs=baseline,
        target=target,
        forecast=forecast,
    )


@dataclass
class _Context:
    protocol: Protocol
    start_date: date
    bag: Bag
    dosing_kg: float
    limits: LimitSet

    def __post_init__(self) -> None:
        self.midnight = datetime.combine(self.start_date, time())
        self.findings: list[Finding] = []
        self.capped = False
        self.findings += self.limits.check(
            Quantity.BAG_CONC_MG_PER_ML, self.bag.conc_mg_per_ml, what="Bag concentration"
        )
        for phase in self.protocol.phases:
            t = phase.titration
            if t is not None:
                rate = t.max_rate * (self.dosing_kg if t.per_kg else 1.0)
                if self.protocol.max_rate_mg_per_h is not None:
                    rate = min(rate, self.protocol.max_rate_mg_per_h)
                self._rate(rate, f"Titration ceiling of phase '{phase.title}'")

    def _rate(self, rate_mg_per_h: float, what: str) -> None:
        self.findings += self.limits.check(Quantity.RATE_MG_PER_H, rate_mg_per_h, what=what)
        self.findings += self.limits.check(
            Quantity.RATE_MG_PER_KG_H, rate_mg_per_h / self.dosing_kg, what=what
        )

    def absolute(self, slot: Slot) -> list[Infusion | Bolus]:
        """The session's doses in mg/h and mg, the protocol's mg/h rule applied."""
        cap = self.protocol.max_rate_mg_per_h
        out: list[Infusion | Bolus] = []
        for d in slot.schedule.doses:
            if isinstance(d, Infusion):
                rate = d.rate_for(self.dosing_kg)
                if cap is not None and rate > cap:
                    rate, self.capped = cap, True
                out.append(Infusion(start_h=d.start_h, duration_h=d.duration_h, rate_mg_per_h=rate))
            elif isinstance(d, Bolus):
                out.append(Bolus(time_h=d.time_h, dose_mg=d.amount_mg(self.dosing_kg)))
        return out

    def targeted(
        self,
        doses: list[Infusion | Bolus],
        target: TargetRequest,
        prior: Schedule,
        params: Any,
    ) -> tuple[list[Infusion | Bolus], TargetPlan]:
        infusions = [d for d in doses if isinstance(d, Infusion)]
        start = min(d.start_h for d in infusions)
        duration = (
            target.duration_h
            if target.duration_h is not None
            else max(d.end_h for d in infusions) - start
        )
        highest = [
            x
            for x in (
                self.limits.highest(Quantity.RATE_MG_PER_H),
                _times(self.limits.highest(Quantity.RATE_MG_PER_KG_H), self.dosing_kg),
            )
            if x is not None
        ]
        if not highest:
            raise InvalidValueError("drug library", "a hard maximum rate for target mode", None)
        tplan = target_steps(
            params,
            target_ng_per_ml=target.conc_ng_per_ml,
            site=target.site,
            start_h=start,
            duration_h=duration,
            max_rate_mg_per_h=min(highest),
            min_step_min=target.min_step_min,
            rate_resolution_mg_per_h=PUMP_RESOLUTION_ML_PER_H * self.bag.conc_mg_per_ml,
            prior=prior,
        )
        return [*tplan.steps, *(d for d in doses if isinstance(d, Bolus))], tplan

    def session(
        self,
        slot: Slot,
        number: int,
        doses: list[Infusion | Bolus],
        earlier: list[PlannedSession],
        tplan: TargetPlan | None,
    ) -> PlannedSession:
        conc = self.bag.conc_mg_per_ml
        day = self.start_date + timedelta(days=slot.day)
        midnight = datetime.combine(self.start_date, time())
        steps = []
        flags = tplan.at_max_rate if tplan is not None else ()
        for k, d in enumerate(x for x in doses if isinstance(x, Infusion)):
            ml_per_h = self.bag.pump_ml_per_h(d.rate_mg_per_h or 0.0)
            mg_per_h = ml_per_h * conc
            what = f"Session {number} ({day:%a %d %b}), step {k + 1}"
            self._rate(mg_per_h, what)
            steps.append(
                PumpStep(
                    start=midnight + timedelta(hours=d.start_h),
                    duration_min=round(d.duration_h * 60.0, 6),
                    rate_mg_per_kg_h=mg_per_h / self.dosing_kg,
                    rate_mg_per_h=mg_per_h,
                    rate_ml_per_h=ml_per_h,
                    dose_mg=mg_per_h * d.duration_h,
                    at_max_rate=bool(flags[k]) if k < len(flags) else False,
                )
            )
        boluses = tuple(d.dose_mg or 0.0 for d in doses if isinstance(d, Bolus))
        for b in boluses:
            self.findings += self.limits.check(
                Quantity.BOLUS_MG_PER_KG, b / self.dosing_kg, what=f"Session {number}, bolus"
            )
        dose = sum(s.dose_mg for s in steps) + sum(boluses)
        self.findings += self.limits.check(
            Quantity.SESSION_DOSE_MG, dose, what=f"Session {number} ({day:%a %d %b}) dose"
        )
        self.findings += self.limits.check(
            Quantity.SESSION_DOSE_MG_PER_KG,
            dose / self.dosing_kg,
            what=f"Session {number} ({day:%a %d %b}) dose per kg",
        )
        volume = sum(s.dose_mg for s in steps) / conc
        pending = [
            dp.after_session
            for dp in self.protocol.decision_points
            if dp.after_session < number and slot.phase.trigger is Trigger.AFTER_DECISION
        ]
        return PlannedSession(
            number=number,
            phase=slot.phase,
            date=day,
            steps=tuple(steps),
            boluses_mg=boluses,
            dose_mg=dose,
            cumulative_mg=(earlier[-1].cumulative_mg if earlier else 0.0) + dose,
            pending_decision=max(pending) if pending else None,
            volume_ml=volume,
            bags=max(1, math.ceil(volume / self.bag.volume_ml - 1e-9)) if volume > 0 else 0,
            target=tplan,
        )

    def oral(self, slots: list[Slot]) -> tuple[OralPlan | None, list[OralDose]]:
        if not slots:
            return None, []
        doses = [
            OralDose(time_h=d.time_h, dose_mg=d.amount_mg(self.dosing_kg))
            for s in slots
            for d in s.schedule.oral_doses
        ]
        first = slots[0].phase.session.oral_doses
        per_dose = first[0].amount_mg(self.dosing_kg)
        for d in first:
            if d.dose_mg_per_kg is not None:
                self.findings += self.limits.check(
                    Quantity.ORAL_DOSE_MG_PER_KG, d.dose_mg_per_kg, what="Oral dose"
                )
        plan = OralPlan(
            phase=slots[0].phase,
            start_date=self.start_date + timedelta(days=slots[0].day),
            end_date=self.start_date + timedelta(days=slots[-1].day),
            clock_times=tuple(f"{int(d.time_h):02d}:{round(d.time_h % 1 * 60):02d}" for d in first),
            dose_mg=per_dose,
            daily_mg=sum(d.amount_mg(self.dosing_kg) for d in first),
            total_mg=sum(d.dose_mg or 0.0 for d in doses),
        )
        return plan, doses


def _times(a: float | None, b: float) -> float | None:
    return None if a is None else a * b


def _course_checks(ctx: _Context, sessions: list[PlannedSession]) -> list[Finding]:
    out = []
    if sessions:
        out += ctx.limits.check(
            Quantity.COURSE_DOSE_MG, sessions[-1].cumulative_mg, what="Course IV dose"
        )
    if ctx.capped:
        out.append(
            Finding(
                severity=Severity.INFO,
                code="protocol_rate_cap",
                reason=f"Rates limited to {ctx.protocol.max_rate_mg_per_h:g} mg/h by the "
                "protocol's dosing rule.",
                source=ctx.protocol.sources[0] if ctx.protocol.sources else None,
            )
        )
    if any(s.target is not None and any(s.target.at_max_rate) for s in sessions):
        out.append(
            Finding(
                severity=Severity.INFO,
                code="target_rate_limited",
                reason="Some target steps run at the highest rate the guardrails allow, so "
                "the target is reached later than an unconstrained pump would reach it.",
                source=None,
            )
        )
    return _merge_findings(ctx.findings + out)


def _merge_findings(findings: list[Finding]) -> list[Finding]:
    """One finding per code and message: 'Sessions 3, 4: ...' instead of repeats."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        _, sep, rest = f.reason.partition(": ")
        key = (f.code, rest if sep else f.reason)
        groups.setdefault(key, []).append(f)
    out = []
    for (_, rest), items in groups.items():
        if len(items) == 1:
            out.append(items[0])
            continue
        whats = [f.reason.partition(": ")[0] for f in items]
        out.append(replace(items[0], reason=f"{'; '.join(whats)}: {rest}"))
    return out
