"""A fast, seeded synthetic registry of past ketamine courses, written straight into the tables.

**Synthetic data, never clinical data.** Every patient, score and dose here is drawn from
random numbers, for benchmarks of the outcome analytics (100,000 patients) and for trying
the cohort report. The shares come from the clinic pages of the seeds (marketing pages,
not trials) or are illustrative choices; nothing here describes real patients or real
outcomes.

The rows are what the services would have written: the same columns, values each model's
``check()`` accepts, event sequences numbered as the services number them, each course's
plan as ``build_plan`` makes it for the charted patient (the pain forecast excepted: the
reference patient's, scaled to the patient's baseline), the pre-infusion checklist the
pump start needs, and alarms as the default rules raise them. They are bulk-inserted with
SQLAlchemy Core, a few thousand patients per transaction, recorded by one inactive user
``synthetic.registry`` at the time of each event, and audited as one ``synthetic_fill``
entry. Each patient's numbers come from ``default_rng([seed, i])``, so a patient is the
same whatever the batch or the registry size.

Per patient: demographics, weight and height, one diagnosis, medications (opioids and
gabapentinoids; opioid doses corrected after the series), liver tests before and after
the series, intake vital signs, and one course: plan, status events, the decision after
the test infusions (``seed-outpatient``), one infusion per session given (pump events,
checklist, two vital-sign sets, NRS before and after, side effects, alarms and their
acknowledgements), weekly follow-up NRS for 12 weeks, and a booster after a relapse. A
course starts 1 to 730 days before ``today``; nothing is dated after ``today`` (nor after
the present moment). The story of a patient is in :mod:`ketapain.clinic._synthetic_course`
and :mod:`ketapain.clinic._synthetic_session`; the plans in
:mod:`ketapain.clinic._synthetic_plans`; the inserts in :mod:`ketapain.clinic._synthetic_writer`.

Sessions per course: ``seed-outpatient`` gives 7 (2 to a non-responder, who stops after
the test infusions), ``ten-weekdays`` and ``ten-weekdays-40-80mg`` give 10. No bundled
outpatient protocol gives more than 10, so a mean of 10 is out of reach; with the shares
below the mean is 9.0 sessions per course started and 8.9 given (the courses of the last
weeks are under way): 100,000 patients chart about 894,000 sessions, and 1,000,000
sessions take about 112,000 patients. 100,000 patients make about 10 million rows, a 5 GB
SQLite file, in about two minutes on 2 cores.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, date, datetime, time
from itertools import islice
from typing import TYPE_CHECKING, Final

from ketapain.clinic.audit import SYSTEM, record_event
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.registry import require_fresh
from ketapain.errors import InvalidValueError

if TYPE_CHECKING:
    from ketapain.clinic._synthetic_course import Spec
    from ketapain.clinic._synthetic_writer import Prepared

__all__ = [
    "AGE_Y",
    "ALARM_SESSION_RATE",
    "BASELINE_NRS",
    "BATCH_PATIENTS",
    "BOOSTER_LEAD_DAYS",
    "BOOSTER_SHARE",
    "DIAGNOSIS_SHARES",
    "EARLY_STOP_IF_SIGNIFICANT",
    "EARLY_STOP_MIN",
    "EARLY_STOP_OTHERWISE",
    "ENZYME_ABOVE_3ULN_SHARE",
    "ENZYME_ELEVATION_SHARE",
    "FEMALE_SHARE",
    "FOLLOW_UP_DROPOUT",
    "FOLLOW_UP_KEPT",
    "FOLLOW_UP_WEEKS",
    "GABAPENTINOIDS",
    "GABAPENTINOID_SHARE",
    "HEIGHT_CM",
    "HEIGHT_SD_CM",
    "INTAKE_LEAD_DAYS",
    "LIVER_ULN_U_PER_L",
    "MAX_PATIENTS",
    "NON_RESPONDER_DROP",
    "OPIOIDS",
    "OPIOID_OTHER_REVIEW_SHARE",
    "OPIOID_REDUCER_SHARE",
    "OPIOID_REDUCTION_FRACTION",
    "OPIOID_REDUCTION_IF_NOT",
    "OPIOID_REDUCTION_IF_RESPONDER",
    "OPIOID_REVIEW_WEEKS",
    "OPIOID_SHARE",
    "POOL_FROM_BATCHES",
    "POST_LAB_DAYS",
    "PROTOCOL_SHARES",
    "RELIEF_FRACTION",
    "RELIEF_MEDIAN_WEEKS",
    "RELIEF_WEIBULL_SHAPE",
    "RESPONDER_SHARE",
    "SEED_MAX_WEIGHT_KG",
    "SIDE_EFFECTS",
    "SIDE_EFFECT_SESSION_RATE",
    "SIGNIFICANT_SIDE_EFFECT_SHARE",
    "START_SPAN_DAYS",
    "SYNTHETIC_USERNAME",
    "WEIGHT_KG",
    "WORKERS",
    "fill_synthetic",
]

MAX_PATIENTS: Final = 1_000_000
BATCH_PATIENTS: Final = 2_000  # patients per transaction
# From this many batches on, worker processes make the batches while the database
# writes (about twice as fast on 2 cores).
POOL_FROM_BATCHES: Final = 4
WORKERS: Final = max(1, min(2, (os.cpu_count() or 1)))
SYNTHETIC_USERNAME: Final = "synthetic.registry"

# --- Who the patients are -------------------------------------------------------------
# Synthetic choices, illustrative: age ~N(47, 13) clipped 18-85, 70% women, weight
# ~N(78, 16) kg clipped 45-150, height ~N(163 / 177, 7) cm.
AGE_Y: Final = (47.0, 13.0, 18.0, 85.0)
FEMALE_SHARE: Final = 0.70
WEIGHT_KG: Final = (78.0, 16.0, 45.0, 150.0)
HEIGHT_CM: Final = {"female": 163.0, "male": 177.0}
HEIGHT_SD_CM: Final = 7.0
# Baseline pain ~N(7.3, 1.1) clipped 4-10: synthetic choice, illustrative.
BASELINE_NRS: Final = (7.3, 1.1, 4.0, 10.0)
# Synthetic choice, illustrative (CRPS first: the seed protocols' main indication).
DIAGNOSIS_SHARES: Final = (
    ("crps_1", 0.45),
    ("neuropathic_pain", 0.20),
    ("fibromyalgia", 0.15),
    ("diabetic_neuropathy", 0.08),
    ("postherpetic_neuralgia", 0.05),
    ("phantom_limb_pain", 0.04),
    ("low_back_pain", 0.03),
)
# Synthetic choice, illustrative: the clinic protocol, Schwartzman 2009 and Goldberg 2005.
# seed-outpatient is a quarter (not half) so that courses average 9 sessions.
PROTOCOL_SHARES: Final = (
    ("seed-outpatient", 0.25),
    ("ten-weekdays", 0.45),
    ("ten-weekdays-40-80mg", 0.30),
)
# Heavier patients go to ten-weekdays: seed-outpatient's 0.5 mg/kg/h would pass the
# drug library's 60 mg/h outpatient ceiling above 120 kg (a hard stop).
SEED_MAX_WEIGHT_KG: Final = 115.0
START_SPAN_DAYS: Final = 730  # courses start 1 to 730 days before today
INTAKE_LEAD_DAYS: Final = (7, 28)  # intake visit before the course start

# --- Response -------------------------------------------------------------------------
# "approximately 20% of patients will unfortunately not experience relief ... If you are
# one of the 80%": NY Ketamine Infusions (seed 000).
RESPONDER_SHARE: Final = 0.80
# A responder's pain falls towards baseline x (1 - r), r ~ U(0.35, 0.75), most of it by
# the second session; a non-responder's stays within 0-20% of baseline. Synthetic.
RELIEF_FRACTION: Final = (0.35, 0.75)
NON_RESPONDER_DROP: Final = 0.20
# Relief lasts a Weibull time (shape 1.5) with a median of 6 weeks: "sustained analgesic
# responses lasting 4 to 8 weeks", Calliope Health (seed 002).
RELIEF_MEDIAN_WEEKS: Final = 6.0
RELIEF_WEIBULL_SHAPE: Final = 1.5
# Weekly follow-up NRS for 12 weeks; each visit kept with 0.85, and 5% drop out for good
# each week: synthetic choices, illustrative.
FOLLOW_UP_WEEKS: Final = 12
FOLLOW_UP_KEPT: Final = 0.85
FOLLOW_UP_DROPOUT: Final = 0.05
# "Most patients who enjoy prolonged pain relief will need to return on occasion for
# booster infusions": NY Ketamine Infusions (seed 000); half of the relapses before
# today book one, 3-10 days after (synthetic choice).
BOOSTER_SHARE: Final = 0.50
BOOSTER_LEAD_DAYS: Final = (3, 10)

# --- Medications ----------------------------------------------------------------------
# Synthetic choices, illustrative: daily doses in common prescribing steps (mg/day, the
# step a change moves by), names that ketapain.protocols.interactions.mme_per_day
# converts. Few doses, so that the charts to screen are few (one screening each).
OPIOID_SHARE: Final = 0.40
OPIOIDS: Final = (
    ("oxycodone", (10.0, 20.0, 40.0), 5.0),
    ("morphine", (30.0, 60.0, 120.0), 10.0),
    ("tramadol", (100.0, 200.0, 400.0), 50.0),
    ("hydromorphone", (8.0, 16.0, 24.0), 2.0),
)
GABAPENTINOID_SHARE: Final = 0.30
GABAPENTINOIDS: Final = (
    ("gabapentin", (1200.0, 2400.0)),
    ("pregabalin", (150.0, 300.0)),
)
# "52% of patients reduce their opioid consumption by at least 20%": Calliope Health
# (seed 002): by 20-70%, 2-8 weeks after the series. A non-responder reduces with 0.20
# (synthetic choice), a responder with what makes 52% in all (0.60 with 80% responders).
OPIOID_REDUCER_SHARE: Final = 0.52
OPIOID_REDUCTION_IF_NOT: Final = 0.20
OPIOID_REDUCTION_IF_RESPONDER: Final = (
    OPIOID_REDUCER_SHARE - (1.0 - RESPONDER_SHARE) * OPIOID_REDUCTION_IF_NOT
) / RESPONDER_SHARE
OPIOID_REDUCTION_FRACTION: Final = (0.20, 0.70)
OPIOID_REVIEW_WEEKS: Final = (2, 8)
# Of the others, some get a correction that keeps or raises the dose: synthetic choice.
OPIOID_OTHER_REVIEW_SHARE: Final = 0.10

# --- Liver tests ----------------------------------------------------------------------
# "approximately 10% of patients showing temporary enzyme elevations": Calliope Health
# (seed 002); a quarter of them above 3 x ULN (synthetic choice). Normal values and the
# 0-40 U/L range are synthetic choices, illustrative.
ENZYME_ELEVATION_SHARE: Final = 0.10
ENZYME_ABOVE_3ULN_SHARE: Final = 0.25
LIVER_ULN_U_PER_L: Final = 40.0
POST_LAB_DAYS: Final = (1, 7)

# --- Sessions -------------------------------------------------------------------------
# "35% of pain patients report significant side effects": Calliope Health (seed 002):
# that share of patients has at least one moderate or severe effect.
SIGNIFICANT_SIDE_EFFECT_SHARE: Final = 0.35
# Any side effect in about 15% of sessions (synthetic choice; "side effects are
# infrequent and relatively mild", seed 000): each patient has a rate of 0.25-1.75 x
# 0.12 per session, and each significant patient one moderate or severe effect more.
SIDE_EFFECT_SESSION_RATE: Final = 0.12
# The effects named by Calliope Health (seed 002) and NY Ketamine Infusions (seed 000);
# the weights are synthetic.
SIDE_EFFECTS: Final = (
    ("nausea", 0.25),
    ("dizziness", 0.20),
    ("dissociation", 0.15),
    ("sedation", 0.12),
    ("anxiety", 0.08),
    ("headache", 0.08),
    ("hallucinations", 0.05),
    ("euphoria", 0.04),
    ("tachycardia", 0.03),
)
# About 3% of sessions stop early (synthetic choice): a quarter of those with a moderate
# or severe effect, 1.2% of the others, and every stop-level alarm.
EARLY_STOP_IF_SIGNIFICANT: Final = 0.25
EARLY_STOP_OTHERWISE: Final = 0.012
EARLY_STOP_MIN: Final = (30.0, 120.0)
# About 2% of sessions raise a blood-pressure alarm (synthetic choice); the alarm rows
# are those the default rules raise for the value (ketapain.clinic.alarms).
ALARM_SESSION_RATE: Final = 0.02


# Bulk load SQLite through the driver with values converted a column at a time
# (ketapain.clinic._synthetic_writer); False: plain insert(table) with dicts (the tests
# compare the two).
_FAST_SQLITE = True


def fill_synthetic(
    db: Database,
    *,
    patients: int,
    today: date,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Fill an empty, migrated database with a synthetic registry; return rows per table.

    ``today`` may not be later than the real date (the records refuse the future).
    """
    # The registry's modules read this one's constants: imported when it is used.
    from ketapain.clinic import _synthetic_course as course
    from ketapain.clinic._synthetic_writer import Writer

    if (
        isinstance(patients, bool)
        or not isinstance(patients, int)
        or not 1 <= patients <= MAX_PATIENTS
    ):
        raise InvalidValueError("patients", f"a number from 1 to {MAX_PATIENTS:,}", patients)
    require_fresh(db, today=today, what="a synthetic registry")
    spec = course.Spec(
        seed=seed,
        today=today,
        cutoff=min(datetime.combine(today, time.max, UTC), utc_now()),
        dialect=db.engine.dialect.name,
        fast=_FAST_SQLITE,
    )
    writer = Writer(spec.dialect, fast=spec.fast)
    jobs = [
        (first, min(patients, first + BATCH_PATIENTS - 1))
        for first in range(1, patients + 1, BATCH_PATIENTS)
    ]
    counts: dict[str, int] = {}
    # Millions of short-lived dicts and no cycles: the cycle collector only slows the
    # load down (by a third), so it waits until the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _write(db, writer.write, course.prepare_users(spec, secrets.token_hex(16)), counts)
        for last, prepared in _prepared(spec, jobs):
            _write(db, writer.write, prepared, counts)
            if progress is not None:
                progress(last, patients)
    finally:
        if collecting:
            gc.enable()
    detail = ", ".join(f"{table} {n}" for table, n in counts.items())
    record_event(
        db,
        SYSTEM,
        action="synthetic_fill",
        entity="database",
        entity_id=str(uuid.UUID(hex=course.user_id(seed))),
        detail=f"synthetic registry (not clinical data), seed {seed}, today {today}, "
        f"{patients} patients: {detail}",
    )
    return counts


