"""Individual pharmacokinetic parameters of N subjects, in the engine's internal units.

Internal units of the pharmacology package: time in hours, amounts in mg (ketamine base),
volumes in L, clearances in L/h, rate constants in 1/h, concentrations in mg/L. Values
reach the user in ng/mL through :mod:`ketapain.units`.

Every field is an array of shape (N,) so that one call simulates N subjects with their
own parameters. Optional blocks (peripheral compartments, effect site, oral absorption,
metabolite) are ``None`` when a model does not have them.

Examples
--------
>>> import numpy as np
>>> p = PKParameters.from_microconstants(
...     weight_kg=np.array([70.0]), v1_l=np.array([4.41]),
...     k10_per_h=np.array([26.28]), k12_per_h=np.array([35.52]), k21_per_h=np.array([14.82]))
>>> round(float(p.cl_l_per_h[0]), 1), round(float(p.v2_l[0]), 2)
(115.9, 10.57)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray

__all__ = ["MetaboliteParameters", "OralParameters", "PKParameters"]

# Physiological plausibility bounds for one adult's parameters, used to catch unit errors
# (mL for L, per minute for per hour), not to judge a model.
_MAX_VOLUME_L = 1.0e5
_MAX_CLEARANCE_L_PER_H = 1.0e5
_MAX_RATE_PER_H = 1.0e5


def _check_positive(field: str, values: FloatArray, high: float) -> None:
    bad = ~np.isfinite(values) | (values <= 0) | (values > high)
    if np.any(bad):
        raise InvalidValueError(
            field, f"greater than 0 and at most {high:g}", float(values[np.argmax(bad)])
        )


def _check_fraction(field: str, values: FloatArray) -> None:
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if np.any(bad):
        raise InvalidValueError(field, "between 0 and 1", float(values[np.argmax(bad)]))


@dataclass(frozen=True, slots=True, kw_only=True)
class OralParameters:
    """Oral absorption of N subjects.

    The dose enters a gut depot at a constant rate over ``zero_order_h`` (0: at once),
    and leaves it with first-order rate ``ka_per_h``: the fraction ``bioavailability``
    reaches the central compartment as ketamine, ``first_pass_metabolite_fraction``
    reaches the metabolite compartment as metabolite (presystemic formation), and the
    rest is lost.
    """

    ka_per_h: FloatArray
    bioavailability: FloatArray
    first_pass_metabolite_fraction: FloatArray
    zero_order_h: float = 0.0

    def __post_init__(self) -> None:
        _check_positive("ka_per_h", self.ka_per_h, _MAX_RATE_PER_H)
        _check_fraction("bioavailability", self.bioavailability)
        _check_fraction("first_pass_metabolite_fraction", self.first_pass_metabolite_fraction)
        total = self.bioavailability + self.first_pass_metabolite_fraction
        if np.any(total > 1.0 + 1e-12):
            raise InvalidValueError(
                "bioavailability + first_pass_metabolite_fraction",
                "at most 1",
                float(total.max()),
            )
        if not (np.isfinite(self.zero_order_h) and 0 <= self.zero_order_h <= 24):
            raise InvalidValueError("zero_order_h", "between 0 and 24", self.zero_order_h)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetaboliteParameters:
    """Disposition of the metabolite (norketamine) of N subjects.

    ``fraction_formed`` is the fraction of the parent's systemic elimination that
    becomes metabolite; ``molar_mass_ratio`` converts mg of parent into mg of metabolite
    (1.0 for apparent models that fold both into CL/Fm and V/Fm).
    """

    cl_l_per_h: FloatArray
    v1_l: FloatArray
    fraction_formed: FloatArray
    molar_mass_ratio: float = 1.0
    q2_l_per_h: FloatArray | None = None
    v2_l: FloatArray | None = None

    def __post_init__(self) -> None:
        _check_positive("metabolite.cl_l_per_h", self.cl_l_per_h, _MAX_CLEARANCE_L_PER_H)
        _check_positive("metabolite.v1_l", self.v1_l, _MAX_VOLUME_L)
        _check_fraction("metabolite.fraction_formed", self.fraction_formed)
        if (self.q2_l_per_h is None) != (self.v2_l is None):
            raise InvalidValueError(
                "metabolite.q2_l_per_h/v2_l", "both given or both absent", self.q2_l_per_h
            )
        if self.q2_l_per_h is not None and self.v2_l is not None:
            _check_positive("metabolite.q2_l_per_h", self.q2_l_per_h, _MAX_CLEARANCE_L_PER_H)
            _check_positive("metabolite.v2_l", self.v2_l, _MAX_VOLUME_L)


@dataclass(frozen=True, slots=True, kw_only=True)
class PKParameters:
    """Clearance/volume parameters of N subjects (see module docstring for units).

    ``weight_kg`` is the dosing weight that turns mg/kg doses into mg for each subject.
    """

    weight_kg: FloatArray
    cl_l_per_h: FloatArray
    v1_l: FloatArray
    q2_l_per_h: FloatArray | None = None
    v2_l: FloatArray | None = None
    q3_l_per_h: FloatArray | None = None
    v3_l: FloatArray | None = None
    ke0_per_h: FloatArray | None = None
    slow_ke0_per_h: FloatArray | None = None
    oral: OralParameters | None = None
    metabolite: MetaboliteParameters | None = None

    def __post_init__(self) -> None:
        n = self.weight_kg.shape
        if self.weight_kg.ndim != 1:
            raise InvalidValueError("weight_kg", "a one-dimensional array", self.weight_kg.shape)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.shape != n:
                raise InvalidValueError(f.name, f"an array of shape {n}", value.shape)
        _check_positive("weight_kg", self.weight_kg, 400.0)
        _check_positive("cl_l_per_h", self.cl_l_per_h, _MAX_CLEARANCE_L_PER_H)
        _check_positive("v1_l", self.v1_l, _MAX_VOLUME_L)
        for q, v in (("q2_l_per_h", "v2_l"), ("q3_l_per_h", "v3_l")):
            q_value, v_value = getattr(self, q), getattr(self, v)
            if (q_value is None) != (v_value is None):
                raise InvalidValueError(f"{q}/{v}", "both given or both absent", q_value)
            if q_value is not None:
                _check_positive(q, q_value, _MAX_CLEARANCE_L_PER_H)
                _check_positive(v, v_value, _MAX_VOLUME_L)
        if self.q3_l_per_h is not None and self.q2_l_per_h is None:
            raise InvalidValueError("q3_l_per_h", "absent when q2_l_per_h is absent", "given")
        if self.ke0_per_h is not None:
            _check_positive("ke0_per_h", self.ke0_per_h, _MAX_RATE_PER_H)
        if self.slow_ke0_per_h is not None:
            _check_positive("slow_ke0_per_h", self.slow_ke0_per_h, _MAX_RATE_PER_H)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return int(self.weight_kg.shape[0])

    @property
    def n_compartments(self) -> int:
        """Number of parent disposition compartments (1 to 3)."""
        return 1 + (self.q2_l_per_h is not None) + (self.q3_l_per_h is not None)

    @classmethod
    def from_microconstants(
        cls,
        *,
        weight_kg: FloatArray,
        v1_l: FloatArray,
        k10_per_h: FloatArray,
        k12_per_h: FloatArray | None = None,
        k21_per_h: FloatArray | None = None,
        k13_per_h: FloatArray | None = None,
        k31_per_h: FloatArray | None = None,
        ke0_per_h: FloatArray | None = None,
    ) -> PKParameters:
        """Build parameters from V1 and micro-constants.

        CL = k10 V1, Q2 = k12 V1, V2 = Q2 / k21, Q3 = k13 V1, V3 = Q3 / k31.
        """
        q2 = v2 = q3 = v3 = None
        if k12_per_h is not None and k21_per_h is not None:
            q2 = k12_per_h * v1_l
            v2 = q2 / k21_per_h
        if k13_per_h is not None and k31_per_h is not None:
            q3 = k13_per_h * v1_l
            v3 = q3 / k31_per_h
        return cls(
            weight_kg=weight_kg,
            cl_l_per_h=k10_per_h * v1_l,
            v1_l=v1_l,
            q2_l_per_h=q2,
            v2_l=v2,
            q3_l_per_h=q3,
            v3_l=v3,
            ke0_per_h=ke0_per_h,
        )

    def take(self, index: slice | np.ndarray) -> PKParameters:
        """Return the subjects selected by ``index``."""

        def pick(value: FloatArray | None) -> FloatArray | None:
            return None if value is None else value[index]

        oral = self.oral
        if oral is not None:
            oral = replace(
                oral,
                ka_per_h=oral.ka_per_h[index],
                bioavailability=oral.bioavailability[index],
                first_pass_metabolite_fraction=oral.first_pass_metabolite_fraction[index],
            )
        met = self.metabolite
        if met is not None:
            met = replace(
                met,
                cl_l_per_h=met.cl_l_per_h[index],
                v1_l=met.v1_l[index],
                fraction_formed=met.fraction_formed[index],
                q2_l_per_h=pick(met.q2_l_per_h),
                v2_l=pick(met.v2_l),
            )
        return replace(
            self,
            weight_kg=self.weight_kg[index],
            cl_l_per_h=self.cl_l_per_h[index],
            v1_l=self.v1_l[index],
            q2_l_per_h=pick(self.q2_l_per_h),
            v2_l=pick(self.v2_l),
            q3_l_per_h=pick(self.q3_l_per_h),
            v3_l=pick(self.v3_l),
            ke0_per_h=pick(self.ke0_per_h),
            slow_ke0_per_h=pick(self.slow_ke0_per_h),
            oral=oral,
            metabolite=met,
        )

    def with_slow_effect_site(self, slow_ke0_per_h: FloatArray) -> PKParameters:
        """Return these parameters with a second, slow effect compartment.

        The slow compartment is a biophase that equilibrates with plasma ketamine at rate
        ``slow_ke0_per_h`` (one value per subject); it drives the sustained relief of
        chronic pain (:mod:`ketapain.pharmacology.pd.sustained`).
        """
        values = np.broadcast_to(np.asarray(slow_ke0_per_h, dtype=float), self.weight_kg.shape)
        return replace(self, slow_ke0_per_h=values.copy())

    def vss_l(self) -> FloatArray:
        """Volume of distribution at steady state, L (sum of compartment volumes)."""
        total = self.v1_l.copy()
        for v in (self.v2_l, self.v3_l):
            if v is not None:
                total = total + v
        return total
