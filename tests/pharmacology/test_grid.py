"""Tests of ketapain.pharmacology._grid: breakpoints, inputs and shared step lengths."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

from ketapain.pharmacology._grid import build_grid
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose, Schedule
from ketapain.pharmacology.simulation import simulate


def test_breakpoints_hold_dose_edges_and_output_times():
    """Breakpoints are the sorted union of output times and dose edges."""
    schedule = Schedule.of(
        Infusion(start_h=1.0, duration_h=2.0, rate_mg_per_kg_h=0.5),
        Bolus(time_h=2.5, dose_mg=10.0),
        OralDose(time_h=4.0, dose_mg_per_kg=1.0),
    )
    grid = build_grid(schedule, np.array([0.0, 2.0, 6.0]), oral_zero_order_h=0.5)
    assert_allclose(grid.t, [0.0, 1.0, 2.0, 2.5, 3.0, 4.0, 4.5, 6.0])
    assert list(grid.output_index) == [0, -1, 1, -1, -1, -1, -1, 2]
    assert set(grid.jumps) == {3}
    assert_allclose(grid.jumps[3], [[10.0, 0.0], [0.0, 0.0]])
    rates = grid.rates[grid.rate_index]  # per interval [route, kind]
    assert_allclose(rates[:, 0, 1], [0.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0])
    assert_allclose(rates[:, 1, 1], [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0])


def test_rounding_noise_in_step_lengths_shares_one_propagator():
    """Steps of one nominal length computed in floating point share a few propagators."""
    times = np.arange(0.0, 500.0, 0.1)
    grid = build_grid(Schedule(), times, oral_zero_order_h=0.0)
    assert grid.step_h.size <= 3
    assert_allclose(grid.step_h[0], 0.1, rtol=1e-9)


def test_slowly_growing_steps_are_not_merged_into_one():
    """Steps differing by far more than rounding keep their own lengths (and results)."""
    steps = 0.01 * (1.0 + np.arange(20_000) * 5e-10)  # last step 1e-5 longer than the first
    times = np.concatenate([[0.0], np.cumsum(steps)])
    grid = build_grid(Schedule(), times, oral_zero_order_h=0.0)
    lengths = grid.step_h[grid.step_index]
    assert_allclose(lengths, np.diff(times), rtol=1e-9)
    one = np.ones(1)
    params = PKParameters(weight_kg=70.0 * one, cl_l_per_h=20.0 * one, v1_l=20.0 * one)
    prof = simulate(params, Schedule.of(Bolus(time_h=0.0, dose_mg=100.0)), times_h=times)
    assert_allclose(prof.ketamine_plasma_ng_per_ml[0], 5000.0 * np.exp(-times), rtol=1e-9)
