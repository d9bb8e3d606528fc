"""Tests of ketapain.errors: the exception tree and its messages."""

from __future__ import annotations

import warnings

import pytest

from ketapain import errors
from ketapain.errors import (
    ExtrapolationWarning,
    InvalidValueError,
    KetapainError,
    KetapainWarning,
    ModelFileError,
    SimulationError,
    UnknownNameError,
)


def test_invalid_value_message_names_field_range_and_value():
    """The message is '<field> must be <allowed>; got <value!r>'."""
    err = InvalidValueError("weight_kg", "at least 2 and at most 400", 700.0)
    assert str(err) == "weight_kg must be at least 2 and at most 400; got 700.0"
    assert (err.field, err.allowed, err.value) == ("weight_kg", "at least 2 and at most 400", 700.0)
    assert "'70 kg'" in str(InvalidValueError("weight_kg", "a number", "70 kg"))


def test_model_file_error_names_the_file():
    """ModelFileError prefixes the path and is still an InvalidValueError."""
    err = ModelFileError("models/my.toml", "cl_l_per_h", "greater than 0", -1)
    assert str(err) == "models/my.toml: cl_l_per_h must be greater than 0; got -1"
    assert err.path == "models/my.toml" and err.field == "cl_l_per_h"
    assert isinstance(err, InvalidValueError)


def test_unknown_name_lists_known_names_sorted():
    """UnknownNameError prints plainly (not as a repr) with the known names sorted."""
    err = UnknownNameError("model", "x", ["b", "a"])
    assert str(err) == "unknown model 'x'; known: a, b"
    assert isinstance(err, LookupError)


def test_tree():
    """Every error derives from KetapainError and the standard class it refines."""
    assert issubclass(InvalidValueError, KetapainError)
    assert issubclass(InvalidValueError, ValueError)
    assert issubclass(ModelFileError, InvalidValueError)
    assert issubclass(UnknownNameError, KetapainError)
    assert issubclass(SimulationError, KetapainError)
    assert issubclass(ExtrapolationWarning, KetapainWarning)
    assert issubclass(KetapainWarning, UserWarning)
    assert issubclass(errors.RecordNotFoundError, errors.RecordError)
    assert issubclass(errors.RecordNotFoundError, LookupError)
    assert issubclass(errors.HardStopError, errors.ConflictError)
    assert issubclass(errors.AccessDeniedError, PermissionError)
    assert issubclass(errors.RecordError, KetapainError)
    assert set(errors.__all__) == {
        "AccessDeniedError",
        "AppendOnlyError",
        "AuthenticationError",
        "ConflictError",
        "HardStopError",
        "RecordError",
        "RecordNotFoundError",
        "ExtrapolationWarning",
        "InvalidValueError",
        "KetapainError",
        "KetapainWarning",
        "ModelFileError",
        "SimulationError",
        "UnknownNameError",
        "field_path",
        "key_name",
    }


def test_field_path_names_any_key_on_one_line():
    """Plain keys are joined with dots; any other key is quoted with its escapes."""
    assert errors.field_path("events", 0, "rate_mg_per_h") == "events.0.rate_mg_per_h"
    assert errors.field_path("changes", "") == "changes['']"
    assert errors.field_path(" ") == "[' ']"
    assert errors.field_path("a\nb") == "['a\\nb']"
    assert "\n" not in errors.field_path("x", "a\nb")
    assert errors.key_name("drug-library") == "drug-library"


def test_extrapolation_warning_can_be_filtered_precisely():
    """A filter on ExtrapolationWarning silences it without silencing other warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        warnings.warn("outside range", ExtrapolationWarning, stacklevel=1)
        with pytest.warns(UserWarning, match="other"):
            warnings.warn("other", UserWarning, stacklevel=1)


def test_record_errors_carry_their_fields():
    """Conflicts name the field; a refusal names the role and action in words."""
    err = errors.AccessDeniedError("front_desk", "read_clinical", "schedules only")
    assert str(err) == "a front desk may not read clinical: schedules only"
    assert (err.role, err.action, err.audited) == ("front_desk", "read_clinical", False)
    assert str(errors.RecordNotFoundError("patient", 7)) == "no patient with id 7"
    stop = errors.HardStopError("rate_mg_per_h", "above the hard maximum", ("f",))
    assert (stop.field, stop.findings) == ("rate_mg_per_h", ("f",))
