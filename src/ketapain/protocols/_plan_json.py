"""The JSON form of a course plan (the contract of ``ketapain plan --format json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ketapain.sources import Source

if TYPE_CHECKING:
    from ketapain.protocols.planning import CoursePlan, PlannedSession
    from ketapain.protocols.schema import Phase


def _cite(source: Source | None) -> str | None:
    return None if source is None else source.cite()


def _session(s: PlannedSession) -> dict[str, Any]:
    return {
        "number": s.number,
        "phase": s.phase.name,
        "date": s.date.isoformat(),
        "start": s.start.isoformat(timespec="minutes"),
        "end": s.end.isoformat(timespec="minutes"),
        "duration_h": (s.end - s.start).total_seconds() / 3600.0,
        "dose_mg": s.dose_mg,
        "cumulative_dose_mg": s.cumulative_mg,
        "volume_ml": s.volume_ml,
        "bags": s.bags,
        "boluses_mg": list(s.boluses_mg),
        "pending_decision_after_session": s.pending_decision,
        "steps": [
            {
                "start": st.start.isoformat(timespec="minutes"),
                "duration_min": st.duration_min,
                "rate_mg_per_kg_h": st.rate_mg_per_kg_h,
                "rate_mg_per_h": st.rate_mg_per_h,
                "rate_ml_per_h": st.rate_ml_per_h,
                "dose_mg": st.dose_mg,
                "at_max_rate": st.at_max_rate,
            }
            for st in s.steps
        ],
    }


def _phase(p: Phase) -> dict[str, Any]:
    t = p.titration
    return {
        "name": p.name,
        "title": p.title,
        "trigger": p.trigger.value,
        "note": p.note,
        "titration": None
        if t is None
        else {
            "increase": t.increase,
            "max_rate": t.max_rate,
            "unit": t.unit,
            "increase_if": t.increase_if,
            "hold_if": t.hold_if,
            "source": _cite(t.source),
        },
    }


def plan_as_dict(plan: CoursePlan) -> dict[str, Any]:
    """Plain JSON values of ``plan``."""
    pr = plan.protocol
    w = plan.weight
    d = pr.discharge
    oral = plan.oral
    target = plan.target
    return {
        "protocol": {
            "name": pr.name,
            "title": pr.title,
            "setting": pr.setting.value,
            "drug": pr.drug.value,
            "model": pr.model,
            "phases": [_phase(p) for p in pr.phases],
            "sources": [s.cite() for s in pr.sources],
        },
        "patient_id": plan.patient.patient_id,
        "start_date": plan.start_date.isoformat(),
        "bag": {
            "drug_mg": plan.bag.drug_mg,
            "volume_ml": plan.bag.volume_ml,
            "conc_mg_per_ml": plan.bag.conc_mg_per_ml,
        },
        "dosing_weight": {
            "policy": w.policy.value,
            "actual_kg": w.actual_kg,
            "ideal_kg": w.ideal_kg,
            "adjusted_kg": w.adjusted_kg,
            "cap_kg": w.cap_kg,
            "dosing_kg": w.dosing_kg,
            "explanation": w.explain(),
            "source": _cite(w.source),
        },
        "eligible": plan.screening.eligible,
        "blocked": plan.blocked,
        "findings": [f.as_dict() for f in plan.findings],
        "overrides": [o.as_dict() for o in plan.overrides],
        "sessions": [_session(s) for s in plan.sessions],
        "course_dose_mg": plan.course_dose_mg,
        "premedication": [
            {
                "drug": p.drug,
                "dose_mg": p.dose_mg,
                "route": p.route,
                "timing": p.timing,
                "prn": p.prn,
                "source": _cite(p.source),
            }
            for p in pr.premedication
        ],
        "discharge": None
        if d is None
        else {
            "observation_min": d.observation_min,
            "escort_home": d.escort_home,
            "no_driving": d.no_driving,
            "source": _cite(d.source),
        },
        "decision_points": [
            {
                "after_session": dp.after_session,
                "date": day.isoformat(),
                "decision": dp.decision,
                "criterion": dp.criterion,
                "source": _cite(dp.source),
            }
            for dp, day in plan.decisions
        ],
        "oral_follow_on": None
        if oral is None
        else {
            "start_date": oral.start_date.isoformat(),
            "end_date": oral.end_date.isoformat(),
            "times": list(oral.clock_times),
            "dose_mg": oral.dose_mg,
            "daily_dose_mg": oral.daily_mg,
            "total_dose_mg": oral.total_mg,
            "note": oral.phase.note,
        },
        "boosters": [_phase(p) for p in pr.boosters()],
        "target": None
        if target is None
        else {
            "conc_ng_per_ml": target.conc_ng_per_ml,
            "site": target.site.value,
            "duration_h": target.duration_h,
            "min_step_min": target.min_step_min,
            "sessions": [
                {
                    "number": s.number,
                    "time_to_target_h": s.target.time_to_target_h,
                    "max_overshoot_ng_per_ml": s.target.max_overshoot_ng_per_ml,
                    "end_conc_ng_per_ml": s.target.end_conc_ng_per_ml,
                }
                for s in plan.sessions
                if s.target is not None
            ],
        },
        "baseline_nrs": plan.baseline_nrs,
        "prediction": None if plan.prediction is None else plan.prediction.summary.as_dict(),
        "pain_forecast": None if plan.forecast is None else plan.forecast.as_dict(),
    }
