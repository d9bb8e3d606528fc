"""Dosing weight: which weight turns mg/kg/h into mg/h, by an explicit policy.

- ``actual``: the body weight measured.
- ``ideal``: ideal body weight (Devine 1974), or the actual weight when lower.
- ``adjusted``: ideal + 0.4 x (actual - ideal) above the ideal weight (Traynor 1995).

An optional cap (clinic policy, e.g. 100 kg) applies after the policy. Ideal and
adjusted weights need the height.

>>> w = dosing_weight(weight_kg=120, height_cm=170, sex="male", policy=WeightPolicy.ADJUSTED)
>>> round(w.ideal_kg, 1), round(w.dosing_kg, 1)
(65.9, 87.6)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ketapain.errors import InvalidValueError
from ketapain.protocols.citations import DEVINE_1974, TRAYNOR_1995
from ketapain.sources import Source

__all__ = ["DosingWeight", "WeightPolicy", "dosing_weight", "ideal_body_weight_kg"]

_CM_PER_INCH: Final = 2.54
_FIVE_FEET_CM: Final = 60 * _CM_PER_INCH
# Devine 1974: 50 kg (men) / 45.5 kg (women) + 2.3 kg per inch above 5 feet.
_IBW_BASE_KG: Final = {"male": 50.0, "female": 45.5}
_IBW_KG_PER_INCH: Final = 2.3
# Traynor 1995: dosing weight = IBW + 0.4 x (actual - IBW).
_ADJUSTED_FRACTION: Final = 0.4


class WeightPolicy(StrEnum):
    """Which weight doses are computed from."""

    ACTUAL = "actual"
    IDEAL = "ideal"
    ADJUSTED = "adjusted"


@dataclass(frozen=True, slots=True, kw_only=True)
class DosingWeight:
    """The weight used for dosing, how it was chosen, and the alternatives."""

    policy: WeightPolicy
    actual_kg: float
    ideal_kg: float | None
    adjusted_kg: float | None
    cap_kg: float | None
    dosing_kg: float
    source: Source | None

    def explain(self) -> str:
        """One line for the plan, e.g. ``adjusted body weight 87.6 kg (actual 120 kg)``."""
        text = (
            f"{self.policy.value} body weight {self.dosing_kg:.1f} kg (actual {self.actual_kg:g} kg"
        )
        if self.ideal_kg is not None:
            text += f", ideal {self.ideal_kg:.1f} kg"
        if self.cap_kg is not None:
            text += f", capped at {self.cap_kg:g} kg"
        return text + ")"


def ideal_body_weight_kg(*, height_cm: float, sex: str) -> float:
    """Devine ideal body weight; below 5 feet the 5-feet value is returned."""
    if sex not in _IBW_BASE_KG:
        raise InvalidValueError("sex", '"female" or "male"', sex)
    inches_over = max(0.0, (height_cm - _FIVE_FEET_CM) / _CM_PER_INCH)
    return _IBW_BASE_KG[sex] + _IBW_KG_PER_INCH * inches_over


def dosing_weight(
    *,
    weight_kg: float,
    height_cm: float | None,
    sex: str,
    policy: WeightPolicy = WeightPolicy.ACTUAL,
    cap_kg: float | None = None,
) -> DosingWeight:
    """The dosing weight of a patient under ``policy`` and an optional ``cap_kg``."""
    if cap_kg is not None and not 20 <= cap_kg <= 400:
        raise InvalidValueError("weight cap_kg", "from 20 to 400 kg", cap_kg)
    ideal = adjusted = None
    if height_cm is not None:
        ideal = ideal_body_weight_kg(height_cm=height_cm, sex=sex)
        adjusted = (
            ideal + _ADJUSTED_FRACTION * (weight_kg - ideal) if weight_kg > ideal else weight_kg
        )
    if policy is not WeightPolicy.ACTUAL and ideal is None:
        raise InvalidValueError("height_cm", f"given for the {policy.value} weight policy", None)
    chosen = {
        WeightPolicy.ACTUAL: weight_kg,
        WeightPolicy.IDEAL: min(weight_kg, ideal or weight_kg),
        WeightPolicy.ADJUSTED: adjusted or weight_kg,
    }[policy]
    source = {WeightPolicy.ACTUAL: None, WeightPolicy.IDEAL: DEVINE_1974}.get(policy, TRAYNOR_1995)
    return DosingWeight(
        policy=policy,
        actual_kg=weight_kg,
        ideal_kg=ideal,
        adjusted_kg=adjusted,
        cap_kg=cap_kg,
        dosing_kg=chosen if cap_kg is None else min(chosen, cap_kg),
        source=source,
    )
