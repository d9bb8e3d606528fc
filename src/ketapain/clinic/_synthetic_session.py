"""One synthetic session, charted as a nurse would chart it.

The bag is hung 20 minutes before the start (the first one puts the course in progress),
the checklist is completed 10 minutes before, vital signs and the pain NRS 5 minutes
before; the pump starts at the planned time, changes rate at each later step, and stops at
the planned end or early; vital signs 30 minutes in (with the alarms the default rules
raise for them, acknowledged 5 minutes later), a side effect for some, and the NRS at the
stop.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ketapain.clinic import _synthetic_rows as rows
from ketapain.clinic._synthetic_plans import BAG
from ketapain.clinic._synthetic_rows import Chart, Draws, clip, cumulative, pick, score
from ketapain.clinic.alarms import DEFAULT_RULES, Rule, evaluate
from ketapain.clinic.observations import VITAL_RANGES
from ketapain.clinic.pump import plan_max_rate
from ketapain.clinic.synthetic import (
    ALARM_SESSION_RATE,
    EARLY_STOP_IF_SIGNIFICANT,
    EARLY_STOP_MIN,
    EARLY_STOP_OTHERWISE,
    NON_RESPONDER_DROP,
    SIDE_EFFECTS,
)

__all__ = ["chart_session", "normal_vitals"]

_ESCORTS: Final = ("partner", "family member", "friend")
_EFFECTS: Final = cumulative(SIDE_EFFECTS)
# Blood-pressure alarms 30 minutes in (synthetic choice): a rise of more than 20% (warn),
# above 160 (warn), above 180 (stop), below 90 (stop).
_BP: Final = cumulative((("rise", 0.45), ("high", 0.30), ("very_high", 0.10), ("low", 0.15)))
_ACK_NOTES: Final = {
    "warn": "rechecked after 5 minutes; physician informed",
    "stop": "infusion stopped; physician informed",
}
_MIN: Final = timedelta(minutes=1)


def normal_vitals(d: Draws) -> list[float | None]:
    """Vital signs that raise no alarm: sbp, dbp, hr, rr, spo2, temp."""
    sbp = float(round(clip(122.0 + 8.0 * d.z(), 105.0, 133.0)))
    return [
        sbp,
        float(round(sbp * d.between(0.58, 0.68))),
        float(round(clip(74.0 + 8.0 * d.z(), 58.0, 100.0))),
        float(d.days(12, 18)),
        float(d.days(95, 99)),
        round(clip(36.7 + 0.25 * d.z(), 36.0, 37.4), 1),
    ]


def chart_session(
    c: Chart, plan: dict[str, Any], s: dict[str, Any], premedication: list[str], after: list[float]
) -> datetime:
    """Chart session ``s`` of the plan; append its NRS after to ``after``; return the stop."""
    d, out = c.d, c.out
    begin = datetime.fromisoformat(s["start"]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(s["end"]).replace(tzinfo=UTC)
    k, inf_id = s["number"], d.id()
    dosing_kg = plan["dosing_weight"]["dosing_kg"]
    hang = begin - 20 * _MIN
    out["infusions"].append(
        {
            **rows.record(d, c.by, hang, inf_id),
            "course_id": c.course_id,
            "patient_id": c.pid,
            "session_number": k,
            "drug": "ketamine",
            "bag_mg": BAG.drug_mg,
            "bag_ml": BAG.volume_ml,
            "lot": f"KET-{begin:%y%m}-{d.days(1, 60):02d}",
            "dosing_weight_kg": dosing_kg,
            "program": s["steps"],
            "plan_version": 1,
            "plan_max_rate_mg_per_h": plan_max_rate(plan, k, dosing_kg),
        }
    )
    if k == 1:
        out["course_status_events"].append(
            rows.status(c, hang, 2, "in_progress", "first infusion started")
        )
    _checklist(c, inf_id, begin - 10 * _MIN, premedication)
    pre = normal_vitals(d)
    out["vital_signs"].append(rows.vitals(c, begin - 5 * _MIN, inf_id, pre))
    out["scores"].append(rows.nrs(c, begin - 5 * _MIN, inf_id, _before(c, after)))
    effect, severity = _side_effect(c, k)
    during, alarms = _during(d, pre)
    if alarms and alarms[0][0].level == "stop":
        why: str | None = "stopped early: " + alarms[0][0].describe(alarms[0][1])
    elif severity in ("moderate", "severe") and d.u() < EARLY_STOP_IF_SIGNIFICANT:
        why = f"stopped early: {effect}"
    elif d.u() < EARLY_STOP_OTHERWISE:
        why = "stopped early: patient request"
    else:
        why = None
    stop = end
    if why is not None:  # never before the vital signs of 30 minutes in
        stop = max(end - int(d.between(*EARLY_STOP_MIN)) * _MIN, begin + 35 * _MIN)
    _pump(c, inf_id, s["steps"], begin, stop, why)
    _observations(c, inf_id, begin, stop, during, alarms)
    if effect is not None:
        t = begin + (15 + int(d.u() * ((stop - begin) / _MIN - 20))) * _MIN
        out["side_effects"].append(
            {
                **rows.correctable(d, c.by, t),
                "patient_id": c.pid,
                "infusion_id": inf_id,
                "observed_utc": t,
                "effect": effect,
                "severity": severity,
                "note": "treated; settled before discharge" if severity == "severe" else None,
            }
        )
    value = _after(c, k)
    after.append(value)
    out["scores"].append(rows.nrs(c, stop, inf_id, value))
    return stop


def _checklist(c: Chart, infusion_id: str, t: datetime, premedication: list[str]) -> None:
    c.out["pre_infusion_checks"].append(
        {
            **rows.correctable(c.d, c.by, t),
            "patient_id": c.pid,
            "infusion_id": infusion_id,
            "checked_utc": t,
            "consent_confirmed": True,
            "escort_confirmed": True,
            "escort_name": _ESCORTS[int(c.d.u() * len(_ESCORTS))],
            "fasting_confirmed": True,
            "medications_reviewed": True,
            "premedication_given": premedication,
            "premedication_note": None,
        }
    )


def _pump(
    c: Chart,
    infusion_id: str,
    steps: list[dict[str, Any]],
    begin: datetime,
    stop: datetime,
    why: str | None,
) -> None:
    """Start, a rate change at each later step started before the stop, stop."""
    events = c.out["infusion_events"]
    events.append(rows.event(c, begin, infusion_id, 1, "start", steps[0]["rate_mg_per_h"]))
    seq = 1
    for st in steps[1:]:
        t = datetime.fromisoformat(st["start"]).replace(tzinfo=UTC)
        if t >= stop:
            break
        seq += 1
        rate, reason = st["rate_mg_per_h"], "next step of the plan"
        events.append(rows.event(c, t, infusion_id, seq, "rate_change", rate, reason))
    events.append(rows.event(c, stop, infusion_id, seq + 1, "stop", None, why))


def _observations(
    c: Chart,
    infusion_id: str,
    begin: datetime,
    stop: datetime,
    during: list[float | None],
    alarms: list[tuple[Rule, float]],
) -> None:
    """The vital signs of 30 minutes in, their alarms and the acknowledgements."""
    t = begin + 30 * _MIN
    row = rows.vitals(c, t, infusion_id, during)
    c.out["vital_signs"].append(row)
    for rule, value in alarms:
        alarm = {
            **rows.record(c.d, c.by, t),
            "patient_id": c.pid,
            "infusion_id": infusion_id,
            "vital_signs_id": row["id"],
            "score_id": None,
            "signal": rule.signal,
            "level": rule.level,
            "value": value,
            "message": rule.describe(value),
            "source": rule.source.cite(),
        }
        c.out["alarms"].append(alarm)
        c.out["alarm_acknowledgements"].append(
            {
                **rows.record(c.d, c.by, min(t + 5 * _MIN, stop)),
                "alarm_id": alarm["id"],
                "note": _ACK_NOTES[rule.level],
            }
        )


def _side_effect(c: Chart, k: int) -> tuple[str | None, str | None]:
    """The session's side effect and its severity, if any."""
    u = c.d.u
    if k == c.significant_session:
        severity = "severe" if u() < 0.2 else "moderate"
    elif u() < c.effect_rate:
        severity = "moderate" if c.significant_session and u() < 0.3 else "mild"
    else:
        return None, None
    return pick(u(), _EFFECTS), severity


