"""Findings and overrides: how a rule says "no", "careful" or "note", and how a
clinician takes responsibility for going on.

A screening rule or a guardrail never raises on a well-formed but unsafe input: it
returns a :class:`Finding` with a severity, a stable code, a reason in plain words and
the source the rule rests on. A ``hard_stop`` blocks until a named clinician gives an
:class:`Override` with a reason; the override is kept with the finding so that the chart
and the audit log show who decided what, when and why.

>>> f = Finding(severity=Severity.HARD_STOP, code="pregnancy", reason="Pregnant.",
...             source=None)
>>> [x.code for x in blocking([f])]
['pregnancy']
>>> o = Override(code="pregnancy", clinician="Dr A. Jones", reason="termination planned")
>>> blocking(apply_overrides([f], [o]))
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ketapain.errors import InvalidValueError
from ketapain.sources import Source

__all__ = [
    "Finding",
    "Override",
    "Severity",
    "apply_overrides",
    "blocking",
    "parse_override",
    "unused_overrides",
]


class Severity(StrEnum):
    """How much a finding matters, most serious first."""

    HARD_STOP = "hard_stop"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for a hard stop, 1 for a warning, 2 for information."""
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    """A named clinician's decision to go on despite a hard stop, with the reason."""

    code: str
    clinician: str
    reason: str
    time_utc: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        for name in ("code", "clinician", "reason"):
            if not str(getattr(self, name)).strip():
                raise InvalidValueError(f"override {name}", "a non-empty text", "")
        if self.time_utc.tzinfo is None:
            raise InvalidValueError("override time_utc", "a timezone-aware time", self.time_utc)

    def as_dict(self) -> dict[str, str]:
        """JSON-ready record (the audit entry)."""
        return {
            "code": self.code,
            "clinician": self.clinician,
            "reason": self.reason,
            "time_utc": self.time_utc.isoformat(timespec="seconds"),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One result of a rule: severity, stable code, plain-words reason, source."""

    severity: Severity
    code: str
    reason: str
    source: Source | None
    override: Override | None = None

    @property
    def blocks(self) -> bool:
        """True for a hard stop no clinician has overridden."""
        return self.severity is Severity.HARD_STOP and self.override is None

    def as_dict(self) -> dict[str, Any]:
        """The JSON record: ``severity``, ``code``, ``reason``, ``source``."""
        return {
            "severity": self.severity.value,
            "code": self.code,
            "reason": self.reason,
            "source": None if self.source is None else self.source.cite(),
        }


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The hard stops that are not overridden."""
    return [f for f in findings if f.blocks]


def apply_overrides(findings: Sequence[Finding], overrides: Iterable[Override]) -> list[Finding]:
    """Attach each override to the hard stops with its code (warnings need none)."""
    by_code = {o.code: o for o in overrides}
    return [
        replace(f, override=by_code[f.code])
        if f.severity is Severity.HARD_STOP and f.code in by_code
        else f
        for f in findings
    ]


def unused_overrides(findings: Sequence[Finding], overrides: Iterable[Override]) -> list[str]:
    """Codes of overrides that match no hard stop (usually a typing error)."""
    codes = {f.code for f in findings if f.severity is Severity.HARD_STOP}
    return sorted({o.code for o in overrides} - codes)


def parse_override(text: str, *, clinician: str | None) -> Override:
    """Parse ``CODE:REASON`` as given on the command line.

    >>> parse_override("pregnancy:termination planned", clinician="Dr Jones").reason
    'termination planned'
    """
    code, sep, reason = text.partition(":")
    if not sep or not code.strip() or not reason.strip():
        raise InvalidValueError("--override", "CODE:REASON, e.g. 'pregnancy:reason'", text)
    if not clinician or not clinician.strip():
        raise InvalidValueError("--clinician", "the name of the clinician overriding", clinician)
    return Override(code=code.strip(), clinician=clinician.strip(), reason=reason.strip())