def _write(
    db: Database, write: Callable[..., dict[str, int]], prepared: Prepared, counts: dict[str, int]
) -> None:
    """One transaction: every table's rows, parents first."""
    with db.write() as session, session.begin():
        for name, n in write(session, prepared).items():
            counts[name] = counts.get(name, 0) + n


def _prepared(spec: Spec, jobs: list[tuple[int, int]]) -> Iterator[tuple[int, Prepared]]:
    """Each batch ready to write, in order: made here, or by worker processes while the
    database writes the batch before (a large registry on a machine with 2+ cores)."""
    from ketapain.clinic._synthetic_course import prepare_batch

    workers = min(WORKERS, len(jobs) - 1)
    # Forked workers start at once and need no importable __main__ (a script without a
    # main guard would run again under "spawn"); without fork, batches are made here.
    forks = "fork" in multiprocessing.get_all_start_methods()
    if len(jobs) < POOL_FROM_BATCHES or workers < 1 or not forks:
        for first, last in jobs:
            yield last, prepare_batch(spec, first, last)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=gc.disable) as pool:
        todo = iter(jobs)
        running: deque[tuple[int, Future[Prepared]]] = deque()
        for first, last in islice(todo, workers + 1):
            running.append((last, pool.submit(prepare_batch, spec, first, last)))
        while running:
            last, future = running.popleft()
            prepared = future.result()
            following = next(todo, None)
            if following is not None:
                running.append((following[1], pool.submit(prepare_batch, spec, *following)))
            yield last, prepared
