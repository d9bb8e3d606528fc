"""The protocol library: declarative TOML files and their loader.

A protocol file describes one treatment course: the doses of a session (the schedule JSON
keys, times in hours from midnight of the session day), the days the session is given,
the drug and the PK model it is planned with, an optional absolute rate cap and its
sources. Built-in protocols live in ``ketapain/protocols/library/``; a clinic adds its
own by passing a file path. Errors name the file, the field and the allowed values.

File format::

    name = "ten-weekdays"                 # lower-case letters, digits and dashes
    title = "10 weekdays, 4 h/day"
    drug = "racemic"                      # or "s-ketamine"
    model = "domino-cl79"                 # a name from `ketapain models`
    max_rate_mg_per_h = 25.0              # optional cap on every infusion rate
    description = "..."

    [series]
    weekdays = 10                         # or: days = [0, 1, 2] (day offsets)

    [[doses]]                             # as in a schedule JSON file
    route = "iv_infusion"
    start_h = 9.0
    duration_h = 4.0
    rate_mg_per_kg_h = 0.35

    [[sources]]
    authors = "Schwartzman RJ, et al."
    year = 2009
    journal = "Pain 147(1-3):107-115"

A rate cap is applied through the dosing weight: a patient is dosed as if they weighed
``min(weight, cap / highest per-kg rate)``, which caps the highest step exactly and scales
lower steps in proportion.

>>> p = get_protocol("ten-weekdays")
>>> p.schedule().end_h()  # 9:00-13:00 on day 11 (second Friday)
277.0
>>> [round(float(w), 1) for w in p.dosing_weight_kg(np.array([60.0, 90.0]))]
[60.0, 71.4]
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np

from ketapain.errors import InvalidValueError, ModelFileError, UnknownNameError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.model import Drug, PKModel
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.schedules import Schedule, weekdays
from ketapain.sources import Source

__all__ = [
    "LIBRARY_DIR",
    "Protocol",
    "get_protocol",
    "list_protocols",
    "load_protocol_file",
]

LIBRARY_DIR: Final = Path(__file__).with_name("library")
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_KEYS: Final = {
    "name",
    "title",
    "drug",
    "model",
    "max_rate_mg_per_h",
    "description",
    "series",
    "doses",
    "sources",
}
_SOURCE_KEYS: Final = {"authors", "year", "journal", "title", "doi", "locator"}
_MAX_DAYS: Final = 366


@dataclass(frozen=True, slots=True, kw_only=True)
class Protocol:
    """A treatment course: one session's doses, the days it is given, and its sources."""

    name: str
    title: str
    drug: Drug
    model: str
    session: Schedule
    days: tuple[int, ...]
    max_rate_mg_per_h: float | None = None
    description: str = ""
    sources: tuple[Source, ...] = ()
    path: Path | None = None

    def schedule(self) -> Schedule:
        """The whole course, hours from midnight of the first day."""
        return self.session.repeat_on_days(self.days)

    def pk_model(self) -> PKModel:
        """The PK model the protocol is planned with."""
        return get_model(self.model)

    @property
    def dosing_weight_cap_kg(self) -> float | None:
        """Weight above which the rate cap binds (cap / highest mg/kg/h rate), or None."""
        per_kg = [d.rate_mg_per_kg_h for d in self.session.infusions if d.rate_mg_per_kg_h]
        if self.max_rate_mg_per_h is None or not per_kg:
            return None
        return self.max_rate_mg_per_h / max(per_kg)

    def dosing_weight_kg(self, weight_kg: FloatArray) -> FloatArray:
        """Weights that apply the rate cap (see module docstring)."""
        w = np.asarray(weight_kg, dtype=float)
        cap = self.dosing_weight_cap_kg
        return w if cap is None else np.minimum(w, cap)

    def total_dose_mg(self, weight_kg: float) -> float:
        """Total dose of the course for a patient of ``weight_kg``, mg."""
        dosing = float(self.dosing_weight_kg(np.array([weight_kg]))[0])
        return self.schedule().total_dose_mg(weight_kg=dosing)


