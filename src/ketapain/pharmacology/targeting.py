"""Target-concentration infusions: the pump steps that reach and hold a concentration.

Given a target plasma (or effect-site) concentration for a time, the steps are found one
at a time, as a pump would run them. The concentration at the end of step k is the
response to everything given before (doses of earlier sessions included) plus the step's
own rate R times the unit response u(d) of a 1 mg/h infusion of length d from rest; by
linearity R = (target - C_before) / u(d). R is kept within [0, ``max_rate_mg_per_h``]
(a limit the caller takes from the guardrails; a step held at it is marked) and rounded
to the pump's resolution before the next step is computed, so rounding errors do not
accumulate. Steps are ``min_step_min`` long in the first hour (loading), 30 min in the
second, 1 h to hour 6 and 4 h after; neighbouring steps with the same rate are merged.

>>> from ketapain.pharmacology import Covariates, get_model
>>> params = get_model("domino-cl79").parameters(Covariates.single(weight_kg=70))
>>> plan = target_steps(params, target_ng_per_ml=150, start_h=9, duration_h=4,
...                     max_rate_mg_per_h=200)
>>> plan.steps[0].rate_mg_per_h > plan.steps[-1].rate_mg_per_h  # loading, then lower
True
>>> bool(abs(plan.end_conc_ng_per_ml - 150) < 1.5)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.compartments import Output
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.schedules import Infusion, Schedule
from ketapain.pharmacology.simulation import simulate

__all__ = ["TargetPlan", "TargetSite", "step_durations_h", "target_steps"]

_MIN_STEP_RANGE_MIN: Final = (1.0, 60.0)
_MAX_TARGET_NG_PER_ML: Final = 5000.0  # far above anaesthetic concentrations
_REACHED_FRACTION: Final = 0.95  # "reached" = within 5% below the target


class TargetSite(StrEnum):
    """Where the target concentration applies."""

    PLASMA = "plasma"
    EFFECT_SITE = "effect_site"

    @property
    def output(self) -> Output:
        """The simulation output of this site."""
        return Output.KETAMINE_PLASMA if self is TargetSite.PLASMA else Output.KETAMINE_EFFECT_SITE


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetPlan:
    """Pump steps (absolute mg/h) and how well they hold the target."""

    target_ng_per_ml: float
    site: TargetSite
    steps: tuple[Infusion, ...]
    at_max_rate: tuple[bool, ...]
    time_to_target_h: float | None
    max_overshoot_ng_per_ml: float
    end_conc_ng_per_ml: float


def step_durations_h(duration_h: float, *, min_step_min: float) -> list[float]:
    """Step lengths covering ``duration_h``: short while loading, longer later.

    >>> step_durations_h(3.0, min_step_min=15)
    [0.25, 0.25, 0.25, 0.25, 0.5, 0.5, 1.0]
    """
    lo, hi = _MIN_STEP_RANGE_MIN
    if not lo <= min_step_min <= hi:
        raise InvalidValueError("min_step_min", f"from {lo:g} to {hi:g} min", min_step_min)
    out: list[float] = []
    t = 0.0
    while t < duration_h - 1e-9:
        # 1e-9 h of slack: six 10-min steps sum to 0.9999999999999999 h.
        e = t + 1e-9
        d = min_step_min / 60.0 if e < 1 else 0.5 if e < 2 else 1.0 if e < 6 else 4.0
        d = min(d, duration_h - t)
        out.append(d)
        t += d
    return out


def _conc(params: PKParameters, schedule: Schedule, t_h: float, output: Output) -> float:
    if not schedule.doses:
        return 0.0
    prof = simulate(params, schedule, times_h=np.array([t_h]), outputs=(output,))
    return float(next(iter(prof.curves().values()))[0, 0])


def target_steps(
    params: PKParameters,
    *,
    target_ng_per_ml: float,
    start_h: float,
    duration_h: float,
    max_rate_mg_per_h: float,
    site: TargetSite = TargetSite.PLASMA,
    min_step_min: float = 10.0,
    rate_resolution_mg_per_h: float = 0.0,
    prior: Schedule | None = None,
) -> TargetPlan:
    """Pump steps that bring the ``site`` concentration to the target and hold it.

    Parameters
    ----------
    params : PKParameters
        One subject (the patient).
    target_ng_per_ml : float
        Target concentration of the model's measured species, ng/mL.
    start_h, duration_h : float
        When the infusion starts and how long the target is held, h.
    max_rate_mg_per_h : float
        Highest rate allowed (the guardrail); steps that would need more are held at it.
    site : TargetSite
        Plasma or effect site.
    min_step_min : float
        Length of the loading steps (pumps need a few minutes per step), min.
    rate_resolution_mg_per_h : float
        Pump resolution in mg/h (0.1 mL/h x bag concentration); 0 = exact.
    prior : Schedule, optional
        Doses given before (earlier sessions), which still contribute.
    """
    if params.n_subjects != 1:
        raise InvalidValueError("params", "one subject", params.n_subjects)
    if not 0 < target_ng_per_ml <= _MAX_TARGET_NG_PER_ML:
        raise InvalidValueError(
            "target_ng_per_ml", f"above 0 and at most {_MAX_TARGET_NG_PER_ML:g}", target_ng_per_ml
        )
    if not 0 < duration_h <= 24 * 14:
        raise InvalidValueError("duration_h", "above 0 and at most 336 h", duration_h)
    if not max_rate_mg_per_h > 0:
        raise InvalidValueError("max_rate_mg_per_h", "above 0", max_rate_mg_per_h)
    output = site.output
    given = prior or Schedule()
    unit: dict[float, float] = {}
    steps: list[Infusion] = []
    at_max: list[bool] = []
    t = float(start_h)
    q = float(rate_resolution_mg_per_h)
    for d in step_durations_h(duration_h, min_step_min=min_step_min):
        if d not in unit:
            one = Schedule.of(Infusion(start_h=0.0, duration_h=d, rate_mg_per_h=1.0))
            unit[d] = _conc(params, one, d, output)
        before = _conc(params, given, t + d, output)
        wanted = max(0.0, (target_ng_per_ml - before) / unit[d])
        rate = min(wanted, max_rate_mg_per_h)
        if q > 0:
            rate = float(np.floor(rate / q + 1e-9) * q)
        at_max.append(wanted > max_rate_mg_per_h)
        if rate > 0:
            step = Infusion(start_h=t, duration_h=d, rate_mg_per_h=float(rate))
            given = given + Schedule.of(step)
        else:
            step = Infusion(start_h=t, duration_h=d, rate_mg_per_h=0.0)
        steps.append(step)
        t += d
    merged, flags = _merge(steps, at_max)
    return _assess(params, given, merged, flags, target_ng_per_ml, site, start_h, t)


def _merge(
    steps: list[Infusion], at_max: list[bool]
) -> tuple[tuple[Infusion, ...], tuple[bool, ...]]:
    out: list[Infusion] = []
    flags: list[bool] = []
    for s, m in zip(steps, at_max, strict=True):
        if out and abs((out[-1].rate_mg_per_h or 0) - (s.rate_mg_per_h or 0)) < 1e-12:
            prev = out[-1]
            out[-1] = Infusion(
                start_h=prev.start_h,
                duration_h=prev.duration_h + s.duration_h,
                rate_mg_per_h=prev.rate_mg_per_h,
            )
            flags[-1] = flags[-1] or m
        else:
            out.append(s)
            flags.append(m)
    return tuple(out), tuple(flags)


def _assess(
    params: PKParameters,
    given: Schedule,
    steps: tuple[Infusion, ...],
    flags: tuple[bool, ...],
    target: float,
    site: TargetSite,
    start_h: float,
    end_h: float,
) -> TargetPlan:
    times = np.linspace(start_h, end_h, max(2, round((end_h - start_h) * 30) + 1))
    prof = simulate(params, given, times_h=times, outputs=(site.output,))
    c = next(iter(prof.curves().values()))[0]
    reached = np.flatnonzero(c >= _REACHED_FRACTION * target)
    return TargetPlan(
        target_ng_per_ml=float(target),
        site=site,
        steps=steps,
        at_max_rate=flags,
        time_to_target_h=None if reached.size == 0 else float(times[reached[0]] - start_h),
        max_overshoot_ng_per_ml=float(max(0.0, c.max() - target)),
        end_conc_ng_per_ml=float(c[-1]),
    )
