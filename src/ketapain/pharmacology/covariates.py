"""Patient covariates: weight, sex and age, one value per (virtual) subject.

Examples
--------
>>> c = Covariates.single(weight_kg=70, sex="female", age_y=45)
>>> c.n_subjects, bool(c.female[0])
(1, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import BoolArray, FloatArray
from ketapain.pharmacology._validate import array_in_range

__all__ = ["AGE_RANGE_Y", "WEIGHT_RANGE_KG", "Covariates", "Sex"]

# Plausibility bounds for adult and paediatric patients, not model validity ranges (those
# are per model). The heaviest documented humans exceed 500 kg; 400 kg is a generous
# ceiling that still catches grams or pounds typed as kilograms.
WEIGHT_RANGE_KG = (2.0, 400.0)
AGE_RANGE_Y = (0.0, 120.0)


class Sex(StrEnum):
    """Sex at birth, as used by the pharmacokinetic covariate models."""

    FEMALE = "female"
    MALE = "male"


@dataclass(frozen=True, slots=True, kw_only=True)
class Covariates:
    """Covariates of N subjects as equal-length arrays.

    Parameters
    ----------
    weight_kg : ndarray, shape (N,)
        Total body weight, kg.
    female : ndarray of bool, shape (N,)
        True for female subjects.
    age_y : ndarray, shape (N,)
        Age, years.
    """

    weight_kg: FloatArray
    female: BoolArray
    age_y: FloatArray

    def __post_init__(self) -> None:
        n = self.weight_kg.shape
        if self.weight_kg.ndim != 1 or self.female.shape != n or self.age_y.shape != n:
            raise InvalidValueError(
                "covariates", "arrays of one equal length", (self.weight_kg.shape,)
            )
        array_in_range("weight_kg", self.weight_kg, low=WEIGHT_RANGE_KG[0], high=WEIGHT_RANGE_KG[1])
        array_in_range("age_y", self.age_y, low=AGE_RANGE_Y[0], high=AGE_RANGE_Y[1])

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return int(self.weight_kg.shape[0])

    @classmethod
    def single(
        cls, *, weight_kg: float, sex: Sex | str = Sex.MALE, age_y: float = 40.0
    ) -> Covariates:
        """Return covariates of one patient."""
        return cls.repeat(weight_kg=weight_kg, sex=sex, age_y=age_y, n=1)

    @classmethod
    def repeat(
        cls, *, weight_kg: float, sex: Sex | str = Sex.MALE, age_y: float = 40.0, n: int
    ) -> Covariates:
        """Return ``n`` subjects that all share the same covariates."""
        sex_value = _parse_sex(sex)
        return cls(
            weight_kg=np.full(n, _as_float("weight_kg", weight_kg)),
            female=np.full(n, sex_value is Sex.FEMALE),
            age_y=np.full(n, _as_float("age_y", age_y)),
        )

    def take(self, index: slice | np.ndarray) -> Covariates:
        """Return the subjects selected by ``index``."""
        return Covariates(
            weight_kg=self.weight_kg[index], female=self.female[index], age_y=self.age_y[index]
        )


def _parse_sex(sex: Sex | str) -> Sex:
    try:
        return Sex(sex)
    except ValueError:
        raise InvalidValueError("sex", "'female' or 'male'", sex) from None


def _as_float(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(field, "a number", value)
    return float(value)