def _during(
    d: Draws, pre: list[float | None]
) -> tuple[list[float | None], list[tuple[Rule, float]]]:
    """Vital signs 30 minutes in, and the alarms they raise (blood pressure, some)."""
    u = d.u
    sbp0, dbp0, hr0, rr0, spo20, _ = (float(v or 0.0) for v in pre)
    during: list[float | None] = [
        float(round(sbp0 * d.between(1.0, 1.12))),  # below 160, less than 20% up
        dbp0 + int(6 * u()),
        hr0 + int(12 * u()),
        rr0 + int(2 * u()),
        max(94.0, spo20 - int(2 * u())),
        None,
    ]
    if u() >= ALARM_SESSION_RATE:
        return during, []
    kind = pick(u(), _BP)
    if kind == "rise":  # more than 20% above the baseline, at most 160: one warning
        sbp = min(160.0, math.floor(1.2 * sbp0) + 1.0 + int(4 * u()))
    elif kind == "high":  # above 160: that warning and the rise
        sbp = 161.0 + int(19 * u())
    elif kind == "very_high":  # above 180: a stop and both warnings
        sbp = 181.0 + int(19 * u())
    else:  # below 90: a stop
        sbp = 80.0 + int(9 * u())
        during[1] = float(round(sbp * 0.62))
    during[0] = sbp
    values = dict(zip(VITAL_RANGES, during, strict=True))
    return during, evaluate(DEFAULT_RULES, values, {"sbp_mmhg": sbp0})


def _before(c: Chart, after: list[float]) -> float:
    """NRS before a session: the baseline, then part of the last relief has worn off."""
    if not after:
        return score(c.baseline + 0.4 * c.d.z())
    prev = after[-1]
    return score(prev + c.d.between(0.2, 0.6) * (c.baseline - prev) + 0.4 * c.d.z())


def _after(c: Chart, k: int) -> float:
    """NRS after session ``k``: a responder's counts as a response from session 2 on, a
    non-responder's never does."""
    noise = 0.5 * c.d.z()
    if c.responder:
        v = score(c.baseline * (1.0 - c.relief * (1.0 - 0.35**k)) + noise)
        return min(v, float(c.limit)) if k >= 2 else v
    v = score(c.baseline * (1.0 - NON_RESPONDER_DROP * c.d.u()) + noise)
    return max(v, c.limit + 1.0)
