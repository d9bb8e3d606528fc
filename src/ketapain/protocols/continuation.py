"""Continue or stop after the test infusions: the response, the tolerability, and why.

At a decision point (the seed protocol's is after infusion 2) the physician and the
patient decide whether to go on. This module computes what that decision rests on and
suggests an answer; the clinician decides.

- **Response.** The lowest NRS charted after or during the sessions so far, against the
  pre-course baseline. A fall of at least the decision point's ``response_threshold``
  (0.30 by default: "much improved", Farrar 2001, the IMMPACT moderately important
  change) or of at least 2 NRS points (Farrar 2001) is a response. A fall of 50% or more
  is reported as "substantial" (Dworkin 2008, IMMPACT). The PGIC, when charted, is
  reported beside it: "much improved" or better (PGIC 1-2) is the anchor Farrar 2001
  calibrated the 30% against.
- **Tolerability.** A severe side effect argues against continuing, whatever the
  response: the suggestion is then "stop", and the reason says that a responder may be
  reviewed by the physician (for instance at a lower dose). CADSS-6 and MOAA/S are
  reported; no published cut-off turns them into a decision here.
- **Data.** Without an NRS after a session, the suggestion is "insufficient_data".

>>> r = recommend_continuation(baseline_nrs=8, session_nrs=[6, 5],
...                            side_effects=[("nausea", "mild")], pgic=2)
>>> r.recommend, r.drop_points, r.responded_at_threshold, r.pgic_much_improved
('continue', 3.0, True, True)
>>> recommend_continuation(baseline_nrs=8, session_nrs=[]).recommend
'insufficient_data'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.protocols._monitoring import DEFAULT_TOLERABILITY, SEDATION, number
from ketapain.protocols.schema import RESPONSE_THRESHOLD
from ketapain.sources import FARRAR_2001, GUY_1976, Source

__all__ = [
    "DWORKIN_2008",
    "GUY_1976",
    "PGIC_MUCH_IMPROVED",
    "RESPONSE_FRACTION_MUCH_IMPROVED",
    "RESPONSE_FRACTION_SUBSTANTIAL",
    "RESPONSE_POINTS_MUCH_IMPROVED",
    "SEVERITIES",
    "ContinuationRecommendation",
    "recommend_continuation",
]

DWORKIN_2008: Final = Source(
    authors="Dworkin RH, Turk DC, Wyrwich KW, et al.",
    year=2008,
    journal="J Pain 9(2):105-121",
    title="Interpreting the clinical importance of treatment outcomes in chronic pain "
    "clinical trials: IMMPACT recommendations",
    doi="10.1016/j.jpain.2007.09.005",
    locator="a 30% fall is moderately important, a 50% fall substantial improvement",
)
# The same work as the clinic's PGIC instrument cites (this layer may not import it).
# Farrar 2001: a 30% fall on the 11-point NRS matched PGIC "much improved" or better.
RESPONSE_FRACTION_MUCH_IMPROVED: Final = RESPONSE_THRESHOLD
# Dworkin 2008 (IMMPACT): a 50% fall is a substantial improvement.
RESPONSE_FRACTION_SUBSTANTIAL: Final = 0.50
# Farrar 2001: a 2-point fall is the raw-score equivalent of the 30%.
RESPONSE_POINTS_MUCH_IMPROVED: Final = 2.0
# PGIC 2 ("much improved") or 1 ("very much improved"): Farrar 2001's anchor.
PGIC_MUCH_IMPROVED: Final = 2
SEVERITIES: Final = ("mild", "moderate", "severe")

_FARRAR_PCT: Final = FARRAR_2001.at(
    "a 30% NRS fall corresponds to PGIC 'much improved' or better; IMMPACT responder"
)
_FARRAR_POINTS: Final = FARRAR_2001.at("a 2-point NRS fall corresponds to 'much improved'")
_FARRAR_PGIC: Final = FARRAR_2001.at("PGIC 'much improved' or 'very much improved' as anchor")
_DWORKIN_50: Final = DWORKIN_2008.at("a 50% fall is substantial improvement")
# No published stop rule: the seed protocol's decision point asks for tolerable side
# effects, and a severe one is taken as not tolerable (the physician reviews).
_TOLERABLE: Final = Source(
    authors="NY Ketamine Infusions (seed 000); seed-outpatient protocol",
    year=None,
    journal="clinic page; decision point after infusion 2",
    locator="go on if pain fell by at least 30% or 2 NRS points and side effects were "
    "tolerable; a severe side effect is taken as not tolerable (derived)",
)
# NRS are charted in tenths at most: a tolerance far below that keeps an exact 30% fall
# (6 -> 4.2, where 0.7 x 6 is 4.199999...) on the responder side of the line.
_TOL: Final = 1e-9
_PGIC_WORDS: Final = (
    "very much improved",
    "much improved",
    "minimally improved",
    "no change",
    "minimally worse",
    "much worse",
    "very much worse",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuationRecommendation:
    """The suggestion at a decision point, the figures behind it, reasons and sources.

    ``recommend`` is ``"continue"``, ``"stop"`` or ``"insufficient_data"``. The NRS
    figures are None when no score after a session is charted. ``responded_at_threshold``
    uses the decision point's threshold; ``responded`` is True when it or the 2-point
    criterion is met.
    """

    recommend: str
    reasons: tuple[str, ...]
    baseline_nrs: float
    best_nrs: float | None
    latest_nrs: float | None
    drop_points: float | None
    drop_pct: float | None
    threshold: float
    responded_at_threshold: bool | None
    responded_50pct: bool | None
    responded_2_points: bool | None
    pgic: int | None
    pgic_much_improved: bool | None
    side_effects: tuple[tuple[str, str], ...]
    max_cadss6: float | None
    min_moaas: int | None
    sources: tuple[Source, ...]

    @property
    def responded(self) -> bool | None:
        """True when the fall meets the threshold or 2 NRS points (None without data)."""
        if self.responded_at_threshold is None:
            return None
        return bool(self.responded_at_threshold or self.responded_2_points)

    @property
    def severe_side_effects(self) -> tuple[str, ...]:
        """Names of the side effects charted as severe."""
        return tuple(name for name, sev in self.side_effects if sev == "severe")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record; ``responded`` is the test against ``threshold_pct``.

        ``side_effects`` maps each severity to the names charted with it.
        """
        return {
            "recommend": self.recommend,
            "reasons": list(self.reasons),
            "baseline_nrs": self.baseline_nrs,
            "best_nrs": self.best_nrs,
            "latest_nrs": self.latest_nrs,
            "drop_points": self.drop_points,
            "drop_pct": self.drop_pct,
            "threshold_pct": 100.0 * self.threshold,
            "responded": self.responded_at_threshold,
            "responded_50pct": self.responded_50pct,
            "responded_2_points": self.responded_2_points,
            "pgic": self.pgic,
            "pgic_much_improved": self.pgic_much_improved,
            "side_effects": {
                sev: [name for name, s in self.side_effects if s == sev] for sev in SEVERITIES
            },
            "max_cadss6": self.max_cadss6,
            "min_moaas": self.min_moaas,
            "sources": [s.cite() for s in self.sources],
        }


