"""Exact simulation of ketamine concentrations for N subjects and any schedule.

The solution is analytic for linear compartment models: between breakpoints (dose
changes and output times) every input is constant, and the state advances with the
exact propagator of that interval (see :mod:`ketapain.pharmacology._propagators`).
There is no integration step and no step-size error; the result at any output time is
exact up to floating-point rounding. Concentrations are right-continuous: an output at
the time of a bolus includes the bolus.

Examples
--------
>>> import numpy as np
>>> from ketapain.pharmacology.models import get_model
>>> from ketapain.pharmacology.covariates import Covariates
>>> from ketapain.pharmacology.schedules import Infusion, Schedule
>>> params = get_model("domino").parameters(Covariates.single(weight_kg=70))
>>> sched = Schedule.of(Infusion(start_h=0, duration_h=4, rate_mg_per_kg_h=0.5))
>>> prof = simulate(params, sched, times_h=np.array([4.0]))
>>> round(float(prof.ketamine_plasma_ng_per_ml[0, 0]), 1)
259.7
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._grid import EventGrid, build_grid, check_times
from ketapain.pharmacology._propagators import (
    MAX_EIGENVECTOR_CONDITION,
    MatrixPropagator,
    ModalPropagator,
    modal_decomposition,
)
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.compartments import LinearSystem, Output, build_system
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.schedules import DOSE_LIMITS, Infusion, Route, Schedule
from ketapain.units import mg_per_l_to_ng_per_ml

__all__ = ["DEFAULT_CHUNK_SUBJECTS", "Output", "Profile", "default_outputs", "simulate"]

#: Subjects simulated together; bounds the working memory of the propagators.
DEFAULT_CHUNK_SUBJECTS: Final = 20_000

_CONCENTRATIONS: Final = {
    Output.KETAMINE_PLASMA,
    Output.KETAMINE_EFFECT_SITE,
    Output.KETAMINE_SLOW_EFFECT_SITE,
    Output.METABOLITE_PLASMA,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """Simulated concentration-time profiles of N subjects.

    Arrays of concentrations have shape (N, T), one row per subject; ``time_h`` has
    shape (T,). Blocks a model or the request did not include are ``None``.
    """

    time_h: FloatArray
    ketamine_plasma_ng_per_ml: FloatArray | None = None
    ketamine_effect_site_ng_per_ml: FloatArray | None = None
    ketamine_slow_effect_site_ng_per_ml: FloatArray | None = None
    norketamine_plasma_ng_per_ml: FloatArray | None = None
    amount_in_body_mg: FloatArray | None = None
    amount_eliminated_mg: FloatArray | None = None

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        for value in self.curves().values():
            return int(value.shape[0])
        return 0

    def curves(self) -> dict[str, FloatArray]:
        """Return the present (N, T) arrays by name."""
        names = (
            "ketamine_plasma_ng_per_ml",
            "ketamine_effect_site_ng_per_ml",
            "ketamine_slow_effect_site_ng_per_ml",
            "norketamine_plasma_ng_per_ml",
            "amount_in_body_mg",
            "amount_eliminated_mg",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def percentiles(self, q: tuple[float, ...] = (5.0, 50.0, 95.0)) -> dict[str, FloatArray]:
        """Return the q-th percentile curve of every output over subjects.

        Keys are ``<name>_p05`` style (percentile as two digits).
        """
        out: dict[str, FloatArray] = {}
        for name, values in self.curves().items():
            levels = np.percentile(values, q, axis=0)
            for level, curve in zip(q, levels, strict=True):
                out[f"{name}_p{level:02.0f}"] = curve
        return out


def default_outputs(params: PKParameters) -> tuple[Output, ...]:
    """Plasma, effect site (with ke0) and metabolite (with a metabolite block)."""
    outputs = [Output.KETAMINE_PLASMA]
    if params.ke0_per_h is not None:
        outputs.append(Output.KETAMINE_EFFECT_SITE)
    if params.metabolite is not None:
        outputs.append(Output.METABOLITE_PLASMA)
    return tuple(outputs)


def simulate(
    params: PKParameters,
    schedule: Schedule,
    *,
    times_h: FloatArray,
    outputs: tuple[Output, ...] | None = None,
    chunk_subjects: int = DEFAULT_CHUNK_SUBJECTS,
) -> Profile:
    """Simulate ``schedule`` for every subject in ``params``, read at ``times_h``.

    Parameters
    ----------
    params : PKParameters
        Individual parameters of N subjects; per-kg doses use ``params.weight_kg``.
    schedule : Schedule
        Doses; per-kg doses are scaled by each subject's weight.
    times_h : ndarray, shape (T,)
        Strictly increasing output times, h. The system is at rest before the first
        dose or the first output time, whichever is earlier.
    outputs : tuple of Output, optional
        What to compute; by default every concentration the model has.
    chunk_subjects : int
        Subjects propagated together (memory bound of the working arrays).

    Returns
    -------
    Profile
        Concentrations in ng/mL and amounts in mg, shape (N, T).
    """
    times = check_times(times_h)
    outputs = outputs or default_outputs(params)
    _check_dose_intensity(schedule, params.weight_kg)
    has_oral = bool(schedule.oral_doses)
    zero_order_h = params.oral.zero_order_h if (has_oral and params.oral is not None) else 0.0
    if has_oral and params.oral is None:
        raise InvalidValueError(
            "route", "iv_bolus or iv_infusion: the model has no oral absorption", Route.ORAL.value
        )
    grid = build_grid(schedule, times, oral_zero_order_h=zero_order_h)
    n_sub = params.n_subjects
    buffers = {o: np.empty((times.size, n_sub)) for o in outputs}
    step = max(1, int(chunk_subjects))
    for start in range(0, n_sub, step):
        chunk = slice(start, min(start + step, n_sub))
        _simulate_chunk(params.take(chunk), grid, outputs, has_oral, buffers, chunk)
    # (N, T) views; rows were written contiguously per time.
    result = {_FIELD[o]: buffer.T for o, buffer in buffers.items()}
    return Profile(time_h=times, **result)


_FIELD: Final = {
    Output.KETAMINE_PLASMA: "ketamine_plasma_ng_per_ml",
    Output.KETAMINE_EFFECT_SITE: "ketamine_effect_site_ng_per_ml",
    Output.KETAMINE_SLOW_EFFECT_SITE: "ketamine_slow_effect_site_ng_per_ml",
    Output.METABOLITE_PLASMA: "norketamine_plasma_ng_per_ml",
    Output.AMOUNT_IN_BODY: "amount_in_body_mg",
    Output.AMOUNT_ELIMINATED: "amount_eliminated_mg",
}


def _simulate_chunk(
    params: PKParameters,
    grid: EventGrid,
    outputs: tuple[Output, ...],
    has_oral: bool,
    buffers: dict[Output, FloatArray],
    chunk: slice,
) -> None:
    system = _reporting_units(build_system(params, outputs=outputs, with_oral=has_oral))
    lam, v, v_inv, cond = modal_decomposition(system.a)
    good = cond <= MAX_EIGENVECTOR_CONDITION
    groups: list[tuple[slice | np.ndarray, ModalPropagator | MatrixPropagator]] = []
    if np.all(good):
        groups.append(
            (slice(None), ModalPropagator(system, grid, params.weight_kg, (lam, v, v_inv)))
        )
    else:
        idx_good, idx_bad = np.flatnonzero(good), np.flatnonzero(~good)
        if idx_good.size:
            modal = ModalPropagator(
                system.take(idx_good),
                grid,
                params.weight_kg[idx_good],
                (lam[idx_good], v[idx_good], v_inv[idx_good]),
            )
            groups.append((idx_good, modal))
        matrix = MatrixPropagator(system.take(idx_bad), grid, params.weight_kg[idx_bad])
        groups.append((idx_bad, matrix))
    zero = grid.zero_rate_index
    for index, prop in groups:
        columns = np.arange(chunk.start, chunk.stop)[index]
        contiguous = isinstance(index, slice)
        scratch = None if contiguous else np.empty(columns.size)
        for k in range(grid.t.size):
            if k:
                prop.step(int(grid.step_index[k - 1]), int(grid.rate_index[k - 1]), zero)
            jump = grid.jumps.get(k)
            if jump is not None:
                prop.jump(jump)
            j = grid.output_index[k]
            if j >= 0:
                for o in outputs:
                    if scratch is None:
                        prop.read(o, buffers[o][j, chunk])
                    else:
                        prop.read(o, scratch)
                        buffers[o][j, columns] = scratch


def _reporting_units(system: LinearSystem) -> LinearSystem:
    """Scale concentration read-outs from mg/L to ng/mL, so results need no copy."""
    outputs = {
        o: mg_per_l_to_ng_per_ml(w) if o in _CONCENTRATIONS else w
        for o, w in system.outputs.items()
    }
    return replace(system, outputs=outputs)


def _check_dose_intensity(schedule: Schedule, weight_kg: FloatArray) -> None:
    """Reject absolute doses above the engine's per-kg limits for the lightest subject."""
    lightest = float(np.min(weight_kg))
    for i, dose in enumerate(schedule.doses):
        limit = DOSE_LIMITS[dose.route]
        if isinstance(dose, Infusion):
            per_kg = dose.rate_for(lightest) / lightest
        else:
            per_kg = dose.amount_mg(lightest) / lightest
        if per_kg > limit.max_per_kg:
            unit = limit.field.removeprefix("rate_").removeprefix("dose_")
            raise InvalidValueError(
                f"doses[{i}]",
                f"at most {limit.max_per_kg:g} {unit} ({limit.source.short()}) "
                f"for a {lightest:g} kg patient",
                dose,
            )
