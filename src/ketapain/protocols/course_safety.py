"""Safety rules over a course of repeated infusions: liver, bladder, dose and blood pressure.

- :func:`liver_hold`: ALT or AST above 3 x ULN, or bilirubin above 2 x ULN, holds further
  infusions until a physician reviews (hard stops). Repeated S-ketamine caused liver
  injury with enzymes at least 3 x ULN (Noppers 2011); the hold rule itself is derived
  (clinical reference 3.3, Hy's-law style).
- :func:`liver_tests_due`: when liver tests are required (liver risk, or frequent
  high-dose infusions: Cohen 2018) and their due dates: before session 1, after the
  series, and weekly while a hold stands (derived).
- :func:`urinary_screen`: any urinary symptom before a session of a repeated course holds
  ketamine for physician review (ketamine uropathy, Chan 2022; "stop if positive" is
  derived).
- :func:`cumulative_dose`: totals per course, per calendar year and over 365 days,
  checked against the clinic's course limits.
- :func:`bp_trend`: the pre-infusion blood pressure across sessions, its slope and the
  peak rises, with warnings.

>>> urinary_screen({"frequency": False, "urgency": True, "dysuria": False,
...                 "haematuria": False, "suprapubic_pain": False})[0].code
'urinary_symptoms'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from ketapain.errors import InvalidValueError, field_path
from ketapain.protocols._course_trends import (
    BPTrend,
    CourseDose,
    CumulativeDose,
    SessionBP,
    bp_trend,
    cumulative_dose,
)
from ketapain.protocols._monitoring import calendar_date
from ketapain.protocols._monitoring import number as _num
from ketapain.protocols.citations import FDA_2009_DILI, NOPPERS_2011_LIVER
from ketapain.protocols.findings import Finding, Severity
from ketapain.protocols.schema import Protocol
from ketapain.protocols.screening import frequent_high_dose
from ketapain.sources import CHAN_2022, COHEN_2018, Source

__all__ = [
    "CHAN_2022",
    "LIVER_HOLD_RULE",
    "URINARY_ITEMS",
    "BPTrend",
    "CourseDose",
    "CumulativeDose",
    "LiverPanel",
    "LiverTestPlan",
    "SessionBP",
    "TestDue",
    "bp_trend",
    "cumulative_dose",
    "liver_hold",
    "liver_tests_due",
    "urinary_screen",
]

LIVER_HOLD_RULE: Final = Source(
    authors="ketapain clinical reference, section 3.3",
    year=None,
    journal="derived rule: hold further infusions if ALT or AST > 3x ULN, or bilirubin > 2x "
    "ULN (Hy's-law style); recheck weekly until resolved",
)
URINARY_ITEMS: Final = ("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain")
_ENZYME_HOLD_X_ULN: Final = 3.0  # Noppers 2011: injury with enzymes >= 3x ULN; rule derived
_BILIRUBIN_HOLD_X_ULN: Final = 2.0  # FDA 2009 (Hy's law): bilirubin above 2x ULN
_RECHECK_DAYS: Final = 7  # "recheck weekly until resolved" (derived, clinical reference 3.3)
_TOL: Final = 1e-9
_LFT_GUIDE: Final = COHEN_2018.at(
    "baseline and post-infusion LFTs with liver risk or expected high doses at frequent "
    "intervals (grade C)"
)
_KIDNEY: Final = Source(
    authors="Calliope Health",
    year=None,
    journal="Clinic page 'Ketamine infusion for chronic pain' (seed 002)",
    locator="basic blood work to assess liver and kidney function before treatment",
)
_URO_RULE: Final = CHAN_2022.at(
    "frequency 77%, urgency 70%, suprapubic pain 60%; cessation is the main treatment "
    "(stop if positive: derived, clinical reference 3.4)"
)
HARD, WARN = Severity.HARD_STOP, Severity.WARNING


# --- Liver ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LiverPanel:
    """The latest liver tests, each with the reporting lab's upper limit of normal (ULN)."""

    alt_u_per_l: float | None = None
    alt_uln_u_per_l: float | None = None
    ast_u_per_l: float | None = None
    ast_uln_u_per_l: float | None = None
    bilirubin_mg_per_dl: float | None = None
    bilirubin_uln_mg_per_dl: float | None = None

    def __post_init__(self) -> None:
        for test, high, uln_low, uln_high in (
            ("alt", 20000, 1, 500),
            ("ast", 20000, 1, 500),
            ("bilirubin", 60, 0.1, 10),
        ):
            unit = "mg_per_dl" if test == "bilirubin" else "u_per_l"
            value, uln = getattr(self, f"{test}_{unit}"), getattr(self, f"{test}_uln_{unit}")
            if value is not None:
                _num(value, f"{test}_{unit}", 0, high)
                if uln is None:
                    raise InvalidValueError(f"{test}_uln_{unit}", f"given with {test}_{unit}", None)
            if uln is not None:
                _num(uln, f"{test}_uln_{unit}", uln_low, uln_high)
        if self.alt_u_per_l is None and self.ast_u_per_l is None:
            raise InvalidValueError("alt_u_per_l/ast_u_per_l", "at least one given", None)


