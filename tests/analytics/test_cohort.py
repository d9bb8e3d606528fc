"""Tests of the analysis table (ketapain.analytics.cohort): schema, checks, filters, export."""

from __future__ import annotations

import re
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ketapain.analytics.cohort import (
    AGE_CAP_Y,
    COLUMNS,
    CohortFilter,
    check_cohort,
    deidentify,
    empty_cohort,
    filter_cohort,
)
from ketapain.errors import InvalidValueError

NAMES = [c.name for c in COLUMNS]


def test_check_cohort_accepts_a_valid_table_and_orders_its_columns(make_cohort) -> None:
    """A valid table comes back whole, its columns in COLUMNS order whatever order it had."""
    table = make_cohort({"nrs_end": 4.0}, {"nrs_end": 6.0})
    shuffled = table.select(list(reversed(table.columns)))
    out = check_cohort(shuffled)
    assert out.columns == NAMES
    assert_frame_equal(out, table)


def test_check_cohort_drops_columns_not_in_the_schema(make_cohort) -> None:
    """A column beyond COLUMNS (here a name) does not travel on into the analysis."""
    table = make_cohort({}).with_columns(pl.lit("Jane Doe").alias("patient_name"))
    assert check_cohort(table).columns == NAMES


def test_empty_cohort_has_every_column_with_its_type() -> None:
    """empty_cohort() is the schema: every column, its dtype, no rows; and it is valid."""
    e = empty_cohort()
    assert e.height == 0
    assert dict(e.schema) == {c.name: c.dtype for c in COLUMNS}
    assert check_cohort(e).height == 0


def test_missing_column_is_named(make_cohort) -> None:
    """A table without a column raises InvalidValueError whose field is that column."""
    table = make_cohort({}).drop("baseline_nrs")
    with pytest.raises(InvalidValueError) as err:
        check_cohort(table)
    assert err.value.field == "baseline_nrs"
    assert err.value.value == "missing"


def test_wrong_dtype_is_named(make_cohort) -> None:
    """An integer age stored as Float64 is refused, naming age_y and the type given."""
    table = make_cohort({}).with_columns(pl.col("age_y").cast(pl.Float64))
    with pytest.raises(InvalidValueError) as err:
        check_cohort(table)
    assert err.value.field == "age_y"
    assert "Float64" in str(err.value.value)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("baseline_nrs", 11.0),
        ("nrs_end", -1.0),
        ("nrs_week_4", 10.5),
        ("predicted_nrs_week_12", -0.1),
        ("dose_mg", -5.0),
        ("relief_lost_day", -1.0),
    ],
)
def test_out_of_range_number_is_named(make_cohort, column: str, value: float) -> None:
    """An NRS outside 0-10 or a negative amount or day is refused, naming column and value."""
    table = make_cohort({}, {column: value})
    with pytest.raises(InvalidValueError) as err:
        check_cohort(table)
    assert err.value.field == column
    assert err.value.value == value


def test_age_over_the_cap_is_refused(make_cohort) -> None:
    """Ages read 90 for 90 and over (HIPAA): 90 passes, 91 is refused naming age_y."""
    check_cohort(make_cohort({"age_y": AGE_CAP_Y}))
    with pytest.raises(InvalidValueError) as err:
        check_cohort(make_cohort({"age_y": AGE_CAP_Y + 1}))
    assert err.value.field == "age_y"


def test_negative_count_is_refused(make_cohort) -> None:
    """A negative count of sessions given is refused, naming sessions_given."""
    with pytest.raises(InvalidValueError) as err:
        check_cohort(make_cohort({"sessions_given": -1}))
    assert err.value.field == "sessions_given"


@pytest.mark.parametrize("column", ["nrs_end", "infusion_h", "mme_before"])
def test_nan_is_refused(make_cohort, column: str) -> None:
    """A NaN is not a number in range: refused naming the column (use null for unknown)."""
    table = make_cohort({}, {column: float("nan")})
    with pytest.raises(InvalidValueError) as err:
        check_cohort(table)
    assert err.value.field == column


def test_nulls_pass(make_cohort) -> None:
    """A course not yet followed up has nulls in numbers, dates and flags: that is valid."""
    nullable = ["age_y", "start_date", "baseline_nrs", "nrs_end", "mme_before", "lft_checked"]
    table = make_cohort(dict.fromkeys(nullable))
    out = check_cohort(table)
    assert out.height == 1
    assert all(out.get_column(n).null_count() == 1 for n in nullable)


