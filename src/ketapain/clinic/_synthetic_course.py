"""The story of one synthetic patient: intake, one course, and what follows the series.

Intake (8:00, 7-28 days before the course starts): identity and demographics, weight and
height, vital signs, one diagnosis, medications, liver tests; the course is planned at
10:00. Sessions are charted by :mod:`ketapain.clinic._synthetic_session`; a decision is
signed 30 minutes after a decision point's session; the course is completed 15 minutes
after the last session. After the series: liver tests 1-7 days later, the opioid review
2-8 weeks later, weekly pain scores for 12 weeks, and a booster after a relapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Final

import numpy as np

from ketapain.clinic import _synthetic_rows as rows
from ketapain.clinic._synthetic_plans import template
from ketapain.clinic._synthetic_rows import Chart, Draws, Tables, at, clip, cumulative, pick, score
from ketapain.clinic._synthetic_session import chart_session, normal_vitals
from ketapain.clinic._synthetic_writer import Prepared, Writer
from ketapain.clinic.progress import response
from ketapain.clinic.synthetic import (
    AGE_Y,
    BASELINE_NRS,
    BOOSTER_LEAD_DAYS,
    BOOSTER_SHARE,
    DIAGNOSIS_SHARES,
    ENZYME_ABOVE_3ULN_SHARE,
    ENZYME_ELEVATION_SHARE,
    FEMALE_SHARE,
    FOLLOW_UP_DROPOUT,
    FOLLOW_UP_KEPT,
    FOLLOW_UP_WEEKS,
    GABAPENTINOID_SHARE,
    GABAPENTINOIDS,
    HEIGHT_CM,
    HEIGHT_SD_CM,
    INTAKE_LEAD_DAYS,
    LIVER_ULN_U_PER_L,
    NON_RESPONDER_DROP,
    OPIOID_OTHER_REVIEW_SHARE,
    OPIOID_REDUCTION_FRACTION,
    OPIOID_REDUCTION_IF_NOT,
    OPIOID_REDUCTION_IF_RESPONDER,
    OPIOID_REVIEW_WEEKS,
    OPIOID_SHARE,
    OPIOIDS,
    POST_LAB_DAYS,
    PROTOCOL_SHARES,
    RELIEF_FRACTION,
    RELIEF_MEDIAN_WEEKS,
    RELIEF_WEIBULL_SHAPE,
    RESPONDER_SHARE,
    SEED_MAX_WEIGHT_KG,
    SIDE_EFFECT_SESSION_RATE,
    SIGNIFICANT_SIDE_EFFECT_SHARE,
    START_SPAN_DAYS,
    SYNTHETIC_USERNAME,
    WEIGHT_KG,
)
from ketapain.protocols.continuation import recommend_continuation

__all__ = ["Spec", "prepare_batch", "prepare_users", "user_id"]

_DIAGNOSES: Final = cumulative(DIAGNOSIS_SHARES)
_PROTOCOLS: Final = cumulative(PROTOCOL_SHARES)
_RELIEF_SCALE_WEEKS: Final = RELIEF_MEDIAN_WEEKS / math.log(2) ** (1 / RELIEF_WEIBULL_SHAPE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """What the batches of one registry are made from (sent to worker processes)."""

    seed: int
    today: date
    cutoff: datetime  # nothing is dated later
    dialect: str
    fast: bool


def user_id(seed: int) -> str:
    """The synthetic user's id (32 hex digits); the high half prefixes every row id."""
    return f"{int(np.random.default_rng(seed).integers(1, 2**62)) << 64:032x}"


def prepare_users(spec: Spec, secret: str) -> Prepared:
    """The one user that records every row, ready to write."""
    out = rows.new_tables()
    first = spec.today - timedelta(days=START_SPAN_DAYS + INTAKE_LEAD_DAYS[1] + 1)
    out["users"].append(
        rows.user(
            user_id=user_id(spec.seed),
            username=SYNTHETIC_USERNAME,
            created_utc=at(first, 0.0),
            secret=secret,
        )
    )
    return Writer(spec.dialect, fast=spec.fast).prepare(out)


def prepare_batch(spec: Spec, first: int, last: int) -> Prepared:
    """Patients ``first`` to ``last``, ready to write (run in a worker process too)."""
    gen = _generator(spec)
    out = rows.new_tables()
    for i in range(first, last + 1):
        gen.patient(i, out)
    return gen.writer.prepare(out)


