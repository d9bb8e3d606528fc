"""Tests of the published figures the clinic's outcomes are set beside
(ketapain.analytics.literature): each has a source, a caveat, a sane value and a measure
that the cohort analysis computes.
"""

from __future__ import annotations

import pytest

from ketapain.analytics.literature import LITERATURE, SEED_000, SEED_002, LiteratureFigure
from ketapain.analytics.report import analyse
from ketapain.sources import Source


@pytest.mark.parametrize("figure", LITERATURE, ids=lambda f: f"{f.measure}-{f.source.short()}")
def test_every_figure_is_sourced_and_qualified(figure: LiteratureFigure) -> None:
    """A Source with authors and journal, a non-empty label and note (the caveat).

    ``value`` may be None: a source that reports no single number still shows its regimen.
    """
    assert isinstance(figure.source, Source)
    assert figure.source.authors.strip()
    assert figure.source.journal.strip()
    assert figure.note.strip()
    assert figure.label.strip()


@pytest.mark.parametrize(
    "figure", [f for f in LITERATURE if f.unit == "share"], ids=lambda f: f.measure
)
def test_shares_lie_between_0_and_1(figure: LiteratureFigure) -> None:
    """A share has a value or a range within 0..1, and low <= value <= high if given."""
    given = [v for v in (figure.low, figure.value, figure.high) if v is not None]
    assert given
    assert all(0.0 <= v <= 1.0 for v in given)
    assert given == sorted(given)


def test_units_are_known() -> None:
    """Each figure is a share, a fall in points or an NRS level."""
    assert {f.unit for f in LITERATURE} <= {"share", "points", "NRS"}


def test_every_measure_is_computed_by_the_analysis(make_cohort) -> None:
    """Every measure a figure names is a key of CohortAnalysis.measures, and is compared."""
    a = analyse(make_cohort({"nrs_end": 3.0}))
    named = {f.measure for f in LITERATURE}
    assert named <= set(a.measures)
    assert [c.figure for c in a.literature] == list(LITERATURE)
    assert all(c.clinic is a.measures[c.figure.measure] for c in a.literature)


@pytest.mark.parametrize(
    ("measure", "value", "source"),
    [
        ("responders_end_30", 0.80, SEED_000),
        ("opioid_reduced_20", 0.52, SEED_002),
        ("significant_side_effects", 0.35, SEED_002),
        ("lft_elevated", 0.10, SEED_002),
    ],
)
def test_seed_clinic_claims_are_present(measure: str, value: float, source: Source) -> None:
    """The clinic pages' claims (80% respond; 52% cut opioids by 20%; 35% significant side
    effects; about 10% liver-enzyme rises) are there with the seed pages as source."""
    hits = [f for f in LITERATURE if f.measure == measure and f.source == source]
    assert len(hits) == 1
    assert hits[0].value == value
    assert hits[0].unit == "share"


def test_seed_sources_say_where_the_claims_stand() -> None:
    """The seed pages are undated clinic pages whose locator quotes the figures."""
    assert SEED_000.year is None and SEED_002.year is None
    assert SEED_000.locator is not None and "80%" in SEED_000.locator
    assert SEED_002.locator is not None
    assert all(claim in SEED_002.locator for claim in ("52%", "35%", "10%"))


def test_as_dict(make_cohort) -> None:
    """as_dict carries the measure, the value and range, the citation and its short form."""
    d = LITERATURE[0].as_dict()
    assert set(d) == {
        "measure",
        "label",
        "unit",
        "value",
        "low",
        "high",
        "source",
        "source_short",
        "note",
    }
    assert d["source_short"] == "NY Ketamine Infusions"
    assert d["source"].startswith("NY Ketamine Infusions, n.d")