def test_filter_refuses_an_end_before_its_start() -> None:
    """CohortFilter with start_to before start_from raises naming start_to; equal is fine."""
    with pytest.raises(InvalidValueError) as err:
        CohortFilter(start_from=date(2024, 3, 1), start_to=date(2024, 2, 29))
    assert err.value.field == "start_to"
    CohortFilter(start_from=date(2024, 3, 1), start_to=date(2024, 3, 1))


DATED = [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)]


def _keys(table: pl.DataFrame) -> list[str]:
    return table.get_column("course_key").to_list()


def test_filter_by_dates_includes_both_bounds(make_cohort) -> None:
    """Courses starting on start_from or on start_to are in; the day before or after is not."""
    table = make_cohort(*({"start_date": d} for d in DATED))
    f = CohortFilter(start_from=date(2024, 2, 1), start_to=date(2024, 3, 1))
    assert _keys(filter_cohort(table, f)) == ["c1", "c2"]
    assert _keys(filter_cohort(table, CohortFilter(start_from=date(2024, 2, 2)))) == ["c2", "c3"]
    assert _keys(filter_cohort(table, CohortFilter(start_to=date(2024, 1, 31)))) == ["c0"]


def test_filter_by_protocols_and_diagnoses(make_cohort) -> None:
    """Protocols and diagnoses select any of the names given; both together intersect."""
    table = make_cohort(
        {"protocol": "outpatient", "diagnosis": "crps"},
        {"protocol": "inpatient", "diagnosis": "crps"},
        {"protocol": "outpatient", "diagnosis": "fibromyalgia"},
        {"protocol": "other", "diagnosis": "neuropathic"},
    )
    assert _keys(filter_cohort(table, CohortFilter(protocols=("outpatient",)))) == ["c0", "c2"]
    both = CohortFilter(protocols=("outpatient", "inpatient"))
    assert _keys(filter_cohort(table, both)) == ["c0", "c1", "c2"]
    f = CohortFilter(diagnoses=("fibromyalgia", "neuropathic"))
    assert _keys(filter_cohort(table, f)) == ["c2", "c3"]
    f = CohortFilter(protocols=("outpatient",), diagnoses=("crps",))
    assert _keys(filter_cohort(table, f)) == ["c0"]


def test_empty_filter_keeps_every_course(make_cohort) -> None:
    """The default filter selects all courses and says so."""
    table = make_cohort({}, {}, {})
    assert_frame_equal(filter_cohort(table, CohortFilter()), table)
    assert CohortFilter().describe() == "all courses"


@pytest.mark.parametrize(
    ("f", "text"),
    [
        (
            CohortFilter(start_from=date(2024, 1, 1), start_to=date(2024, 6, 30)),
            "courses starting 2024-01-01 to 2024-06-30",
        ),
        (CohortFilter(start_from=date(2024, 1, 1)), "courses starting 2024-01-01 to today"),
        (
            CohortFilter(start_to=date(2024, 6, 30)),
            "courses starting the first course to 2024-06-30",
        ),
        (
            CohortFilter(protocols=("outpatient", "inpatient"), diagnoses=("crps",)),
            "protocol outpatient, inpatient; diagnosis crps",
        ),
    ],
)
def test_describe(f: CohortFilter, text: str) -> None:
    """describe() words the filter for a report's heading."""
    assert f.describe() == text


def test_deidentify_keeps_only_the_year(make_cohort) -> None:
    """start_date becomes start_year (Int64) in its place; every other column is unchanged."""
    table = make_cohort({"start_date": date(2023, 12, 31)}, {"start_date": date(2024, 1, 1)})
    out = deidentify(table)
    assert "start_date" not in out.columns
    expected = ["start_year" if n == "start_date" else n for n in NAMES]
    assert out.columns == expected
    assert out.schema["start_year"] == pl.Int64
    assert out.get_column("start_year").to_list() == [2023, 2024]
    others = [n for n in NAMES if n != "start_date"]
    assert_frame_equal(out.select(others), table.select(others))


def test_deidentify_checks_the_table(make_cohort) -> None:
    """An invalid table is refused before export, naming the column."""
    with pytest.raises(InvalidValueError) as err:
        deidentify(make_cohort({"nrs_end": 12.0}))
    assert err.value.field == "nrs_end"


def test_no_column_names_a_direct_identifier() -> None:
    """No column is named like a HIPAA direct identifier (name, MRN, birth date, address)."""
    pattern = re.compile(r"name|mrn|birth|dob|address|phone|email|ssn|zip", re.IGNORECASE)
    assert [n for n in NAMES if pattern.search(n)] == []
    assert len(set(NAMES)) == len(NAMES)


def test_every_column_is_documented() -> None:
    """Every column has a description; numeric ranges are ordered where both bounds exist."""
    for c in COLUMNS:
        assert c.description
        if c.low is not None and c.high is not None:
            assert c.low < c.high
