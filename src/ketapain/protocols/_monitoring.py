"""The monitoring levels the course rules share, their sources, and checked readers.

The warn and stop levels for sedation (MOAA/S), dissociation (CADSS-6) and blood
pressure are those of the clinical reference, section 3.1 ("proposed configurable
rules"): the same defaults and the same sources as the clinic's alarm rules, which this
layer may not import. Titration, continuation and the course safety rules use them,
and read their numbers and dates with :func:`number` and :func:`calendar_date`.

>>> stops, warns = tolerability_findings(min_moaas=3, max_sbp_mmhg=185)
>>> [s for s, _ in stops], [w for w, _ in warns]
(['highest SBP 185 mmHg (above 180)'], ['lowest MOAA/S 3 (warn at 3)'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from ketapain.errors import InvalidValueError
from ketapain.protocols.citations import MO_2020
from ketapain.sources import CHERNIK_1990, RODRIGUES_2021, Source

__all__ = [
    "CADSS",
    "CHERNIK_1990",
    "DEFAULT_TOLERABILITY",
    "MONITORING_RULES",
    "MO_STOP",
    "RODRIGUES_2021",
    "SEDATION",
    "Tolerability",
    "calendar_date",
    "number",
    "tolerability_findings",
]

# The same works the clinic's alarm rules and instruments cite (this layer may not import
# the clinic).
MONITORING_RULES: Final = Source(
    authors="ketapain clinical reference, section 3.1",
    year=None,
    journal="proposed warn levels (and the DBP stop level) derived from Mo 2020, Aldrete "
    "1995, Chernik 1990 and the Spravato label; configurable",
)
MO_STOP: Final = MO_2020.at(
    "Table 1: do not give with SBP < 90 or > 180, HR < 50 or > 150, RR < 10 or > 30"
)
SEDATION: Final = CHERNIK_1990.at(
    "MOAA/S 3 responds only to loud or repeated name, 2 only to prodding or shaking; "
    "warn at 3, stop at 2 or less (clinical reference 3.1, derived)"
)
CADSS: Final = RODRIGUES_2021.at("CADSS-6 0-24; no published cut-off: the clinic sets it")
_RANGES: Final = {"moaas": (0, 5), "sbp": (40, 300), "dbp": (20, 200), "cadss6": (0, 24)}
_LEVELS: Final = (
    ("moaas", "at_or_below"),
    ("sbp", "above_mmhg"),
    ("dbp", "above_mmhg"),
    ("cadss6", "above"),
)


def number(
    value: object, field: str, low: float, high: float, *, above: bool = False, whole: bool = False
) -> float:
    """``value`` as a finite float within its range, or InvalidValueError naming ``field``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        assert isinstance(value, int | float)
        ok = (value > low if above else value >= low) and value <= high
        ok = ok and (not whole or float(value).is_integer())
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise InvalidValueError(
            field, f"{kind} {'above' if above else 'from'} {low:g} to {high:g}", value
        )
    assert isinstance(value, int | float)
    return float(value)


def calendar_date(value: object, field: str) -> date:
    """``value`` as a date, or InvalidValueError naming ``field``."""
    # A datetime is a date too, but comparing one with a date raises: refuse it here.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidValueError(field, "a calendar date (not a date and time)", value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerability:
    """Warn and stop levels for the last session (clinical reference 3.1, configurable).

    MOAA/S and blood pressure follow the monitoring rules (stop: MOAA/S 2 or less, SBP
    above 180 mmHg (Mo 2020), DBP above 110 mmHg; warn: MOAA/S 3, SBP above 160, DBP
    above 100, derived). CADSS-6 has no published cut-off: None (not checked) unless the
    clinic sets one.
    """

    moaas_stop_at_or_below: int = 2
    moaas_warn_at_or_below: int = 3
    sbp_stop_above_mmhg: float = 180.0
    sbp_warn_above_mmhg: float = 160.0
    dbp_stop_above_mmhg: float = 110.0
    dbp_warn_above_mmhg: float = 100.0
    cadss6_stop_above: float | None = None
    cadss6_warn_above: float | None = None

    def __post_init__(self) -> None:
        for kind, suffix in _LEVELS:
            stop, warn = f"{kind}_stop_{suffix}", f"{kind}_warn_{suffix}"
            s, w = getattr(self, stop), getattr(self, warn)
            low, high = _RANGES[kind]
            for field, value in ((stop, s), (warn, w)):
                if value is not None:
                    number(value, f"tolerability.{field}", low, high, whole=kind == "moaas")
            # MOAA/S falls with sedation: its warn level is at or above its stop level.
            if s is not None and w is not None and (w < s if kind == "moaas" else w > s):
                side = "at least" if kind == "moaas" else "at most"
                raise InvalidValueError(f"tolerability.{warn}", f"{side} {stop} ({s:g})", w)


DEFAULT_TOLERABILITY: Final = Tolerability()


def tolerability_findings(
    *,
    min_moaas: int | None = None,
    max_cadss6: float | None = None,
    max_sbp_mmhg: float | None = None,
    max_dbp_mmhg: float | None = None,
    tol: Tolerability = DEFAULT_TOLERABILITY,
) -> tuple[list[tuple[str, Source]], list[tuple[str, Source]]]:
    """Stop-level and warn-level findings on the last session's scores, with sources."""
    stops: list[tuple[str, Source]] = []
    warns: list[tuple[str, Source]] = []
    if min_moaas is not None:
        m = number(min_moaas, "min_moaas", 0, 5, whole=True)
        if m <= tol.moaas_stop_at_or_below:
            stops.append((f"lowest MOAA/S {m:g} (stop at {tol.moaas_stop_at_or_below})", SEDATION))
        elif m <= tol.moaas_warn_at_or_below:
            warns.append((f"lowest MOAA/S {m:g} (warn at {tol.moaas_warn_at_or_below})", SEDATION))
    highs = (
        ("SBP", "max_sbp_mmhg", max_sbp_mmhg, tol.sbp_stop_above_mmhg, tol.sbp_warn_above_mmhg),
        ("DBP", "max_dbp_mmhg", max_dbp_mmhg, tol.dbp_stop_above_mmhg, tol.dbp_warn_above_mmhg),
        ("CADSS-6", "max_cadss6", max_cadss6, tol.cadss6_stop_above, tol.cadss6_warn_above),
    )
    for label, field, value, stop, warn in highs:
        if value is None:
            continue
        v = number(value, field, *_RANGES[field.split("_")[1]])
        unit = "" if label == "CADSS-6" else " mmHg"
        stop_src = {"SBP": MO_STOP, "DBP": MONITORING_RULES}.get(label, CADSS)
        if stop is not None and v > stop:
            stops.append((f"highest {label} {v:g}{unit} (above {stop:g})", stop_src))
        elif warn is not None and v > warn:
            warn_src = CADSS if label == "CADSS-6" else MONITORING_RULES
            warns.append((f"highest {label} {v:g}{unit} (above {warn:g})", warn_src))
    return stops, warns