def _side_effects(items: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidValueError(f"side_effects[{i}]", "a pair (name, severity)", item)
        name, severity = item
        if not isinstance(name, str) or not name.strip():
            raise InvalidValueError(f"side_effects[{i}].name", "a non-empty text", name)
        if severity not in SEVERITIES:
            raise InvalidValueError(
                f"side_effects[{i}].severity", f"one of {', '.join(SEVERITIES)}", severity
            )
        out.append((" ".join(name.split()), str(severity)))
    return tuple(out)


def _unique(sources: Sequence[Source]) -> tuple[Source, ...]:
    return tuple(dict.fromkeys(sources))


def recommend_continuation(
    *,
    baseline_nrs: float,
    session_nrs: Sequence[float],
    side_effects: Sequence[tuple[str, str]] = (),
    max_cadss6: float | None = None,
    min_moaas: int | None = None,
    pgic: int | None = None,
    response_threshold: float = RESPONSE_FRACTION_MUCH_IMPROVED,
) -> ContinuationRecommendation:
    """Suggest whether to continue the course after the sessions so far.

    Parameters
    ----------
    baseline_nrs : float
        Pain before the course, NRS above 0 to 10 (a fall from 0 cannot be measured).
    session_nrs : sequence of float
        NRS (0-10) charted after or during each session so far, in time order; the
        lowest is the best, the last the latest. Empty when none is charted.
    side_effects : sequence of (str, str)
        Side effects charted: ``(name, severity)`` with severity ``"mild"``,
        ``"moderate"`` or ``"severe"``.
    max_cadss6 : float, optional
        Highest CADSS-6 charted (0-24).
    min_moaas : int, optional
        Lowest MOAA/S charted (0-5; 5 is alert).
    pgic : int, optional
        Patient Global Impression of Change, 1 (very much improved) to 7 (very much
        worse).
    response_threshold : float
        The fall from baseline that counts as a response, a fraction above 0 and below 1;
        pass the decision point's ``response_threshold`` (default 0.30, Farrar 2001).

    Returns
    -------
    ContinuationRecommendation
        ``"continue"`` when the patient responded (threshold or 2 points) with no severe
        side effect; ``"stop"`` when not responded, or on a severe side effect;
        ``"insufficient_data"`` without an NRS after a session.

    Raises
    ------
    InvalidValueError
        A score outside its scale, a side effect without a known severity, or a
        threshold outside (0, 1); the message names the field.

    Examples
    --------
    A 2-point fall from 8 is 25%, short of 30%, but meets Farrar's 2-point criterion:

    >>> r = recommend_continuation(baseline_nrs=8, session_nrs=[7, 6])
    >>> r.recommend, r.drop_pct, r.responded_at_threshold, r.responded_2_points
    ('continue', 25.0, False, True)

    A severe side effect argues against continuing despite a response:

    >>> r = recommend_continuation(baseline_nrs=7, session_nrs=[3],
    ...                            side_effects=[("hallucinations", "severe")])
    >>> r.recommend, r.reasons[0][:30]
    ('stop', 'Intolerable side effects: hall')
    """
    baseline = number(baseline_nrs, "baseline_nrs", 0, 10)
    if baseline == 0:
        raise InvalidValueError(
            "baseline_nrs", "above 0 to 10 (a fall from no pain cannot be measured)", 0
        )
    scores = [number(v, f"session_nrs[{i}]", 0, 10) for i, v in enumerate(session_nrs)]
    effects = _side_effects(side_effects)
    cadss = None if max_cadss6 is None else number(max_cadss6, "max_cadss6", 0, 24)
    moaas = None if min_moaas is None else int(number(min_moaas, "min_moaas", 0, 5, whole=True))
    pgic_v = None if pgic is None else int(number(pgic, "pgic", 1, 7, whole=True))
    t = response_threshold
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1:
        raise InvalidValueError("response_threshold", "a fraction above 0 and below 1", t)
    common: dict[str, Any] = {
        "baseline_nrs": baseline,
        "threshold": float(t),
        "pgic": pgic_v,
        "pgic_much_improved": None if pgic_v is None else pgic_v <= PGIC_MUCH_IMPROVED,
        "side_effects": effects,
        "max_cadss6": cadss,
        "min_moaas": moaas,
    }
    if not scores:
        return ContinuationRecommendation(
            recommend="insufficient_data",
            reasons=(
                "No NRS after or during a session is charted: chart the pain score before "
                "deciding.",
            ),
            best_nrs=None,
            latest_nrs=None,
            drop_points=None,
            drop_pct=None,
            responded_at_threshold=None,
            responded_50pct=None,
            responded_2_points=None,
            sources=(_FARRAR_PCT,),
            **common,
        )
    best = min(scores)
    drop = baseline - best
    at_threshold = best <= (1.0 - t) * baseline + _TOL
    two_points = drop >= RESPONSE_POINTS_MUCH_IMPROVED - _TOL
    reasons, sources = _reasons(
        baseline=baseline,
        best=best,
        latest=scores[-1],
        threshold=float(t),
        at_threshold=at_threshold,
        two_points=two_points,
        effects=effects,
        pgic=pgic_v,
        cadss=cadss,
        moaas=moaas,
    )
    severe = any(sev == "severe" for _, sev in effects)
    return ContinuationRecommendation(
        recommend="continue" if (at_threshold or two_points) and not severe else "stop",
        reasons=tuple(reasons),
        best_nrs=best,
        latest_nrs=scores[-1],
        drop_points=drop,
        drop_pct=100.0 * drop / baseline,
        responded_at_threshold=at_threshold,
        responded_50pct=best <= (1.0 - RESPONSE_FRACTION_SUBSTANTIAL) * baseline + _TOL,
        responded_2_points=two_points,
        sources=_unique(sources),
        **common,
    )


def _reasons(
    *,
    baseline: float,
    best: float,
    latest: float,
    threshold: float,
    at_threshold: bool,
    two_points: bool,
    effects: tuple[tuple[str, str], ...],
    pgic: int | None,
    cadss: float | None,
    moaas: int | None,
) -> tuple[list[str], list[Source]]:
    """Plain-words reasons, most decisive first, and the sources they rest on."""
    pct = 100.0 * (baseline - best) / baseline
    fall = f"Pain fell from {baseline:g} to {best:g} at best ({pct:.0f}%, latest {latest:g})"
    responded = at_threshold or two_points
    severe = [name for name, sev in effects if sev == "severe"]
    reasons: list[str] = []
    sources: list[Source] = [_FARRAR_PCT]
    if severe:
        tail = (
            " though pain responded: the physician reviews whether to go on, for instance "
            "at a lower dose."
            if responded
            else "."
        )
        reasons.append(
            f"Intolerable side effects: {', '.join(severe)} charted as severe. A severe side "
            f"effect argues against continuing{tail}"
        )
        sources.append(_TOLERABLE)
    if at_threshold:
        reasons.append(f"{fall}: at least {threshold:.0%}, a response (much improved).")
    elif two_points:
        reasons.append(
            f"{fall}: below {threshold:.0%} but at least "
            f"{RESPONSE_POINTS_MUCH_IMPROVED:g} points, a response (much improved)."
        )
        sources.append(_FARRAR_POINTS)
    else:
        reasons.append(
            f"{fall}: less than {threshold:.0%} and less than "
            f"{RESPONSE_POINTS_MUCH_IMPROVED:g} points, no response."
        )
        sources.append(_FARRAR_POINTS)
    if best <= (1.0 - RESPONSE_FRACTION_SUBSTANTIAL) * baseline + _TOL:
        reasons.append("The fall is at least 50%: substantial improvement.")
        sources.append(_DWORKIN_50)
    if pgic is not None:
        words = _PGIC_WORDS[pgic - 1]
        if (pgic <= PGIC_MUCH_IMPROVED) != responded:
            agree = "disagrees with the NRS: discuss with the patient before deciding"
        else:
            agree = "agrees with the NRS"
        reasons.append(f"The patient's impression of change is PGIC {pgic} ({words}); it {agree}.")
        sources += [_FARRAR_PGIC, GUY_1976]
    mild = [f"{n} ({s})" for n, s in effects if s != "severe"]
    if mild:
        reasons.append(f"Side effects charted as tolerable: {', '.join(mild)}.")
    if moaas is not None and moaas <= DEFAULT_TOLERABILITY.moaas_stop_at_or_below:
        reasons.append(
            f"Lowest MOAA/S {moaas}: sedation at the stop level of the monitoring rules; "
            "consider a lower rate if the course goes on."
        )
        sources.append(SEDATION)
    if cadss is not None:
        reasons.append(
            f"Highest CADSS-6 {cadss:g} of 24 (no published cut-off; the clinician judges)."
        )
    return reasons, sources
