"""Tests of virtual-trial designs and chunk simulation (ketapain.pharmacology.trial)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.pd.sustained import P_RESPONSE_KETAMINE, P_RESPONSE_PLACEBO
from ketapain.pharmacology.schedules import Infusion, Schedule
from ketapain.pharmacology.trial import (
    DIARY_HOUR,
    Arm,
    BaselineNRS,
    TrialDesign,
    chunk_count,
    simulate_chunk,
)

RATE_MG_PER_KG_H = 0.5
SCHEDULE = Schedule.of(Infusion(start_h=9.0, duration_h=4.0, rate_mg_per_kg_h=RATE_MG_PER_KG_H))
MODEL = get_model("flint-fanta-s")
DRUG = Arm(name="drug", schedule=SCHEDULE, model=MODEL)
PLACEBO = Arm(name="placebo", schedule=SCHEDULE, model=MODEL, placebo=True)


def design(**kwargs: Any) -> TrialDesign:
    """A two-week drug-vs-placebo design; keyword arguments override its fields."""
    fields: dict[str, Any] = {
        "arms": (DRUG, PLACEBO),
        "n_per_arm": 40,
        "seed": 1,
        "follow_up_weeks": 2,
        "report_weeks": (1, 2),
    }
    return TrialDesign(**(fields | kwargs))


def binomial_tolerance(p: float, n: int, k: float = 4.0) -> float:
    """k binomial standard deviations of a rate p estimated from n patients."""
    return k * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arms": ()}, "arms"),
        ({"arms": (DRUG, Arm(name="drug", schedule=SCHEDULE, model=MODEL))}, "arms"),
        ({"n_per_arm": 0}, "n_per_arm"),
        ({"n_per_arm": 2.5}, "n_per_arm"),
        ({"n_per_arm": True}, "n_per_arm"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.0}, "seed"),
        ({"follow_up_weeks": 0}, "follow_up_weeks"),
        ({"follow_up_weeks": 105}, "follow_up_weeks"),
        ({"follow_up_weeks": float("nan")}, "follow_up_weeks"),
        ({"report_weeks": (1, 3)}, "report_weeks"),
        ({"report_weeks": (0,)}, "report_weeks"),
        ({"report_weeks": (1.0,)}, "report_weeks"),
        ({"residual_sd": -0.1}, "residual_sd"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 200_001}, "chunk_size"),
        ({"chunk_size": 10.0}, "chunk_size"),
        ({"chunk_size": True}, "chunk_size"),
    ],
)
def test_design_validation_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    """Each invalid design field raises InvalidValueError naming that field."""
    with pytest.raises(InvalidValueError) as info:
        design(**kwargs)
    assert info.value.field == field


def test_follow_up_must_cover_the_schedule() -> None:
    """A follow-up ending before the last dose is rejected as follow_up_weeks, naming the arm."""
    long = Schedule.of(Infusion(start_h=9.0, duration_h=100.0, rate_mg_per_kg_h=0.1))
    arm = Arm(name="100h", schedule=long, model=MODEL)
    # 0.5 weeks: last diary at day 3, 08:00 = 80 h, before the infusion ends at 109 h.
    with pytest.raises(InvalidValueError, match="100h") as info:
        TrialDesign(arms=(arm,), n_per_arm=5, seed=0, follow_up_weeks=0.5, report_weeks=())
    assert info.value.field == "follow_up_weeks"
    ok = TrialDesign(arms=(arm,), n_per_arm=5, seed=0, follow_up_weeks=1, report_weeks=(1,))
    assert ok.horizon_h >= long.end_h()


def test_arm_and_baseline_validation() -> None:
    """Arms need a name, a dose and a positive weight cap; baselines a valid range."""
    with pytest.raises(InvalidValueError, match=r"arm\.name"):
        Arm(name=" ", schedule=SCHEDULE, model=MODEL)
    with pytest.raises(InvalidValueError, match="schedule"):
        Arm(name="none", schedule=Schedule(), model=MODEL)
    with pytest.raises(InvalidValueError, match="dosing_weight_cap_kg"):
        Arm(name="cap", schedule=SCHEDULE, model=MODEL, dosing_weight_cap_kg=0.0)
    with pytest.raises(InvalidValueError, match=r"baseline\.mean"):
        BaselineNRS(mean=0.5)  # below the default lower clipping bound of 1
    with pytest.raises(InvalidValueError, match=r"baseline\.low/high"):
        BaselineNRS(low=0.0, mean=0.0)  # responses are relative to baseline: 0 is excluded
    with pytest.raises(InvalidValueError, match=r"baseline\.sd"):
        BaselineNRS(sd=-1.0)


def test_days_and_diary_times() -> None:
    """n_days = floor(7 x weeks); diary scores at 08:00 of days 0..n_days (exact)."""
    d = design(follow_up_weeks=1.5, report_weeks=(1,))
    assert d.n_days == 10
    assert_array_equal(d.diary_times_h, 24.0 * np.arange(11) + DIARY_HOUR)
    assert d.horizon_h == 24.0 * 10 + 8.0
    assert design(follow_up_weeks=12, report_weeks=(12,)).n_days == 84


@pytest.mark.parametrize(
    ("n", "size", "chunks"), [(1, 5000, 1), (5000, 5000, 1), (5001, 5000, 2), (10, 3, 4)]
)
def test_chunk_count(n: int, size: int, chunks: int) -> None:
    """Chunks per arm is ceil(n_per_arm / chunk_size)."""
    assert chunk_count(design(n_per_arm=n, chunk_size=size)) == chunks


def test_chunks_cover_the_arm() -> None:
    """Chunks hold chunk_size patients (the last one the rest), with contiguous patient ids."""
    d = design(n_per_arm=10, chunk_size=3)
    chunks = [simulate_chunk(d, 0, c) for c in range(chunk_count(d))]
    assert [c.patient_id.size for c in chunks] == [3, 3, 3, 1]
    assert_array_equal(np.concatenate([c.patient_id for c in chunks]), np.arange(10))
    assert chunks[-1].nrs.shape == (1, d.n_days + 1)


@pytest.mark.parametrize(("arm", "chunk"), [(2, 0), (-1, 0), (0, 1), (0, -1)])
def test_chunk_index_out_of_range(arm: int, chunk: int) -> None:
    """Arm and chunk indices outside the design raise naming the index."""
    with pytest.raises(InvalidValueError, match="_index"):
        simulate_chunk(design(n_per_arm=10, chunk_size=10), arm, chunk)


def test_simulate_chunk_is_deterministic() -> None:
    """Same design, arm and chunk give identical arrays; other chunks, arms and seeds differ."""
    d = design(n_per_arm=60, chunk_size=30)
    a, b = simulate_chunk(d, 0, 1), simulate_chunk(d, 0, 1)
    for field in a.__dataclass_fields__:
        assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert not np.array_equal(a.weight_kg, simulate_chunk(d, 0, 0).weight_kg)
    assert not np.array_equal(a.nrs, simulate_chunk(d, 1, 1).nrs)
    assert not np.array_equal(
        a.nrs, simulate_chunk(design(n_per_arm=60, chunk_size=30, seed=2), 0, 1).nrs
    )


def test_placebo_arm_gets_no_drug() -> None:
    """Placebo: zero dose, peaks and BP warnings; side effects at 0.18 (20000 pts, 4 binomial SD).

    Its responders are the placebo responders, at 0.23 within 4 binomial SD.
    """
    n = 20_000
    c = simulate_chunk(design(arms=(PLACEBO,), n_per_arm=n, chunk_size=n, seed=4), 0, 0)
    for field in ("total_dose_mg", "peak_s_plasma_ng_per_ml", "peak_psychotomimetic_effect"):
        assert_array_equal(getattr(c, field), 0.0, err_msg=field)
    assert not c.bp_warning.any()
    assert abs(c.psychotomimetic.mean() - 0.18) < binomial_tolerance(0.18, n)
    assert abs(c.responder.mean() - P_RESPONSE_PLACEBO) < binomial_tolerance(P_RESPONSE_PLACEBO, n)


def test_drug_arm_response_rate() -> None:
    """On drug, placebo-or-drug responders make up 0.67 of the arm (20000 pts, 4 binomial SD)."""
    n = 20_000
    c = simulate_chunk(design(arms=(DRUG,), n_per_arm=n, chunk_size=n, seed=5), 0, 0)
    assert abs(c.responder.mean() - P_RESPONSE_KETAMINE) < binomial_tolerance(0.67, n)
    assert (c.total_dose_mg > 0).all() and (c.peak_s_plasma_ng_per_ml > 0).all()


def test_observed_nrs_is_clipped_to_the_scale() -> None:
    """With residual SD 5 scores hit both ends yet stay within [0, 10] as float32."""
    d = design(n_per_arm=300, chunk_size=300, residual_sd=5.0)
    c = simulate_chunk(d, 0, 0)
    assert c.nrs.dtype == np.float32 and c.nrs.shape == (300, d.n_days + 1)
    assert c.nrs.min() == 0.0 and c.nrs.max() == 10.0


def test_noise_free_placebo_scores() -> None:
    """Without noise a placebo patient scores 6.7, or 6.7 x (1 - 0.87) from the first dose
    on if a placebo responder (exact in float32); the day-0 diary precedes the first dose."""
    c = simulate_chunk(
        design(arms=(PLACEBO,), n_per_arm=200, chunk_size=200, residual_sd=0.0), 0, 0
    )
    assert_array_equal(c.baseline_nrs, 6.7)  # calibrated baseline, SD 0
    expected = np.where(c.responder, 6.7 * (1 - 0.87), 6.7).astype(np.float32)
    treated = np.repeat(expected[:, None], c.nrs.shape[1], axis=1)
    treated[:, 0] = np.float32(6.7)
    assert_array_equal(c.nrs, treated)
    assert 0 < c.responder.sum() < 200


def test_dosing_weight_cap_limits_dose_of_heavy_patients() -> None:
    """Capped at 70 kg, total dose is rate x 4 h x min(weight, 70); 1e-12 (same seed and cohort)."""
    capped = Arm(name="drug", schedule=SCHEDULE, model=MODEL, dosing_weight_cap_kg=70.0)
    n = 400
    free = simulate_chunk(design(arms=(DRUG,), n_per_arm=n, chunk_size=n), 0, 0)
    cap = simulate_chunk(design(arms=(capped,), n_per_arm=n, chunk_size=n), 0, 0)
    assert_array_equal(free.weight_kg, cap.weight_kg)
    w = free.weight_kg
    heavy = w > 70.0
    assert 0 < heavy.sum() < n
    assert_allclose(free.total_dose_mg, RATE_MG_PER_KG_H * 4.0 * w, rtol=1e-12)
    assert_allclose(cap.total_dose_mg, RATE_MG_PER_KG_H * 4.0 * np.minimum(w, 70.0), rtol=1e-12)
    assert np.all(cap.peak_s_plasma_ng_per_ml[heavy] < free.peak_s_plasma_ng_per_ml[heavy])
    assert_array_equal(cap.peak_s_plasma_ng_per_ml[~heavy], free.peak_s_plasma_ng_per_ml[~heavy])