def load_protocol_file(path: str | Path) -> Protocol:
    """Read and validate a protocol TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        raise InvalidValueError("protocol file", "an existing file", str(p)) from None
    except UnicodeDecodeError:
        raise ModelFileError(str(p), "(file)", "UTF-8 text", "undecodable bytes") from None
    except tomllib.TOMLDecodeError as err:
        raise ModelFileError(str(p), "(file)", f"valid TOML ({err})", "...") from None
    try:
        return _parse(data, p)
    except ModelFileError:
        raise
    except InvalidValueError as err:
        raise ModelFileError(str(p), err.field, err.allowed, err.value) from None


def _parse(data: dict[str, Any], path: Path) -> Protocol:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InvalidValueError(unknown[0], f"one of {', '.join(sorted(_KEYS))}", "given")
    name = _text(data, "name")
    if not _NAME.match(name):
        raise InvalidValueError("name", "lower-case letters, digits and dashes", name)
    drug_text = data.get("drug")
    try:
        drug = Drug(str(drug_text))
    except ValueError:
        raise InvalidValueError(
            "drug", f"one of {', '.join(d.value for d in Drug)}", drug_text
        ) from None
    model = _text(data, "model")
    try:
        pk = get_model(model)
    except UnknownNameError as err:
        raise InvalidValueError("model", f"one of {', '.join(err.known)}", model) from None
    if pk.drug is not drug:
        raise InvalidValueError("model", f"a {drug.value} model", f"{model} ({pk.drug.value})")
    cap = data.get("max_rate_mg_per_h")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 < cap <= 1000
    ):
        raise InvalidValueError("max_rate_mg_per_h", "a number above 0 and at most 1000", cap)
    session = Schedule.from_dict({"doses": data.get("doses", [])})
    if not session.doses:
        raise InvalidValueError("doses", "at least one dose", [])
    return Protocol(
        name=name,
        title=_text(data, "title"),
        drug=drug,
        model=model,
        session=session,
        days=_days(data.get("series", {"days": [0]})),
        max_rate_mg_per_h=None if cap is None else float(cap),
        description=" ".join(str(data.get("description", "")).split()),
        sources=tuple(_source(s, i) for i, s in enumerate(data.get("sources", []))),
        path=path,
    )


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(key, "a non-empty string", value)
    return value.strip()


def _days(series: object) -> tuple[int, ...]:
    if not isinstance(series, dict) or len(series) != 1 or not set(series) <= {"days", "weekdays"}:
        raise InvalidValueError("series", 'a table with one key, "days" or "weekdays"', series)
    if "weekdays" in series:
        n = series["weekdays"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 260:
            raise InvalidValueError("series.weekdays", "an integer from 1 to 260", n)
        return weekdays(n)
    days = series["days"]
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in days)
        or sorted(set(days)) != days
        or days[0] < 0
        or days[-1] > _MAX_DAYS
    ):
        raise InvalidValueError(
            "series.days", f"increasing whole day offsets from 0 to {_MAX_DAYS}", days
        )
    return tuple(days)


def _source(item: object, i: int) -> Source:
    if not isinstance(item, dict) or not set(item) <= _SOURCE_KEYS or "authors" not in item:
        raise InvalidValueError(
            f"sources[{i}]", f"a table with authors and any of {sorted(_SOURCE_KEYS)}", item
        )
    year = item.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise InvalidValueError(f"sources[{i}].year", "a whole year", year)
    return Source(
        authors=str(item["authors"]),
        year=year,
        journal=str(item.get("journal", "")),
        title=str(item.get("title", "")),
        doi=item.get("doi"),
        locator=item.get("locator"),
    )


@cache
def _builtin() -> dict[str, Protocol]:
    out = {}
    for path in sorted(LIBRARY_DIR.glob("*.toml")):
        protocol = load_protocol_file(path)
        out[protocol.name] = protocol
    return out


def list_protocols() -> list[Protocol]:
    """Built-in protocols, sorted by name."""
    return list(_builtin().values())


def get_protocol(name_or_path: str | Path) -> Protocol:
    """A built-in protocol by name, or a protocol file by path."""
    text = str(name_or_path)
    if text in _builtin():
        return _builtin()[text]
    if text.endswith(".toml") or Path(text).exists():
        return load_protocol_file(text)
    raise UnknownNameError("protocol", text, sorted(_builtin()))
