"""The rate for the next session: increase, hold or reduce by one titration step, by rule.

A protocol phase titrates to response: "increase if relief is below the target and the
session was tolerated, hold otherwise" (seed-outpatient). Sigtermans 2009 titrated
S-ketamine the same way, to pain relief and side effects, and the 2018 chronic-pain
guideline finds a dose-response (Cohen 2018). The rules here, in order:

1. **Reduce** by one step when the last session was not tolerated: a stop-level finding
   of the monitoring rules (clinical reference 3.1: MOAA/S 2 or less, SBP above 180 or
   DBP above 110 mmHg), a stop alarm, a severe side effect, or CADSS-6 above the
   clinic's stop level (no published cut-off: none by default). The rate never goes
   below one titration step; stopping the course is the clinician's decision.
2. **Hold** on a warn-level finding (MOAA/S 3, SBP above 160, DBP above 100 mmHg,
   CADSS-6 above the clinic's warn level) or when relief reached the target (30% by
   default, Farrar 2001).
3. Otherwise **increase** by one step.

Whatever the rule, the rate suggested never exceeds the titration maximum, the
protocol's ``max_rate_mg_per_h`` nor a hard maximum of the limit set (drug library and
protocol): it is capped at the lowest of them and the reason names the limit that
capped it. The guardrail findings of the suggested rate come with it.

>>> from ketapain.protocols.guardrails import load_drug_library
>>> from ketapain.protocols.library import get_protocol
>>> series = get_protocol("seed-outpatient").phases[1]
>>> lib = load_drug_library().limits_for("outpatient")
>>> s = next_session_rate(phase=series, last_rate=0.35, relief_fraction=0.1,
...                       dosing_weight_kg=70, limits=lib)
>>> s.action, round(s.rate_next, 2), round(s.rate_mg_per_h_next, 1)
('increase', 0.4, 28.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.protocols._monitoring import (
    CHERNIK_1990,
    DEFAULT_TOLERABILITY,
    MONITORING_RULES,
    RODRIGUES_2021,
    Tolerability,
    number,
    tolerability_findings,
)
from ketapain.protocols.findings import Finding
from ketapain.protocols.guardrails import LimitSet, Quantity, check_rate
from ketapain.protocols.schema import Phase
from ketapain.sources import COHEN_2018, FARRAR_2001, SIGTERMANS_2009_CRPS, Source

__all__ = [
    "CHERNIK_1990",
    "DEFAULT_TOLERABILITY",
    "MONITORING_RULES",
    "RODRIGUES_2021",
    "TitrationStep",
    "Tolerability",
    "next_session_rate",
]

_SIDE_EFFECTS: Final = SIGTERMANS_2009_CRPS.at(
    "S-ketamine titrated individually to pain relief and side effects"
)
_TARGET: Final = FARRAR_2001.at("a 30% NRS fall is 'much improved': hold once reached")
_DOSE_RESPONSE: Final = COHEN_2018.at("evidence of a dose-response: higher doses, more benefit")
_CLINIC_RULE: Final = Source(
    authors="Clinic titration rule",
    year=None,
    journal="step and maximum given by the clinic",
)
_DIGITS: Final = 10  # rounding of a stepped rate: far below the 1e-9 tolerance of a limit
_REL_TOL: Final = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class TitrationStep:
    """The suggested rate for the next session, why, and the guardrail findings on it.

    ``rate_last`` and ``rate_next`` are in ``unit`` (the titration's: mg/kg/h or mg/h);
    ``capped_by`` names the limits that capped the suggestion (empty when none did).
    """

    action: str
    rate_last: float
    rate_next: float
    unit: str
    rate_mg_per_h_next: float
    dosing_weight_kg: float
    capped_by: tuple[str, ...]
    reasons: tuple[str, ...]
    sources: tuple[Source, ...]
    limit_findings: tuple[Finding, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record with the findings and the sources cited."""
        return {
            "action": self.action,
            "rate_last": self.rate_last,
            "rate_next": self.rate_next,
            "unit": self.unit,
            "rate_mg_per_h_next": self.rate_mg_per_h_next,
            "dosing_weight_kg": self.dosing_weight_kg,
            "capped_by": list(self.capped_by),
            "reasons": list(self.reasons),
            "sources": [s.cite() for s in self.sources],
            "limit_findings": [f.as_dict() for f in self.limit_findings],
        }


def _rule(
    phase: Phase | None, step: float | None, max_rate: float | None, per_kg: bool | None
) -> tuple[float, float, bool, Source]:
    """The titration step, maximum, unit and source, from the phase or given explicitly."""
    if phase is not None:
        if (step, max_rate, per_kg) != (None, None, None):
            raise InvalidValueError("step/max_rate/per_kg", "absent when a phase is given", "given")
        t = phase.titration
        if t is None:
            raise InvalidValueError(f"phases.{phase.name}.titration", "a titration rule", None)
        return t.increase, t.max_rate, t.per_kg, t.source or _CLINIC_RULE
    if step is None or max_rate is None or not isinstance(per_kg, bool):
        raise InvalidValueError(
            "step/max_rate/per_kg", "all given (or a phase with a titration)", "missing"
        )
    step_v = number(step, "step", 0, 5000, above=True)
    return step_v, number(max_rate, "max_rate", 0, 5000, above=True), per_kg, _CLINIC_RULE


_Bound = tuple[float, str, Source | None]  # a rate in the titration's unit, its name, source


def _bounds(
    *, limits: LimitSet, per_kg: bool, weight_kg: float, protocol_max_rate_mg_per_h: float | None
) -> tuple[list[_Bound], _Bound | None]:
    """Every hard maximum on the rate and the highest hard minimum, in the titration's unit."""
    per_mg_h = 1.0 / weight_kg if per_kg else 1.0  # a mg/h value times this is in the unit
    per_mg_kg_h = 1.0 if per_kg else weight_kg
    caps: list[_Bound] = []
    mins: list[_Bound] = []
    if protocol_max_rate_mg_per_h is not None:
        cap = protocol_max_rate_mg_per_h
        caps.append((cap * per_mg_h, f"the protocol maximum of {cap:g} mg/h", None))
    for q, factor in ((Quantity.RATE_MG_PER_H, per_mg_h), (Quantity.RATE_MG_PER_KG_H, per_mg_kg_h)):
        for lim in limits.of(q):
            if lim.hard_max is not None:
                name = f"the hard maximum of {lim.hard_max:g} {q.unit} ({lim.origin})"
                caps.append((lim.hard_max * factor, name, lim.source))
            if lim.hard_min is not None:
                name = f"the hard minimum of {lim.hard_min:g} {q.unit} ({lim.origin})"
                mins.append((lim.hard_min * factor, name, lim.source))
    return caps, max(mins, key=lambda m: m[0], default=None)


def _decide(
    *,
    last: float,
    inc: float,
    unit: str,
    relief: float,
    target: float,
    stops: list[tuple[str, Source]],
    warns: list[tuple[str, Source]],
    floor: _Bound | None,
    rule_src: Source,
) -> tuple[float, list[str], list[Source]]:
    """Reduce, hold or increase, before any cap: the rate, the reasons, the sources."""
    reasons: list[str] = []
    sources: list[Source] = []
    if stops:
        proposed = round(max(last - inc, inc), _DIGITS)
        reasons.append(
            f"Not tolerated: {'; '.join(s for s, _ in stops)}. One step down "
            f"({inc:g} {unit}), not below one step; the physician decides whether to go on."
        )
        sources += [src for _, src in stops]
        if floor is not None and last > floor[0] > proposed:
            proposed = floor[0]
            reasons.append(f"Not below {floor[1]}.")
            sources += [floor[2]] if floor[2] is not None else []
        if proposed >= last:
            proposed = last
            reasons.append(f"The rate is already at one step ({inc:g} {unit}) or less.")
        if warns:
            reasons.append(f"Also at the warn level: {'; '.join(s for s, _ in warns)}.")
            sources += [src for _, src in warns]
    elif warns or relief >= target - _REL_TOL:
        proposed = last
        if warns:
            reasons.append(f"Hold: {'; '.join(s for s, _ in warns)}, at the warn level.")
            sources += [src for _, src in warns]
        if relief >= target - _REL_TOL:
            reasons.append(f"Hold: relief {relief:.0%} reached the target of {target:.0%}.")
            sources += [_TARGET, rule_src]
    else:
        proposed = round(last + inc, _DIGITS)
        reasons.append(
            f"Increase by one step ({inc:g} {unit}): relief {relief:.0%} is below the target "
            f"of {target:.0%} and the session was tolerated."
        )
        sources += [rule_src, _DOSE_RESPONSE]
    return proposed, reasons, sources


def next_session_rate(
    *,
    last_rate: float,
    relief_fraction: float,
    dosing_weight_kg: float,
    limits: LimitSet,
    phase: Phase | None = None,
    step: float | None = None,
    max_rate: float | None = None,
    per_kg: bool | None = None,
    min_moaas: int | None = None,
    max_cadss6: float | None = None,
    max_sbp_mmhg: float | None = None,
    max_dbp_mmhg: float | None = None,
    stop_alarm: bool = False,
    severe_side_effect: bool = False,
    response_target: float = 0.30,
    protocol_max_rate_mg_per_h: float | None = None,
    tolerability: Tolerability = DEFAULT_TOLERABILITY,
) -> TitrationStep:
    """Suggest the next session's rate from the last session's rate, relief and tolerance.

    Parameters
    ----------
    last_rate : float
        The last session's rate, in the titration's unit (mg/kg/h or mg/h), above 0.
    relief_fraction : float
        Relief achieved in the last session, a fraction of baseline pain (at most 1;
        negative when pain rose).
    dosing_weight_kg : float
        Dosing weight, kg: converts between mg/kg/h and mg/h for limits and the pump.
    limits : LimitSet
        Drug-library profile plus the protocol's limits; every hard maximum on
        ``rate_mg_per_h`` or ``rate_mg_per_kg_h`` caps the suggestion.
    phase : Phase, optional
        The protocol phase whose ``titration`` gives the step, maximum and unit.
    step, max_rate : float, optional
        The step and the maximum, when no phase is given (in the unit of ``per_kg``).
    per_kg : bool, optional
        True for mg/kg/h, False for mg/h, when no phase is given.
    min_moaas : int, optional
        Lowest MOAA/S of the last session (0-5).
    max_cadss6 : float, optional
        Highest CADSS-6 of the last session (0-24).
    max_sbp_mmhg, max_dbp_mmhg : float, optional
        Highest systolic and diastolic blood pressure of the last session, mmHg.
    stop_alarm : bool
        True when a stop-level alarm fired in the last session.
    severe_side_effect : bool
        True when a side effect was charted as severe.
    response_target : float
        Relief at or above which the rate is held, a fraction above 0 and below 1
        (default 0.30: the decision point's threshold, Farrar 2001).
    protocol_max_rate_mg_per_h : float, optional
        The protocol's ``max_rate_mg_per_h``.
    tolerability : Tolerability
        Warn and stop levels (default: clinical reference 3.1).

    Returns
    -------
    TitrationStep
        ``action`` compares ``rate_next`` with ``last_rate``: ``"increase"``,
        ``"hold"`` or ``"reduce"``.

    Examples
    --------
    Tolerated, but a full step (0.35 -> 0.4 mg/kg/h, 28 mg/h at 70 kg) would cross the
    protocol's 25 mg/h cap: the increase stops at the cap, and says so.

    >>> s = next_session_rate(step=0.05, max_rate=0.5, per_kg=True, last_rate=0.35,
    ...                       relief_fraction=0.1, dosing_weight_kg=70, limits=LimitSet(),
    ...                       protocol_max_rate_mg_per_h=25)
    >>> s.action, round(s.rate_mg_per_h_next, 6), s.capped_by
    ('increase', 25.0, ('the protocol maximum of 25 mg/h',))

    Sedated to MOAA/S 2: one step down.

    >>> next_session_rate(step=0.05, max_rate=0.5, per_kg=True, last_rate=0.4,
    ...                   relief_fraction=0.1, dosing_weight_kg=70, limits=LimitSet(),
    ...                   min_moaas=2).action
    'reduce'
    """
    inc, top, kg, rule_src = _rule(phase, step, max_rate, per_kg)
    unit = "mg/kg/h" if kg else "mg/h"
    last = number(last_rate, "last_rate", 0, 5000, above=True)
    weight = number(dosing_weight_kg, "dosing_weight_kg", 1, 400)
    relief = number(relief_fraction, "relief_fraction", -math.inf, 1)
    target = number(response_target, "response_target", 0, 1, above=True)
    if target >= 1:
        raise InvalidValueError("response_target", "a fraction above 0 and below 1", target)
    if protocol_max_rate_mg_per_h is not None:
        number(protocol_max_rate_mg_per_h, "protocol_max_rate_mg_per_h", 0, 5000, above=True)
    stops, warns = tolerability_findings(
        min_moaas=min_moaas,
        max_cadss6=max_cadss6,
        max_sbp_mmhg=max_sbp_mmhg,
        max_dbp_mmhg=max_dbp_mmhg,
        tol=tolerability,
    )
    if stop_alarm:
        stops.append(("a stop-level alarm fired", MONITORING_RULES))
    if severe_side_effect:
        stops.append(("a severe side effect", _SIDE_EFFECTS))
    caps, floor = _bounds(
        limits=limits,
        per_kg=kg,
        weight_kg=weight,
        protocol_max_rate_mg_per_h=protocol_max_rate_mg_per_h,
    )
    caps.insert(0, (top, f"the titration maximum of {top:g} {unit}", rule_src))
    proposed, reasons, sources = _decide(
        last=last,
        inc=inc,
        unit=unit,
        relief=relief,
        target=target,
        stops=stops,
        warns=warns,
        floor=floor,
        rule_src=rule_src,
    )
    ceiling = min(c for c, _, _ in caps)
    capped_by: tuple[str, ...] = ()
    if proposed > ceiling:
        binding = [(name, src) for c, name, src in caps if c <= ceiling * (1 + _REL_TOL)]
        capped_by = tuple(name for name, _ in binding)
        reasons.append(f"Capped at {ceiling:.4g} {unit} by {' and '.join(capped_by)}.")
        sources += [src for _, src in binding if src is not None]
        proposed = ceiling
    rate_mg_per_h = proposed * weight if kg else proposed
    return TitrationStep(
        action="increase" if proposed > last else "reduce" if proposed < last else "hold",
        rate_last=last,
        rate_next=proposed,
        unit=unit,
        rate_mg_per_h_next=rate_mg_per_h,
        dosing_weight_kg=weight,
        capped_by=capped_by,
        reasons=tuple(reasons),
        sources=tuple(dict.fromkeys(sources)),
        limit_findings=tuple(
            check_rate(
                limits,
                rate_mg_per_h=rate_mg_per_h,
                dosing_weight_kg=weight,
                what="Next session rate",
            )
        ),
    )
