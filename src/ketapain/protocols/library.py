"""The protocol library: declarative TOML files and their loader.

Built-in protocols live in ``ketapain/protocols/library/``; a clinic adds its own by
passing a file path. Errors name the file, the field and the allowed values. The file
format (every key is documented in the README, "Protocol files")::

    name = "ten-weekdays"                 # lower-case letters, digits and dashes
    title = "10 weekdays, 4 h/day"
    drug = "racemic"                      # or "s-ketamine"
    model = "domino-cl79"                 # a name from `ketapain models`
    setting = "outpatient"                # or "inpatient": picks the drug-library profile
    max_rate_mg_per_h = 25.0              # optional dosing rule: no rate above this
    relapse_fraction = 0.70               # optional: relapse when NRS is back above this
                                          # fraction of baseline (default 0.70)
    description = "..."

    [discharge]                           # after each session
    observation_min = 120
    escort_home = true
    no_driving = "until the next day after a night's sleep"

    [[premedication]]
    drug = "midazolam"
    dose_mg = 2.0
    route = "iv"
    timing = "before the infusion"

    [[phases]]
    name = "series"
    title = "Daily infusions"
    sessions = 10                         # or: days = [0, 1, 2] (offsets in the phase)
    every_days = 1
    skip_weekends = true
    trigger = "scheduled"                 # or "after_decision", "on_relapse"
    doses = [{ route = "iv_infusion", start_h = 9.0, duration_h = 4.0,
               rate_mg_per_kg_h = 0.35 }]
    titration = { increase_mg_per_kg_h = 0.05, max_rate_mg_per_kg_h = 0.5,
                  increase_if = "...", hold_if = "..." }

    [[decision_points]]
    after_session = 2
    decision = "Continue the series?"
    criterion = "NRS at least 30% below baseline"
    response_threshold = 0.30             # optional: the fall that counts (default 0.30)

    [limits]                              # protocol limits, as in the drug library
    rate_mg_per_h = { hard_max = 25.0 }

    [[sources]]
    authors = "Schwartzman RJ, et al."
    year = 2009
    journal = "Pain 147(1-3):107-115"

A file without ``phases`` may give top-level ``doses`` and ``series`` (``weekdays = n`` or
``days = [...]``): one scheduled phase named ``series``.

>>> p = get_protocol("seed-outpatient")
>>> [ph.name for ph in p.phases], p.decision_points[0].after_session
(['test', 'series', 'oral', 'booster'], 2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeVar

from ketapain.errors import InvalidValueError, ModelFileError, UnknownNameError
from ketapain.pharmacology.model import Drug
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.schedules import Schedule
from ketapain.protocols import _toml
from ketapain.protocols.guardrails import LimitSet
from ketapain.protocols.schema import (
    DecisionPoint,
    Discharge,
    Phase,
    Premedication,
    Protocol,
    Setting,
    Titration,
    Trigger,
)

__all__ = [
    "LIBRARY_DIR",
    "get_protocol",
    "list_protocols",
    "load_protocol_file",
]

LIBRARY_DIR: Final = Path(__file__).with_name("library")
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_KEYS: Final = frozenset(
    {
        "name",
        "title",
        "drug",
        "model",
        "setting",
        "max_rate_mg_per_h",
        "relapse_fraction",
        "description",
        "discharge",
        "premedication",
        "phases",
        "decision_points",
        "limits",
        "sources",
        "doses",
        "series",
    }
)
_PHASE_KEYS: Final = frozenset(
    {
        "name",
        "title",
        "sessions",
        "days",
        "every_days",
        "skip_weekends",
        "gap_days",
        "trigger",
        "doses",
        "titration",
        "note",
    }
)
_MAX_DAYS: Final = 366
_E = TypeVar("_E", Drug, Setting, Trigger)


def load_protocol_file(path: str | Path) -> Protocol:
    """Read and validate a protocol TOML file."""
    p = Path(path)
    data = _toml.read_toml(p)
    try:
        protocol = _parse(data, p)
        protocol.check_layout()
    except ModelFileError:
        raise
    except InvalidValueError as err:
        raise ModelFileError(str(p), err.field, err.allowed, err.value) from None
    return protocol


def _parse(data: dict[str, Any], path: Path) -> Protocol:
    _toml.keys(data, "", _KEYS)
    name = _toml.text(data, "name", "")
    if not _NAME.match(name):
        raise InvalidValueError("name", "lower-case letters, digits and dashes", name)
    drug = _choice(Drug, data.get("drug"), "drug")
    model = _toml.text(data, "model", "")
    try:
        pk = get_model(model)
    except UnknownNameError as err:
        raise InvalidValueError("model", f"one of {', '.join(err.known)}", model) from None
    if pk.drug is not drug:
        raise InvalidValueError("model", f"a {drug.value} model", f"{model} ({pk.drug.value})")
    cap = None
    if "max_rate_mg_per_h" in data:
        cap = _toml.number(data, "max_rate_mg_per_h", "", low=0, high=1000, low_open=True)
    extra: dict[str, float] = {}
    if "relapse_fraction" in data:
        extra["relapse_fraction"] = _toml.number(
            data, "relapse_fraction", "", low=0, high=1, low_open=True
        )
    if "phases" in data and ("doses" in data or "series" in data):
        raise InvalidValueError("doses/series", "absent when phases are given", "given")
    if "phases" in data:
        items = data["phases"]
        if not isinstance(items, list) or not items:
            raise InvalidValueError("phases", "a non-empty array of tables", items)
        phases = tuple(_phase(item, f"phases[{i}].") for i, item in enumerate(items))
    else:
        phases = (_legacy_phase(data),)
    names = [ph.name for ph in phases]
    if len(set(names)) != len(names):
        raise InvalidValueError("phases.name", "distinct names", names)
    if all(ph.trigger is Trigger.ON_RELAPSE for ph in phases):
        raise InvalidValueError("phases.trigger", "at least one phase not on_relapse", "none")
    return Protocol(
        name=name,
        title=_toml.text(data, "title", ""),
        drug=drug,
        model=model,
        setting=_choice(Setting, data.get("setting", "outpatient"), "setting"),
        phases=phases,
        discharge=_discharge(data["discharge"]) if "discharge" in data else None,
        premedication=tuple(
            _premedication(item, f"premedication[{i}].")
            for i, item in enumerate(_array(data, "premedication"))
        ),
        decision_points=tuple(
            _decision(item, f"decision_points[{i}].")
            for i, item in enumerate(_array(data, "decision_points"))
        ),
        limits=LimitSet.from_mapping(
            _toml.table(data.get("limits", {}), "limits"),
            origin=f"protocol {name}",
            field="limits.",
        ),
        max_rate_mg_per_h=cap,
        description=" ".join(str(data.get("description", "")).split()),
        sources=tuple(
            _toml.source(s, f"sources[{i}]") for i, s in enumerate(_array(data, "sources"))
        ),
        path=path,
        **extra,
    )


def _choice(kind: type[_E], value: object, field: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        raise InvalidValueError(
            field, f"one of {', '.join(k.value for k in kind)}", value
        ) from None


def _array(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InvalidValueError(key, "an array of tables", value)
    return value


def _session(doses: object, field: str) -> Schedule:
    try:
        session = Schedule.from_dict({"doses": doses if doses is not None else []})
    except InvalidValueError as err:
        raise InvalidValueError(f"{field}{err.field}", err.allowed, err.value) from None
    if not session.doses:
        raise InvalidValueError(f"{field}doses", "at least one dose", [])
    if session.start_h() < 0 or session.start_h() >= 24:
        raise InvalidValueError(
            f"{field}doses.start_h",
            "from 0 to 24 h (clock time on the session day)",
            session.start_h(),
        )
    return session


def _days(value: object, field: str) -> tuple[int, ...]:
    ok = (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
        and sorted(set(value)) == value
        and value[0] == 0
        and value[-1] <= _MAX_DAYS
    )
    if not ok:
        raise InvalidValueError(
            field, f"increasing whole day offsets starting at 0, at most {_MAX_DAYS}", value
        )
    return tuple(value)  # type: ignore[arg-type]


def _phase(item: object, field: str) -> Phase:
    data = _toml.table(item, field.rstrip("."))
    _toml.keys(data, field.rstrip("."), _PHASE_KEYS)
    name = _toml.text(data, "name", field)
    if not _NAME.match(name):
        raise InvalidValueError(f"{field}name", "lower-case letters, digits and dashes", name)
    session = _session(data.get("doses"), field)
    if "days" in data and ("sessions" in data or "every_days" in data):
        raise InvalidValueError(f"{field}days", "absent when sessions are given", data["days"])
    titration = None
    if "titration" in data:
        titration = _titration(data["titration"], f"{field}titration.", session)
    return Phase(
        name=name,
        title=_toml.text(data, "title", field, default=name),
        session=session,
        days=_days(data["days"], f"{field}days") if "days" in data else None,
        sessions=_toml.integer(data, "sessions", field, low=1, high=_MAX_DAYS, default=1),
        every_days=_toml.integer(data, "every_days", field, low=1, high=_MAX_DAYS, default=1),
        skip_weekends=_toml.flag(data, "skip_weekends", field, default=False),
        gap_days=_toml.integer(data, "gap_days", field, low=0, high=_MAX_DAYS, default=0),
        trigger=_choice(Trigger, data.get("trigger", "scheduled"), f"{field}trigger"),
        titration=titration,
        note=" ".join(str(data.get("note", "")).split()),
    )


def _titration(item: object, field: str, session: Schedule) -> Titration:
    data = _toml.table(item, field.rstrip("."))
    per_kg_keys = {"increase_mg_per_kg_h", "max_rate_mg_per_kg_h"}
    abs_keys = {"increase_mg_per_h", "max_rate_mg_per_h"}
    _toml.keys(
        data, field.rstrip("."), per_kg_keys | abs_keys | {"increase_if", "hold_if", "source"}
    )
    per_kg = bool(per_kg_keys & set(data))
    if per_kg == bool(abs_keys & set(data)):
        raise InvalidValueError(
            f"{field}increase_*", "either mg/kg/h keys or mg/h keys, not both or neither", "given"
        )
    unit = "mg_per_kg_h" if per_kg else "mg_per_h"
    high = 45.0 if per_kg else 5000.0
    rates = [d.rate_mg_per_kg_h if per_kg else d.rate_mg_per_h for d in session.infusions]
    if not any(r is not None for r in rates):
        raise InvalidValueError(f"{field}increase_{unit}", f"infusions given in {unit}", "none")
    ceiling = _toml.number(data, f"max_rate_{unit}", field, low=0, high=high, low_open=True)
    top = max(r for r in rates if r is not None)
    if top > ceiling:
        raise InvalidValueError(
            f"{field}max_rate_{unit}", f"at least the starting rate {top:g}", ceiling
        )
    return Titration(
        increase=_toml.number(data, f"increase_{unit}", field, low=0, high=high, low_open=True),
        max_rate=ceiling,
        per_kg=per_kg,
        increase_if=_toml.text(data, "increase_if", field),
        hold_if=_toml.text(data, "hold_if", field),
        source=_toml.optional_source(data, field),
    )


def _legacy_phase(data: Mapping[str, Any]) -> Phase:
    session = _session(data.get("doses"), "")
    series = data.get("series", {"days": [0]})
    if (
        not isinstance(series, Mapping)
        or len(series) != 1
        or not set(series) <= {"days", "weekdays"}
    ):
        raise InvalidValueError("series", 'a table with one key, "days" or "weekdays"', series)
    if "weekdays" in series:
        n = _toml.integer(series, "weekdays", "series.", low=1, high=260, default=1)
        return Phase(name="series", title="Series", session=session, sessions=n, skip_weekends=True)
    return Phase(
        name="series", title="Series", session=session, days=_days(series["days"], "series.days")
    )


def _premedication(item: object, field: str) -> Premedication:
    data = _toml.table(item, field.rstrip("."))
    _toml.keys(data, field.rstrip("."), {"drug", "dose_mg", "route", "timing", "prn", "source"})
    dose = None
    if "dose_mg" in data:
        dose = _toml.number(data, "dose_mg", field, low=0, high=1000, low_open=True)
    return Premedication(
        drug=_toml.text(data, "drug", field),
        route=_toml.text(data, "route", field),
        timing=_toml.text(data, "timing", field),
        dose_mg=dose,
        prn=_toml.flag(data, "prn", field, default=False),
        source=_toml.optional_source(data, field),
    )


def _decision(item: object, field: str) -> DecisionPoint:
    data = _toml.table(item, field.rstrip("."))
    _toml.keys(
        data,
        field.rstrip("."),
        {"after_session", "decision", "criterion", "source", "response_threshold"},
    )
    extra: dict[str, float] = {}
    if "response_threshold" in data:
        extra["response_threshold"] = _toml.number(
            data, "response_threshold", field, low=0, high=1, low_open=True
        )
    try:
        return DecisionPoint(
            after_session=_toml.integer(
                data, "after_session", field, low=1, high=_MAX_DAYS, default=0
            ),
            decision=_toml.text(data, "decision", field),
            criterion=_toml.text(data, "criterion", field),
            source=_toml.optional_source(data, field),
            **extra,
        )
    except InvalidValueError as err:
        if err.field != "decision_points.response_threshold":
            raise
        # 1.0 passes the number check (0 to 1) but a threshold of 100% is no threshold.
        raise InvalidValueError(f"{field}response_threshold", err.allowed, err.value) from None


def _discharge(item: object) -> Discharge:
    data = _toml.table(item, "discharge")
    _toml.keys(data, "discharge", {"observation_min", "escort_home", "no_driving", "source"})
    return Discharge(
        observation_min=_toml.number(data, "observation_min", "discharge.", low=0, high=24 * 60),
        escort_home=_toml.flag(data, "escort_home", "discharge.", default=True),
        no_driving=_toml.text(data, "no_driving", "discharge."),
        source=_toml.optional_source(data, "discharge."),
    )


@cache
def _builtin() -> dict[str, Protocol]:
    out = {}
    for path in sorted(LIBRARY_DIR.glob("*.toml")):
        protocol = load_protocol_file(path)
        out[protocol.name] = protocol
    return dict(sorted(out.items()))


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