def liver_hold(panel: LiverPanel) -> list[Finding]:
    """Hard stops for aminotransferases above 3 x ULN or bilirubin above 2 x ULN.

    Exactly 3 x (or 2 x) ULN does not hold; between 1 and 3 x ULN is a warning to
    monitor (Cohen 2018: liver disease, "judiciously with monitoring").

    >>> [f.code for f in liver_hold(LiverPanel(alt_u_per_l=130, alt_uln_u_per_l=40))]
    ['liver_enzymes_above_3x_uln']
    >>> liver_hold(LiverPanel(ast_u_per_l=120, ast_uln_u_per_l=40))[0].severity.value
    'warning'
    """
    out: list[Finding] = []
    ratios = [
        (name, value, uln, value / uln)
        for name, value, uln in (
            ("ALT", panel.alt_u_per_l, panel.alt_uln_u_per_l),
            ("AST", panel.ast_u_per_l, panel.ast_uln_u_per_l),
        )
        if value is not None and uln is not None
    ]
    text = ", ".join(f"{n} {v:g} U/L = {r:.2f} x ULN ({u:g})" for n, v, u, r in ratios)
    worst = max(r for *_, r in ratios)
    if worst > _ENZYME_HOLD_X_ULN + _TOL:
        out.append(
            Finding(
                severity=HARD,
                code="liver_enzymes_above_3x_uln",
                reason=f"{text}: above 3 x ULN, as in ketamine-induced liver injury. Hold further"
                " infusions until a physician reviews; recheck weekly until resolved.",
                source=NOPPERS_2011_LIVER,
            )
        )
    elif worst > 1 + _TOL:
        out.append(
            Finding(
                severity=WARN,
                code="liver_enzymes_above_uln",
                reason=f"{text}: above the upper limit of normal; monitor the liver tests.",
                source=COHEN_2018.at("moderate hepatic disease: judiciously with monitoring"),
            )
        )
    b, b_uln = panel.bilirubin_mg_per_dl, panel.bilirubin_uln_mg_per_dl
    if b is not None and b_uln is not None and b / b_uln > _BILIRUBIN_HOLD_X_ULN + _TOL:
        out.append(
            Finding(
                severity=HARD,
                code="bilirubin_above_2x_uln",
                reason=f"Total bilirubin {b:g} mg/dL = {b / b_uln:.2f} x ULN ({b_uln:g}): above "
                "2 x ULN. Hold further infusions until a physician reviews.",
                source=FDA_2009_DILI,
            )
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TestDue:
    """One set of tests: what, when (``earliest`` to ``due_by``), why and on whose word."""

    __test__ = False  # a result type, not a pytest test class

    what: str
    tests: tuple[str, ...]
    earliest: date | None
    due_by: date
    reason: str
    sources: tuple[Source, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record; dates in ISO format."""
        return {
            "what": self.what,
            "tests": list(self.tests),
            "earliest": None if self.earliest is None else self.earliest.isoformat(),
            "due_by": self.due_by.isoformat(),
            "reason": self.reason,
            "sources": [s.cite() for s in self.sources],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LiverTestPlan:
    """Whether liver tests are required for the course, why, and the tests due."""

    required: bool
    reasons: tuple[str, ...]
    sources: tuple[Source, ...]
    due: tuple[TestDue, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return {
            "required": self.required,
            "reasons": list(self.reasons),
            "sources": [s.cite() for s in self.sources],
            "due": [d.as_dict() for d in self.due],
        }


def liver_tests_due(
    *,
    protocol: Protocol,
    liver_risk: bool,
    first_session: date,
    last_session: date,
    post_series_within_days: int,
    hold_since: date | None = None,
    last_tested_on: date | None = None,
) -> LiverTestPlan:
    """The liver tests a course needs and when.

    Required when screening found liver risk or the protocol gives frequent high doses
    (:func:`~ketapain.protocols.screening.frequent_high_dose`; Cohen 2018): LFTs and
    creatinine before session 1 (seed 002: liver and kidney function), LFTs within
    ``post_series_within_days`` after the last infusion (the clinic's window; Lee 2025
    tested within 24 h). While a liver hold stands (``hold_since``), LFTs are due weekly
    from the latest test, whatever the course (derived, clinical reference 3.3).

    >>> from ketapain.protocols.library import get_protocol
    >>> plan = liver_tests_due(protocol=get_protocol("seed-outpatient"), liver_risk=False,
    ...     first_session=date(2025, 3, 3), last_session=date(2025, 3, 13),
    ...     post_series_within_days=7)
    >>> plan.required, [(d.what, d.due_by.isoformat()) for d in plan.due]
    (True, [('baseline', '2025-03-03'), ('post_series', '2025-03-20')])
    """
    if not isinstance(liver_risk, bool):
        raise InvalidValueError("liver_risk", "true or false", liver_risk)
    start, end = (
        calendar_date(first_session, "first_session"),
        calendar_date(last_session, "last_session"),
    )
    if end < start:
        raise InvalidValueError("last_session", f"on or after first_session ({start})", end)
    window = int(_num(post_series_within_days, "post_series_within_days", 0, 365, whole=True))
    high = frequent_high_dose(protocol)
    why = [
        w
        for w, on in (
            ("liver risk found at screening", liver_risk),
            (
                "frequent high-dose infusions (5 or more within 14 days, or a "
                "continuous infusion of a day or more)",
                high,
            ),
        )
        if on
    ]
    lfts = ("alt", "ast", "bilirubin")
    due: list[TestDue] = []
    sources: list[Source] = [_LFT_GUIDE]
    if why:
        reasons = [f"Liver tests required: {' and '.join(why)}."]
        due += [
            TestDue(
                what="baseline",
                tests=(*lfts, "creatinine"),
                earliest=None,
                due_by=start,
                reason="Before session 1: baseline liver and kidney tests.",
                sources=(_LFT_GUIDE, _KIDNEY),
            ),
            TestDue(
                what="post_series",
                tests=lfts,
                earliest=end,
                due_by=end + timedelta(days=window),
                reason=f"Within {window} days after the last infusion (the clinic's window).",
                sources=(_LFT_GUIDE,),
            ),
        ]
    else:
        reasons = [
            "Liver tests not required: no liver risk and not frequent high-dose infusions "
            "(no testing is needed in healthy patients)."
        ]
        sources = [COHEN_2018.at("pre-infusion testing: none necessary in healthy patients")]
    if hold_since is not None:
        held = calendar_date(hold_since, "hold_since")
        tested = held if last_tested_on is None else calendar_date(last_tested_on, "last_tested_on")
        due.append(
            TestDue(
                what="weekly_recheck",
                tests=lfts,
                earliest=None,
                due_by=max(held, tested) + timedelta(days=_RECHECK_DAYS),
                reason=f"A liver hold stands since {held}: recheck weekly until resolved.",
                sources=(LIVER_HOLD_RULE,),
            )
        )
        reasons.append("A liver hold stands: liver tests weekly until resolved.")
        sources.append(LIVER_HOLD_RULE)
    return LiverTestPlan(
        required=bool(why) or hold_since is not None,
        reasons=tuple(reasons),
        sources=tuple(sources),
        due=tuple(due),
    )


# --- Bladder -------------------------------------------------------------------------------


def urinary_screen(items: Mapping[str, bool]) -> list[Finding]:
    """The urinary symptom screen before a session of a repeated course.

    ``items`` gives each of :data:`URINARY_ITEMS` as true (present) or false. Any
    symptom is a hard stop ``urinary_symptoms``: hold ketamine until a physician reviews.

    >>> urinary_screen(dict.fromkeys(URINARY_ITEMS, False))
    []
    """
    if not isinstance(items, Mapping):
        raise InvalidValueError("items", f"a mapping of {', '.join(URINARY_ITEMS)}", items)
    for key in items:
        if key not in URINARY_ITEMS:
            raise InvalidValueError(
                field_path("items", str(key)), f"one of {', '.join(URINARY_ITEMS)}", key
            )
    for key in URINARY_ITEMS:
        if not isinstance(items.get(key), bool):
            raise InvalidValueError(f"items.{key}", "true or false", items.get(key))
    present = [k.replace("_", " ") for k in URINARY_ITEMS if items[k]]
    if not present:
        return []
    return [
        Finding(
            severity=HARD,
            code="urinary_symptoms",
            reason=f"Urinary symptoms: {', '.join(present)}. Ketamine can injure the bladder "
            "(frequency, urgency and suprapubic pain are its commonest signs): hold ketamine "
            "until a physician reviews; stop it if the symptoms are ketamine's.",
            source=_URO_RULE,
        )
    ]
