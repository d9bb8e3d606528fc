"""Tests of ketapain.protocols.findings: findings, overrides and what blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ketapain.errors import InvalidValueError
from ketapain.protocols.findings import (
    Finding,
    Override,
    Severity,
    apply_overrides,
    blocking,
    parse_override,
    unused_overrides,
)
from ketapain.sources import Source

SOURCE = Source(authors="Doe J", year=2020, journal="J Pain 1:1")


def _finding(severity: Severity, code: str) -> Finding:
    return Finding(severity=severity, code=code, reason=f"{code}.", source=SOURCE)


def _override(code: str, reason: str = "benefit outweighs risk") -> Override:
    return Override(code=code, clinician="Dr A. Jones", reason=reason)


HARD = _finding(Severity.HARD_STOP, "pregnancy")
OTHER_HARD = _finding(Severity.HARD_STOP, "active_psychosis")
WARNING = _finding(Severity.WARNING, "glaucoma")
INFO = _finding(Severity.INFO, "evidence_crps_1")


def test_severity_rank_orders_most_serious_first():
    """hard_stop ranks 0, warning 1, info 2."""
    assert [s.rank for s in (Severity.HARD_STOP, Severity.WARNING, Severity.INFO)] == [0, 1, 2]
    assert [s.value for s in Severity] == ["hard_stop", "warning", "info"]


def test_only_hard_stops_block():
    """A hard stop blocks; warnings and information do not."""
    assert HARD.blocks
    assert not WARNING.blocks
    assert not INFO.blocks
    assert blocking([INFO, HARD, WARNING, OTHER_HARD]) == [HARD, OTHER_HARD]
    assert blocking([INFO, WARNING]) == []


def test_override_attaches_to_hard_stops_with_its_code():
    """An override unblocks the hard stops with its code and leaves every other finding alone."""
    override = _override("pregnancy")
    out = apply_overrides([HARD, OTHER_HARD, WARNING, INFO], [override])
    assert out[0].override is override
    assert not out[0].blocks
    assert out[1:] == [OTHER_HARD, WARNING, INFO]
    assert blocking(out) == [OTHER_HARD]


def test_override_of_a_warning_code_changes_nothing():
    """Warnings need no override: an override with a warning's code is not attached."""
    out = apply_overrides([WARNING], [_override("glaucoma")])
    assert out == [WARNING]
    assert out[0].override is None


def test_every_hard_stop_with_the_code_is_overridden():
    """Two hard stops with one code (two sessions) are both overridden by one override."""
    twice = [HARD, _finding(Severity.HARD_STOP, "pregnancy")]
    assert blocking(apply_overrides(twice, [_override("pregnancy")])) == []


def test_unused_overrides_are_reported():
    """Overrides matching no hard stop (a warning's code, a typo) are listed, sorted."""
    overrides = [_override("pregnancy"), _override("pregnacy"), _override("glaucoma")]
    assert unused_overrides([HARD, WARNING], overrides) == ["glaucoma", "pregnacy"]
    assert unused_overrides([HARD], [_override("pregnancy")]) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"code": " "}, "override code"),
        ({"clinician": ""}, "override clinician"),
        ({"reason": "   "}, "override reason"),
        ({"time_utc": datetime(2026, 1, 5, 9, 0)}, "override time_utc"),
    ],
)
def test_override_requires_code_clinician_reason_and_an_aware_time(kwargs, field):
    """An override without a code, clinician or reason, or with a naive time, is refused."""
    values = {"code": "pregnancy", "clinician": "Dr A. Jones", "reason": "planned"} | kwargs
    with pytest.raises(InvalidValueError) as info:
        Override(**values)
    assert info.value.field == field


def test_override_time_defaults_to_now_in_utc():
    """Without a time the override is stamped now, in UTC."""
    before = datetime.now(UTC)
    override = _override("pregnancy")
    after = datetime.now(UTC)
    assert override.time_utc.tzinfo is not None
    assert before <= override.time_utc <= after


def test_override_as_dict_is_the_audit_entry():
    """code, clinician, reason and the ISO time to the second."""
    tz = timezone(timedelta(hours=1))
    override = Override(
        code="pregnancy",
        clinician="Dr A. Jones",
        reason="termination planned",
        time_utc=datetime(2026, 1, 5, 9, 30, 15, 999, tzinfo=tz),
    )
    assert override.as_dict() == {
        "code": "pregnancy",
        "clinician": "Dr A. Jones",
        "reason": "termination planned",
        "time_utc": "2026-01-05T09:30:15+01:00",
    }


def test_finding_as_dict():
    """severity, code, reason and the cited source (None without one)."""
    assert HARD.as_dict() == {
        "severity": "hard_stop",
        "code": "pregnancy",
        "reason": "pregnancy.",
        "source": SOURCE.cite(),
    }
    no_source = Finding(severity=Severity.INFO, code="x", reason="y", source=None)
    assert no_source.as_dict()["source"] is None


def test_parse_override():
    """CODE:REASON with surrounding spaces stripped; the reason may contain colons."""
    override = parse_override(" pregnancy : termination planned: 12:00 ", clinician=" Dr Jones ")
    assert override.code == "pregnancy"
    assert override.reason == "termination planned: 12:00"
    assert override.clinician == "Dr Jones"


@pytest.mark.parametrize("text", ["pregnancy", "pregnancy:", ":reason", " : ", ""])
def test_parse_override_refuses_text_without_code_and_reason(text):
    """Text that is not CODE:REASON names --override."""
    with pytest.raises(InvalidValueError) as info:
        parse_override(text, clinician="Dr Jones")
    assert info.value.field == "--override"


@pytest.mark.parametrize("clinician", [None, "", "  "])
def test_parse_override_needs_a_clinician(clinician):
    """An override without a clinician's name names --clinician."""
    with pytest.raises(InvalidValueError) as info:
        parse_override("pregnancy:planned", clinician=clinician)
    assert info.value.field == "--clinician"
