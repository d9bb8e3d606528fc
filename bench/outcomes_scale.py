"""Outcome analysis at registry scale: the report's analysis against a naive ORM baseline.

Fills a synthetic registry (``ketapain db synth``: 100,000 patients, about 1,000,000
sessions by default) unless ``--reuse`` names one, then times in the same process:

* **ketapain**: ``cohort_table`` (one set-based query in the database, Polars for the
  rest) plus ``analyse`` (every figure of the report), on the whole registry;
* **baseline**: the same table built row by row through the ORM, course by course, the
  way a first implementation reads the records (the patient, the plan, each infusion
  and its events, each score...), on a random sample of courses, extrapolated linearly to
  the registry (its cost is linear in the courses: a fixed number of queries each).

The two tables are compared on the sample, column by column, so the fast path is shown
to compute the same numbers. Prints times, rows per second and the ratio.

    uv run python bench/outcomes_scale.py [--patients 100000] [--reuse /tmp/synth100k.db]
        [--sample 500] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from _common import show
from ketapain.analytics.report import analyse
from ketapain.clinic import migrate
from ketapain.clinic.accounts import create_user
from ketapain.clinic.alarms import DEFAULT_RULES, Alarm
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.charting import record_score
from ketapain.clinic.courses import Booster, Course, CoursePlan, CourseStatusEvent
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import EventKind, Infusion, InfusionEvent, delivery
from ketapain.clinic.observations import Score, SideEffect
from ketapain.clinic.outcomes import cohort_table
from ketapain.clinic.patients import Demographics, Diagnosis, LabResult, Medication
from ketapain.clinic.records import current
from ketapain.clinic.synthetic import fill_synthetic
from ketapain.protocols.interactions import mme_per_day

KEY = b"bench-outcomes-key"
_COMPARED = (
    "sessions_given",
    "dose_mg",
    "infusion_h",
    "early_stops",
    "nrs_end",
    "nrs_week_4",
    "nrs_week_12",
    "relief_lost_day",
    "mme_before",
    "mme_after",
    "side_effects",
    "alarms",
    "lft_elevated",
)


def _key(course_id: uuid.UUID) -> str:
    return hashlib.blake2b(course_id.hex.encode(), key=KEY, digest_size=8).hexdigest()


def _mme_at(meds: list[Medication], later: dict[uuid.UUID, datetime], at: datetime) -> float:
    total = 0.0
    for m in meds:
        if m.entered_in_error or not m.active or m.recorded_utc > at:
            continue
        replaced = later.get(m.id)
        if replaced is not None and replaced <= at:
            continue
        mme = mme_per_day(m.name, dose_mg_per_day=m.dose_mg_per_day,
                          dose_mcg_per_h=m.dose_mcg_per_h)  # fmt: skip
        total += (mme.mme_per_day or 0.0) if mme else 0.0
    return total


def _naive_row(s: Session, course: Course, as_of: datetime) -> dict[str, Any]:
    """One course, read object by object through the ORM (the baseline)."""
    plan = s.scalars(
        select(CoursePlan).where(CoursePlan.course_id == course.id).order_by(CoursePlan.version)
    ).all()[-1]
    status = s.scalars(
        select(CourseStatusEvent).where(CourseStatusEvent.course_id == course.id)
    ).all()
    demo = s.scalars(
        current(Demographics).where(Demographics.patient_id == course.patient_id)
    ).all()
    dx = s.scalars(current(Diagnosis).where(Diagnosis.patient_id == course.patient_id)).all()
    bags: dict[int, Infusion] = {}
    for inf in s.scalars(select(Infusion).where(Infusion.course_id == course.id)):
        if (
            inf.session_number not in bags
            or inf.recorded_utc > bags[inf.session_number].recorded_utc
        ):
            bags[inf.session_number] = inf
    row: dict[str, Any] = {
        "course_key": _key(course.id),
        "status": max(status, key=lambda e: e.sequence).status,
        "sex": demo[-1].sex if demo else "unknown",
        "diagnosis": min(dx, key=lambda d: d.recorded_utc).key if dx else "unknown",
        "sessions_given": 0, "dose_mg": 0.0, "infusion_h": 0.0, "early_stops": 0,
        "side_effects": 0, "alarms": 0,
    }  # fmt: skip
    first_start = end = last_stop = None
    last_inf = None
    for n in sorted(bags):
        inf = bags[n]
        events = s.scalars(
            select(InfusionEvent).where(InfusionEvent.infusion_id == inf.id)
            .order_by(InfusionEvent.sequence)
        ).all()  # fmt: skip
        start = next((e.time_utc for e in events if e.kind == EventKind.START), None)
        if start is None:
            continue
        stop = next((e.time_utc for e in events if e.kind == EventKind.STOP), None)
        d = delivery([e.pump_event() for e in events], until=as_of)
        row["sessions_given"] += 1
        row["dose_mg"] += d.delivered_mg
        row["infusion_h"] += d.running_h
        programmed_h = sum(st["duration_min"] for st in inf.program) / 60.0
        if stop is not None and d.running_h <= programmed_h - 0.25 + 1e-6:
            row["early_stops"] += 1
        first_start = first_start or start
        end = stop or start + timedelta(hours=d.running_h)
        last_stop, last_inf = stop, inf
        row["side_effects"] += len(
            s.scalars(current(SideEffect).where(SideEffect.infusion_id == inf.id)).all()
        )
        row["alarms"] += len(s.scalars(select(Alarm).where(Alarm.infusion_id == inf.id)).all())
    baseline = float(plan.plan["baseline_nrs"])
    row["nrs_end"] = None
    if last_inf is not None and last_stop is not None:
        after = [x for x in s.scalars(current(Score).where(Score.infusion_id == last_inf.id,
                 Score.instrument == "pain_nrs")) if x.measured_utc >= last_stop]  # fmt: skip
        row["nrs_end"] = max(after, key=lambda x: x.measured_utc).value if after else None
    weeks: dict[int, list[float]] = {}
    row["relief_lost_day"] = None
    if end is not None:
        follow = sorted(
            (x for x in s.scalars(current(Score).where(
                Score.patient_id == course.patient_id, Score.instrument == "pain_nrs",
                Score.infusion_id.is_(None))) if x.measured_utc > end),
            key=lambda x: x.measured_utc,
        )  # fmt: skip
        for x in follow:
            days = (x.measured_utc - end).total_seconds() / 86400.0
            weeks.setdefault(math.floor(days / 7.0 + 0.5), []).append(x.value)
            if row["relief_lost_day"] is None and x.value > 0.7 * baseline:
                row["relief_lost_day"] = days
    for w in (4, 12):
        row[f"nrs_week_{w}"] = sum(weeks[w]) / len(weeks[w]) if w in weeks else None
    meds = list(s.scalars(select(Medication).where(Medication.patient_id == course.patient_id)))
    later: dict[uuid.UUID, datetime] = {}
    for m in meds:
        if m.corrects_id is not None:
            later[m.corrects_id] = min(later.get(m.corrects_id, m.recorded_utc), m.recorded_utc)
    start_at = first_start or datetime.combine(plan.start_date, datetime.min.time(), UTC)
    first_list = min((m.recorded_utc for m in meds), default=start_at)
    row["mme_before"] = _mme_at(meds, later, max(start_at, first_list))
    row["mme_after"] = (
        None if end is None else _mme_at(meds, later, min(end + timedelta(days=84), as_of))
    )
    labs = s.scalars(current(LabResult).where(LabResult.patient_id == course.patient_id)).all()
    row["lft_elevated"] = any(
        lab.test in ("alt", "ast") and lab.value is not None and lab.ref_high is not None
        and first_start is not None and lab.collected_utc >= first_start
        and lab.value > lab.ref_high
        for lab in labs
    )  # fmt: skip
    row["boosters"] = len(s.scalars(current(Booster).where(Booster.course_id == course.id)).all())
    return row


def _compare(fast: pl.DataFrame, naive: pl.DataFrame) -> tuple[int, int]:
    joined = naive.join(fast.select("course_key", *_COMPARED), on="course_key", suffix="_fast")
    bad = 0
    for col in _COMPARED:
        a, b = joined.get_column(col), joined.get_column(f"{col}_fast")
        if a.dtype == pl.Boolean:
            bad += int((a != b).sum())
            continue
        diff = (a.cast(pl.Float64) - b.cast(pl.Float64)).abs()
        wrong = int(((diff > 1e-6) | (a.is_null() ^ b.is_null())).fill_null(False).sum())
        if wrong:
            print(f"{col}: {wrong} mismatches")
        bad += wrong
    return joined.height, bad


def _clinic_day(db: Database, scores: int) -> int:
    """Chart ``scores`` follow-up pain scores for random patients, as nurses do."""
    nurse = create_user(db, SYSTEM, username=f"bench.{uuid.uuid4().hex[:6]}",
                        full_name="Bench Nurse", role="nurse",
                        password="bench-password-1").actor()  # fmt: skip
    with db.read() as s:
        patients = list(s.scalars(select(Course.patient_id)))
    for pid in random.Random(2).sample(patients, min(scores, len(patients))):
        record_score(db, nurse, DEFAULT_RULES, patient_id=pid, instrument="pain_nrs",
                     value=float(random.Random(str(pid)).randint(2, 8)))  # fmt: skip
    return min(scores, len(patients))


def _registry(args: argparse.Namespace, tmp: str, console: Console) -> tuple[Database, float]:
    if args.reuse:
        return Database.connect(f"sqlite:///{args.reuse}"), float("nan")
    url = args.database_url or f"sqlite:///{Path(tmp) / 'registry.db'}"
    db = Database.connect(url)
    migrate.upgrade(db)
    t0 = time.perf_counter()
    counts = fill_synthetic(db, patients=args.patients, today=date.today(), seed=1)
    took = time.perf_counter() - t0
    console.print(f"synthetic registry: {counts} in {took:.0f} s")
    return db, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=500, help="courses the baseline reads")
    parser.add_argument("--reuse", help="an existing synthetic SQLite registry file")
    parser.add_argument("--database-url", help="fill this database instead of a temp SQLite")
    parser.add_argument(
        "--day", type=int, default=500, help="follow-up scores charted between two reports"
    )
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        db, _ = _registry(args, tmp, console)
        as_of = utc_now()
        t0 = time.perf_counter()
        table = cohort_table(db, SYSTEM, purpose="benchmark", as_of=as_of, key=KEY)
        t1 = time.perf_counter()
        analysis = analyse(table)
        t2 = time.perf_counter()
        fast_s = t2 - t0
        snap = Path(tmp) / "outcomes.parquet"
        t3 = time.perf_counter()
        cohort_table(db, SYSTEM, purpose="benchmark", as_of=utc_now(), key=KEY, snapshot=snap)
        build_s = time.perf_counter() - t3
        t3 = time.perf_counter()
        analyse(cohort_table(db, SYSTEM, purpose="benchmark", key=KEY, snapshot=snap))
        unchanged_s = time.perf_counter() - t3
        charted = _clinic_day(db, args.day)
        t3 = time.perf_counter()
        after_day = cohort_table(db, SYSTEM, purpose="benchmark", key=KEY, snapshot=snap)
        analyse(after_day)
        day_s = time.perf_counter() - t3
        full_after = cohort_table(db, SYSTEM, purpose="benchmark", as_of=utc_now(), key=KEY)
        same = after_day.drop("observed_day", "mme_after_day").equals(
            full_after.drop("observed_day", "mme_after_day")
        )
        with db.read() as s:
            ids = list(s.scalars(select(Course.id)))
            sample = random.Random(1).sample(ids, min(args.sample, len(ids)))
            t3 = time.perf_counter()
            rows = [_naive_row(s, s.get(Course, cid), utc_now()) for cid in sample]  # type: ignore[arg-type]
            naive_per_course = (time.perf_counter() - t3) / len(sample)
        naive = pl.DataFrame(rows, infer_schema_length=None)
        compared, mismatches = _compare(full_after, naive)
        naive_s = naive_per_course * len(ids)
        sessions = int(table.get_column("sessions_given").sum())
        show(
            console,
            f"outcome analysis of {len(ids):,} courses, {sessions:,} sessions "
            f"({db.engine.dialect.name}, 2 cores)",
            "path|time (s)|courses per s|vs baseline",
            [
                ["ketapain: table (SQL + Polars)", f"{t1 - t0:.2f}", "", ""],
                ["ketapain: analyse (all figures)", f"{t2 - t1:.2f}", "", ""],
                ["ketapain: total", f"{fast_s:.2f}", f"{len(ids) / fast_s:,.0f}",
                 f"{naive_s / fast_s:.0f}x faster"],
                [f"baseline: ORM row by row ({len(sample)} courses, extrapolated)",
                 f"{naive_s:.0f}", f"{1 / naive_per_course:,.0f}", "1x"],
                ["snapshot: first build", f"{build_s:.2f}", "", ""],
                ["snapshot: report, nothing changed", f"{unchanged_s:.2f}",
                 f"{len(ids) / unchanged_s:,.0f}", f"{naive_s / unchanged_s:,.0f}x faster"],
                [f"snapshot: report after a day ({charted} follow-up scores charted)",
                 f"{day_s:.2f}", f"{len(ids) / day_s:,.0f}", f"{naive_s / day_s:,.0f}x faster"],
            ],
            1,
        )  # fmt: skip
        console.print(
            f"responders >= 30% at the end: {analysis.responder('end', 'reduction_30').rate:.1%};"
            f" the sample's {compared} courses compared on {len(_COMPARED)} columns: "
            f"{mismatches} mismatches; the snapshot after the day equals a full read: {same}"
        )
        db.dispose()


if __name__ == "__main__":
    main()
