"""Tests of the response threshold of a decision point and the relapse fraction of a
protocol: defaults, validation in the schema, and parsing from protocol files."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from ketapain.errors import InvalidValueError, ModelFileError
from ketapain.protocols.library import get_protocol, list_protocols, load_protocol_file
from ketapain.protocols.schema import DecisionPoint

MINIMAL = """\
name = "clinic-course"
title = "Clinic course"
drug = "racemic"
model = "domino-cl79"
{top}

[[phases]]
name = "series"
sessions = 2
doses = [{{ route = "iv_infusion", start_h = 9.0, duration_h = 4.0, rate_mg_per_kg_h = 0.3 }}]

[[decision_points]]
after_session = 2
decision = "Continue?"
criterion = "relief"
{point}
"""


def _write(tmp_path: Path, *, top: str = "", point: str = "") -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(MINIMAL.format(top=top, point=point), encoding="utf-8")
    return path


def _raises_naming(path: Path, field: str):
    """pytest.raises for a ModelFileError whose message starts with the file and field."""
    return pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: {re.escape(field)} ")


def _point(**changes) -> DecisionPoint:
    return DecisionPoint(after_session=2, decision="Continue?", criterion="relief", **changes)


# --- schema --------------------------------------------------------------------------------


def test_decision_point_threshold_defaults_to_thirty_percent():
    """Without a threshold a decision point uses 0.30 (Farrar 2001, "much improved")."""
    assert _point().response_threshold == 0.30


@pytest.mark.parametrize("value", [0.01, 0.5, 0.99])
def test_decision_point_accepts_a_fraction_strictly_between_0_and_1(value):
    """Any fraction above 0 and below 1 is a threshold."""
    assert _point(response_threshold=value).response_threshold == value


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5, math.nan, True, "0.3"])
def test_decision_point_refuses_a_threshold_outside_0_1(value):
    """0, 1, negatives, NaN, booleans and text are refused, naming the field."""
    with pytest.raises(InvalidValueError) as info:
        _point(response_threshold=value)
    assert info.value.field == "decision_points.response_threshold"


def test_protocol_relapse_fraction_defaults_to_seventy_percent():
    """Every built-in protocol keeps the default 0.70 (relief below 30%)."""
    assert {p.relapse_fraction for p in list_protocols()} == {0.70}


@pytest.mark.parametrize("value", [0.5, 1.0])
def test_protocol_accepts_a_relapse_fraction_up_to_1(value):
    """1.0 (relapse only above the baseline) is allowed."""
    p = dataclasses.replace(get_protocol("seed-outpatient"), relapse_fraction=value)
    assert p.relapse_fraction == value


@pytest.mark.parametrize("value", [0.0, -0.2, 1.01, math.inf, False])
def test_protocol_refuses_a_relapse_fraction_outside_0_1(value):
    """0, negatives, above 1, infinity and booleans are refused, naming the field."""
    with pytest.raises(InvalidValueError) as info:
        dataclasses.replace(get_protocol("seed-outpatient"), relapse_fraction=value)
    assert info.value.field == "relapse_fraction"


# --- protocol files ------------------------------------------------------------------------


def test_file_without_the_new_keys_uses_the_defaults(tmp_path):
    """A file that names neither key gets 0.30 and 0.70."""
    p = load_protocol_file(_write(tmp_path))
    assert p.decision_points[0].response_threshold == 0.30
    assert p.relapse_fraction == 0.70


def test_file_sets_both_keys(tmp_path):
    """response_threshold in a decision point and top-level relapse_fraction are read."""
    path = _write(tmp_path, top="relapse_fraction = 0.8", point="response_threshold = 0.5")
    p = load_protocol_file(path)
    assert p.decision_points[0].response_threshold == 0.5
    assert p.relapse_fraction == 0.8


def test_integer_relapse_fraction_of_1_is_read_as_a_number(tmp_path):
    """``relapse_fraction = 1`` (a TOML integer) is the fraction 1.0."""
    p = load_protocol_file(_write(tmp_path, top="relapse_fraction = 1"))
    assert p.relapse_fraction == 1.0


@pytest.mark.parametrize("value", ["1.0", "1", "0", "-0.3", '"0.3"', "true", "nan"])
def test_file_refuses_a_bad_threshold_naming_the_decision_point(tmp_path, value):
    """A threshold of 1, 0, a negative, text, a boolean or NaN names decision_points[0]."""
    path = _write(tmp_path, point=f"response_threshold = {value}")
    with _raises_naming(path, "decision_points[0].response_threshold"):
        load_protocol_file(path)


@pytest.mark.parametrize("value", ["0", "1.5", '"0.7"', "false", "inf"])
def test_file_refuses_a_bad_relapse_fraction(tmp_path, value):
    """A relapse fraction of 0, above 1, text, a boolean or infinity names the field."""
    path = _write(tmp_path, top=f"relapse_fraction = {value}")
    with _raises_naming(path, "relapse_fraction"):
        load_protocol_file(path)


def test_file_still_refuses_unknown_decision_point_keys(tmp_path):
    """Adding response_threshold did not open the table to any other key."""
    path = _write(tmp_path, point="threshold = 0.3")
    with _raises_naming(path, "decision_points[0].threshold"):
        load_protocol_file(path)