@lru_cache(maxsize=2)
def _generator(spec: Spec) -> _Generator:
    return _Generator(spec)


def _response_limit(baseline: float) -> int:
    """The highest NRS that counts as a response from ``baseline`` (Farrar 2001)."""
    return max(v for v in range(11) if response(baseline_nrs=baseline, best_nrs=float(v)).responded)


class _Generator:
    """Makes the rows of patient ``i`` (1-based) for one registry."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.by = user_id(spec.seed)
        self.prefix = int(self.by, 16) >> 64
        self.writer = Writer(spec.dialect, fast=spec.fast)
        self.limits = {b: _response_limit(b / 10) for b in range(40, 101)}

    def patient(self, i: int, out: Tables) -> None:
        """Append every row of patient ``i`` to ``out``."""
        d = Draws(seed=self.spec.seed, prefix=self.prefix, index=i)
        u, z = d.u, d.z
        start = self.spec.today - timedelta(days=d.days(1, START_SPAN_DAYS))
        intake = start - timedelta(days=d.days(*INTAKE_LEAD_DAYS))
        sex = "female" if u() < FEMALE_SHARE else "male"
        age_y = clip(AGE_Y[0] + AGE_Y[1] * z(), AGE_Y[2], AGE_Y[3])
        weight = round(clip(WEIGHT_KG[0] + WEIGHT_KG[1] * z(), WEIGHT_KG[2], WEIGHT_KG[3]), 1)
        baseline = round(clip(BASELINE_NRS[0] + BASELINE_NRS[1] * z(), *BASELINE_NRS[2:]), 1)
        c = Chart(
            d=d,
            out=out,
            by=self.by,
            pid=d.id(),
            mrn=f"SYN-{i:07d}",
            intake=intake,
            start=start,
            sex=sex,
            weight_kg=weight,
            height_cm=float(round(clip(HEIGHT_CM[sex] + HEIGHT_SD_CM * z(), 145.0, 200.0))),
            baseline=baseline,
            responder=u() < RESPONDER_SHARE,
            relief=d.between(*RELIEF_FRACTION),
            limit=self.limits[round(baseline * 10)],
        )
        diagnosis = self._intake(c, i, intake - timedelta(days=int(age_y * 365.25)))
        meds = self._medications(c)
        self._course(c, diagnosis, meds)
        if c.last_day is not None:
            self._liver_tests(c, c.last_day + timedelta(days=d.days(*POST_LAB_DAYS)))
            self._opioid_review(c)
            self._follow_up(c)

    def _intake(self, c: Chart, i: int, birth_date: date) -> str:
        """Identity, demographics, weight, vital signs, diagnosis, liver tests."""
        d, by, out = c.d, c.by, c.out
        t = at(c.intake, 8.0)
        out["patients"].append({**rows.record(d, by, t, c.pid), "mrn": c.mrn})
        out["demographics"].append(
            {
                **rows.correctable(d, by, t),
                "patient_id": c.pid,
                "family_name": "Synthetic",
                "given_name": f"Patient {i}",
                "birth_date": birth_date,
                "sex": c.sex,
            }
        )
        t = at(c.intake, 8.1)
        out["body_measurements"].append(
            {
                **rows.correctable(d, by, t),
                "patient_id": c.pid,
                "measured_utc": t,
                "weight_kg": c.weight_kg,
                "height_cm": c.height_cm,
            }
        )
        out["vital_signs"].append(rows.vitals(c, t, None, normal_vitals(d)))
        diagnosis = pick(d.u(), _DIAGNOSES)
        out["diagnoses"].append(
            {
                **rows.correctable(d, by, at(c.intake, 8.3)),
                "patient_id": c.pid,
                "code": diagnosis,  # the services take a vocabulary key as the code
                "key": diagnosis,
            }
        )
        self._liver_tests(c, c.intake, normal=True)
        return diagnosis

    def _liver_tests(self, c: Chart, day: date, *, normal: bool = False) -> None:
        """ALT and AST at 8:20 (elevated in some after the series)."""
        d = c.d
        t = at(day, 8 + 1 / 3)
        if t > self.spec.cutoff:
            return
        uln = LIVER_ULN_U_PER_L
        if not normal and d.u() < ENZYME_ELEVATION_SHARE:
            above_3uln = d.u() < ENZYME_ABOVE_3ULN_SHARE
            low, high = (3 * uln + 1, 7.5 * uln) if above_3uln else (uln + 1, 3 * uln)
            alt = round(d.between(low, high))
            ast = round(alt * d.between(0.6, 0.9))
        else:
            alt = round(clip(22.0 * math.exp(0.3 * d.z()), 8.0, 39.0))
            ast = round(clip(21.0 * math.exp(0.3 * d.z()), 8.0, 39.0))
        for test, value in (("alt", alt), ("ast", ast)):
            c.out["lab_results"].append(
                {
                    **rows.correctable(d, c.by, t),
                    "patient_id": c.pid,
                    "test": test,
                    "collected_utc": t,
                    "value": float(value),
                    "ref_low": 0.0,
                    "ref_high": uln,
                    "positive": None,
                }
            )

    def _medications(self, c: Chart) -> tuple[tuple[str, float], ...]:
        """An opioid for some, a gabapentinoid for some (the opioid first)."""
        u = c.d.u
        meds: list[tuple[str, float]] = []
        step = 0.0
        if u() < OPIOID_SHARE:
            name, doses, step = OPIOIDS[int(u() * len(OPIOIDS))]
            meds.append((name, doses[int(u() * len(doses))]))
        if u() < GABAPENTINOID_SHARE:
            drug, mg_per_day = GABAPENTINOIDS[int(u() * len(GABAPENTINOIDS))]
            meds.append((drug, mg_per_day[int(u() * len(mg_per_day))]))
        t = at(c.intake, 8.3)
        for name, mg in meds:
            row = {
                **rows.correctable(c.d, c.by, t),
                "patient_id": c.pid,
                "name": name,
                "dose_mg_per_day": mg,
                "dose_mcg_per_h": None,
                "active": True,
            }
            c.out["medications"].append(row)
            if step and c.opioid is None:
                c.opioid, c.opioid_step = row, step
        return tuple(meds)

    def _course(self, c: Chart, diagnosis: str, meds: tuple[tuple[str, float], ...]) -> None:
        """Plan, status, sessions and decisions; sets ``c.last_day`` if the course ended."""
        d, out, cutoff = c.d, c.out, self.spec.cutoff
        name = pick(d.u(), _PROTOCOLS)
        if name == "seed-outpatient" and c.weight_kg > SEED_MAX_WEIGHT_KG:
            name = "ten-weekdays"
        plans = template(name, c.start.weekday())
        plan = plans.plan(
            start=c.start,
            mrn=c.mrn,
            weight_kg=c.weight_kg,
            height_cm=c.height_cm,
            sex=c.sex,
            baseline_nrs=c.baseline,
            diagnosis=diagnosis,
            meds=meds,
        )
        c.course_id = d.id()
        t = at(c.intake, 10.0)
        course = {"patient_id": c.pid, "protocol": name}
        out["courses"].append({**rows.record(d, c.by, t, c.course_id), **course})
        out["course_plans"].append(
            {
                **rows.record(d, c.by, t),
                "course_id": c.course_id,
                "version": 1,
                "start_date": c.start,
                "plan": plan,
                "inputs": {"protocol": name, "synthetic": True},
                "reason": None,
            }
        )
        out["course_status_events"].append(rows.status(c, t, 1, "planned", "course planned"))
        sessions = plan["sessions"]
        decide_after = {dp["after_session"] for dp in plan["decision_points"]}
        # A non-responder stops at the first decision point; others go on to the end.
        n = len(sessions) if c.responder or not decide_after else min(decide_after)
        if d.u() < SIGNIFICANT_SIDE_EFFECT_SHARE:
            c.significant_session = 1 + int(d.u() * n)
        c.effect_rate = SIDE_EFFECT_SESSION_RATE * d.between(0.25, 1.75)
        after: list[float] = []
        stop = None
        for s in sessions[:n]:
            if datetime.fromisoformat(s["end"]) > cutoff.replace(tzinfo=None):
                return  # under way
            stop = chart_session(c, plan, s, plans.premedication, after)
            if s["number"] in decide_after:
                t = stop + timedelta(minutes=30)
                if t > cutoff:
                    return
                if self._decide(c, s["number"], after, t):
                    c.last_day = stop.date()
                    return
        if stop is not None and stop + timedelta(minutes=15) <= cutoff:
            t = stop + timedelta(minutes=15)
            out["course_status_events"].append(
                rows.status(c, t, 3, "completed", "series completed")
            )
            c.last_day = stop.date()

    def _decide(self, c: Chart, n: int, after: list[float], t: datetime) -> bool:
        """Sign the decision after session ``n``; True if it stops the course."""
        b, best = c.baseline, min(after[:n])
        if c.responder:
            drop = 100 * (b - best) / b
            reason = (
                f"Pain NRS {b:g} to {best:g} ({drop:.0f}% lower) after {n} sessions; tolerated."
            )
        else:
            reason = f"Pain NRS {b:g} to {best:g}: no response after {n} sessions."
        c.out["decisions"].append(
            {
                **rows.correctable(c.d, c.by, t),
                "course_id": c.course_id,
                "after_session": n,
                "decision": "continue" if c.responder else "stop",
                "reason": reason,
                # What the continuation rule recommends from the same figures (the
                # synthetic chart has no side effect worth stopping for).
                "recommendation": {
                    **recommend_continuation(baseline_nrs=b, session_nrs=[best]).as_dict(),
                    "after_session": n,
                    "inputs": {"baseline_nrs": b, "session_nrs": [best]},
                }
                if b > 0
                else None,
            }
        )
        if not c.responder:
            c.out["course_status_events"].append(
                rows.status(c, t, 3, "stopped_early", f"decision: {reason}")
            )
        return not c.responder

    def _opioid_review(self, c: Chart) -> None:
        """A correction of the opioid's dose 2-8 weeks after the series, for some."""
        if c.opioid is None or c.last_day is None:
            return
        d, u, row, step = c.d, c.d.u, c.opioid, c.opioid_step
        days = d.days(7 * OPIOID_REVIEW_WEEKS[0], 7 * OPIOID_REVIEW_WEEKS[1])
        t = at(c.last_day + timedelta(days=days), 11.5)
        if t > self.spec.cutoff:
            return
        dose = row["dose_mg_per_day"]
        p = OPIOID_REDUCTION_IF_RESPONDER if c.responder else OPIOID_REDUCTION_IF_NOT
        if u() < p:
            kept = 1.0 - d.between(*OPIOID_REDUCTION_FRACTION)
            new = max(step, math.floor(dose * kept / step) * step)
            reason = "dose reduced after the ketamine series"
        elif u() < OPIOID_OTHER_REVIEW_SHARE:
            raised = u() < 0.5
            new = dose + step if raised else dose
            reason = (
                "dose increased after the ketamine series: pain returned"
                if raised
                else "reviewed after the ketamine series: dose unchanged"
            )
        else:
            return
        c.out["medications"].append(
            {
                **row,
                "id": d.id(),
                "recorded_utc": t,
                "correction_reason": reason,
                "corrects_id": row["id"],
                "dose_mg_per_day": float(new),
            }
        )

    def _follow_up(self, c: Chart) -> None:
        """Weekly NRS for 12 weeks (some visits missed, some patients lost); a responder's
        relief lasts a Weibull time, and half of the relapses book a booster."""
        assert c.last_day is not None
        d, u, last = c.d, c.d.u, c.last_day
        lost_weeks = 0.0
        if c.responder:
            lost_weeks = _RELIEF_SCALE_WEEKS * (-math.log(1.0 - u())) ** (1 / RELIEF_WEIBULL_SHAPE)
        for week in range(1, FOLLOW_UP_WEEKS + 1):
            t = at(last + timedelta(weeks=week), 10.0 + 6.0 * u())
            if u() < FOLLOW_UP_DROPOUT or t > self.spec.cutoff:
                break
            if u() >= FOLLOW_UP_KEPT:
                continue
            noise = 0.5 * d.z()
            if week < lost_weeks:
                wane = 1.0 - 0.5 * (week / lost_weeks) ** 2
                v = min(score(c.baseline * (1.0 - c.relief * wane) + noise), float(c.limit))
            else:  # relief lost (or never there): within 30% of the baseline
                v = score(c.baseline * (1.0 - NON_RESPONDER_DROP * u()) + noise)
                v = max(v, c.limit + 1.0)
            c.out["scores"].append(rows.nrs(c, t, None, v))
        if c.responder and u() < BOOSTER_SHARE:
            lost = last + timedelta(days=int(7 * lost_weeks))
            booked = at(lost + timedelta(days=1), 11.0)
            day = lost + timedelta(days=d.days(*BOOSTER_LEAD_DAYS))
            if day <= self.spec.today and booked <= self.spec.cutoff:
                c.out["boosters"].append(
                    {
                        **rows.correctable(d, c.by, booked),
                        "course_id": c.course_id,
                        "scheduled_date": day,
                        "reason": "relapse: pain back within 30% of the pre-treatment level",
                    }
                )
