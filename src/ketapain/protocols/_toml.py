"""Checked readers for values in protocol and drug-library TOML tables.

Each reader names the field (with its path in the file) and the allowed values when it
refuses a value; the file name is added by the loader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ketapain import _files
from ketapain.errors import InvalidValueError
from ketapain.sources import Source

SOURCE_KEYS = frozenset({"authors", "year", "journal", "title", "doi", "locator"})


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; errors name the file."""
    try:
        return _files.read_toml(path, "(file)", prefix=True)
    except (FileNotFoundError, IsADirectoryError):
        raise InvalidValueError("file", "an existing TOML file", str(path)) from None


def table(value: object, field: str) -> Mapping[str, Any]:
    """``value`` as a table."""
    if not isinstance(value, Mapping):
        raise InvalidValueError(field, "a table", value)
    return value


def keys(data: Mapping[str, Any], field: str, allowed: set[str] | frozenset[str]) -> None:
    """Refuse keys outside ``allowed``."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        name = _files.key_name(unknown[0])
        where = f"{field}.{name}" if field else name
        raise InvalidValueError(where, f"one of {', '.join(sorted(allowed))}", "given")


def text(data: Mapping[str, Any], key: str, field: str, *, default: str | None = None) -> str:
    """A non-empty string (whitespace collapsed)."""
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{field}{key}", "a non-empty string", value)
    return " ".join(value.split())


def number(
    data: Mapping[str, Any],
    key: str,
    field: str,
    *,
    low: float,
    high: float,
    default: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite number within ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    value = data.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = "above" if low_open else "from"
        raise InvalidValueError(f"{field}{key}", f"a number {lo} {low:g} to {high:g}", value)
    assert isinstance(value, int | float)
    return float(value)


def integer(
    data: Mapping[str, Any], key: str, field: str, *, low: int, high: int, default: int
) -> int:
    """A whole number within ``[low, high]``."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValueError(f"{field}{key}", f"a whole number from {low} to {high}", value)
    return value


def flag(data: Mapping[str, Any], key: str, field: str, *, default: bool) -> bool:
    """true or false."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidValueError(f"{field}{key}", "true or false", value)
    return value


def source(item: object, field: str) -> Source:
    """A citation table: ``authors`` and any of year, journal, title, doi, locator."""
    if not isinstance(item, Mapping) or not set(item) <= SOURCE_KEYS or "authors" not in item:
        raise InvalidValueError(
            field, f"a table with authors and any of {', '.join(sorted(SOURCE_KEYS))}", item
        )
    year = item.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise InvalidValueError(f"{field}.year", "a whole year", year)
    return Source(
        authors=str(item["authors"]),
        year=year,
        journal=str(item.get("journal", "")),
        title=str(item.get("title", "")),
        doi=item.get("doi"),
        locator=item.get("locator"),
    )


def optional_source(data: Mapping[str, Any], field: str) -> Source | None:
    """The ``source`` table of ``data``, if any."""
    return None if "source" not in data else source(data["source"], f"{field}source")
