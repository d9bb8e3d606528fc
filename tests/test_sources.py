"""Tests of ketapain.sources: citations as data."""

from __future__ import annotations

import dataclasses

import pytest

from ketapain import sources
from ketapain.sources import DOMINO_1984, KAMP_2020, Source


def test_cite_short_and_dict():
    """cite() is 'authors, year. journal'; short() is 'FirstAuthor year'."""
    assert KAMP_2020.cite().startswith("Kamp J, Olofsen E")
    assert KAMP_2020.cite().endswith("2020. Anesthesiology 133(6):1192-1213")
    assert DOMINO_1984.short() == "Domino 1984"
    data = KAMP_2020.as_dict()
    assert data["citation"] == KAMP_2020.cite()
    assert data["year"] == 2020


def test_at_points_elsewhere_in_the_same_work():
    """at() keeps the work and changes only the locator."""
    moved = DOMINO_1984.at("Table 2")
    assert moved.locator == "Table 2"
    assert dataclasses.replace(moved, locator=DOMINO_1984.locator) == DOMINO_1984


def test_sources_are_frozen():
    """A Source cannot be changed in place."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        DOMINO_1984.year = 1991  # type: ignore[misc]


def test_catalogue_entries_are_complete():
    """Every catalogued work has authors, a plausible year, a journal and a locator."""
    for name in sources.__all__:
        value = getattr(sources, name)
        if isinstance(value, Source):
            assert value.authors and value.journal and value.locator, name
            assert 1950 < value.year < 2030, name
