"""User-defined PK models from TOML files.

A file gives typical values for a patient of ``reference_weight_kg``, in clearance/volume
form or in micro-constant form, with optional allometric scaling, effect site, oral
absorption, metabolite and variability blocks::

    name = "my-model"
    drug = "racemic"            # or "s-ketamine"
    population = "adults"       # optional, free text
    source = "Author 2024, J"   # optional citation
    [pk]
    reference_weight_kg = 70
    cl_l_per_h = 79.0           # or v1_l with k10_per_h, k12_per_h, k21_per_h, ...
    v1_l = 4.4
    q2_l_per_h = 156.0
    v2_l = 11.0
    q3_l_per_h = 155.0          # q3/v3 optional (two-compartment without them)
    v3_l = 178.0
    ke0_per_h = 6.0             # optional
    allometric = false          # true: CL, Q x (WT/ref)^0.75, V x WT/ref; false: no scaling
    [variability]               # optional, CV as a fraction per parameter
    cl = 0.3
    [oral]                      # optional
    bioavailability = 0.23
    ka_per_h = 0.97
    [metabolite]                # optional
    cl_l_per_h = 79.0
    v1_l = 98.6

Every error names the file, the field and the allowed range.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ketapain._files import key_name, read_toml
from ketapain.errors import InvalidValueError, ModelFileError
from ketapain.pharmacology._validate import finite_in_range
from ketapain.pharmacology.model import (
    ALLOMETRIC,
    ETA_NAMES,
    Disposition,
    Drug,
    MetaboliteModel,
    OralModel,
    PKModel,
    WeightScaling,
)
from ketapain.pharmacology.models._shared import RACEMIC_S_FRACTION
from ketapain.sources import Source

__all__ = ["load_model_file", "parse_model"]

_MAX_CLEARANCE: Final = 1.0e4  # L/h
_MAX_VOLUME: Final = 1.0e5  # L
_MAX_RATE: Final = 1.0e4  # 1/h
_TOP: Final = {"name", "drug", "population", "source", "pk", "variability", "oral", "metabolite"}
_MACRO: Final = {"cl_l_per_h", "v1_l", "q2_l_per_h", "v2_l", "q3_l_per_h", "v3_l"}
_MICRO: Final = {"v1_l", "k10_per_h", "k12_per_h", "k21_per_h", "k13_per_h", "k31_per_h"}
_PK_OTHER: Final = {"reference_weight_kg", "ke0_per_h", "allometric"}


def load_model_file(path: str | Path) -> PKModel:
    """Read and validate a model file."""
    path = Path(path)
    try:
        data = read_toml(path, "file", prefix=True)
    except FileNotFoundError:
        raise ModelFileError(str(path), "file", "an existing TOML file", str(path)) from None
    return parse_model(data, origin=str(path))


def parse_model(data: Mapping[str, Any], *, origin: str = "<model>") -> PKModel:
    """Build a model from the parsed contents of a model file."""
    try:
        return _parse(data, origin)
    except ModelFileError:
        raise
    except InvalidValueError as err:
        raise ModelFileError(origin, err.field, err.allowed, err.value) from None


def _parse(data: Mapping[str, Any], origin: str) -> PKModel:
    _no_unknown("", data, _TOP)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError("name", "a non-empty string", name)
    try:
        drug = Drug(str(data.get("drug")))
    except ValueError:
        raise InvalidValueError("drug", "'racemic' or 's-ketamine'", data.get("drug")) from None
    pk = _table(data, "pk", required=True)
    disposition, ref = _disposition(pk)
    allometric = pk.get("allometric", False)
    if not isinstance(allometric, bool):
        raise InvalidValueError("pk.allometric", "true or false", allometric)
    if allometric:
        scaling = WeightScaling(
            reference_weight_kg=ref,
            clearance_exponent=ALLOMETRIC.clearance_exponent,
            intercompartmental_exponent=ALLOMETRIC.intercompartmental_exponent,
            volume_exponent=ALLOMETRIC.volume_exponent,
        )
    else:
        scaling = WeightScaling(
            reference_weight_kg=ref,
            clearance_exponent=0.0,
            intercompartmental_exponent=0.0,
            volume_exponent=0.0,
        )
    ke0 = pk.get("ke0_per_h")
    if ke0 is not None:
        ke0 = _positive("pk.ke0_per_h", ke0, _MAX_RATE)
    citation = data.get("source", f"user-defined model file {origin}")
    if not isinstance(citation, str):
        raise InvalidValueError("source", "a string citation", citation)
    population = data.get("population", "user-defined")
    if not isinstance(population, str):
        raise InvalidValueError("population", "a string", population)
    source = Source(authors=citation, year=None, journal=origin, title=name)
    return PKModel(
        name=name.strip(),
        drug=drug,
        population=population,
        source=source,
        disposition=disposition,
        scaling=scaling,
        ke0_per_h=ke0,
        oral=_oral(data),
        metabolite=_metabolite(data),
        variability_cv=_variability(data),
        s_fraction=1.0 if drug is Drug.S_KETAMINE else RACEMIC_S_FRACTION,
        weight_range_kg=(0.0, 400.0),
        age_range_y=(0.0, 120.0),
        notes=((f"user-defined model from {origin}", source),),
    )


def _table(data: Mapping[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidValueError(key, "a table [" + key + "]", value)
    return value


def _no_unknown(prefix: str, table: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InvalidValueError(
            prefix + key_name(unknown[0]),
            f"one of the known keys ({', '.join(sorted(allowed))})",
            "unknown",
        )


# The smallest clearance, volume or rate constant a file may give: not a physiological
# bound but a typing one; below it (5e-324 and the like) rate constants overflow.
_TINY: Final = 1e-6


def _positive(field: str, value: object, high: float) -> float:
    return finite_in_range(field, value, low=_TINY, high=high)


def _disposition(pk: Mapping[str, Any]) -> tuple[Disposition, float]:
    keys = set(pk) - _PK_OTHER
    micro = bool(keys & (_MICRO - {"v1_l"}))
    macro = bool(keys & (_MACRO - {"v1_l"}))
    if micro and macro:
        raise InvalidValueError(
            "pk", "either clearance/volume or micro-constant form, not both", sorted(keys)
        )
    _no_unknown("pk.", pk, (_MICRO if micro else _MACRO) | _PK_OTHER)
    # The weights ketapain takes for a patient (1 to 400 kg): a reference outside them
    # makes the allometric ratio meaningless (and 1e-300 kg overflows it).
    ref = finite_in_range(
        "pk.reference_weight_kg", pk.get("reference_weight_kg", 70.0), low=1.0, high=400.0
    )
    v1 = _positive("pk.v1_l", _required(pk, "v1_l"), _MAX_VOLUME)

    def pair(a: str, b: str, high_a: float, high_b: float) -> tuple[float | None, float | None]:
        if (a in pk) != (b in pk):
            raise InvalidValueError(
                f"pk.{b if a in pk else a}", f"given together with pk.{a if a in pk else b}", None
            )
        if a not in pk:
            return None, None
        return _positive(f"pk.{a}", pk[a], high_a), _positive(f"pk.{b}", pk[b], high_b)

    if micro:
        k10 = _positive("pk.k10_per_h", _required(pk, "k10_per_h"), _MAX_RATE)
        k12, k21 = pair("k12_per_h", "k21_per_h", _MAX_RATE, _MAX_RATE)
        k13, k31 = pair("k13_per_h", "k31_per_h", _MAX_RATE, _MAX_RATE)
        if k13 is not None and k12 is None:
            raise InvalidValueError("pk.k13_per_h", "absent when k12_per_h is absent", k13)
        q2 = None if k12 is None else k12 * v1
        q3 = None if k13 is None else k13 * v1
        return Disposition(
            cl_l_per_h=k10 * v1,
            v1_l=v1,
            q2_l_per_h=q2,
            v2_l=None if q2 is None or k21 is None else q2 / k21,
            q3_l_per_h=q3,
            v3_l=None if q3 is None or k31 is None else q3 / k31,
        ), ref
    cl = _positive("pk.cl_l_per_h", _required(pk, "cl_l_per_h"), _MAX_CLEARANCE)
    q2, v2 = pair("q2_l_per_h", "v2_l", _MAX_CLEARANCE, _MAX_VOLUME)
    q3, v3 = pair("q3_l_per_h", "v3_l", _MAX_CLEARANCE, _MAX_VOLUME)
    if q3 is not None and q2 is None:
        raise InvalidValueError("pk.q3_l_per_h", "absent when q2_l_per_h is absent", q3)
    return Disposition(cl_l_per_h=cl, v1_l=v1, q2_l_per_h=q2, v2_l=v2, q3_l_per_h=q3, v3_l=v3), ref


def _required(table: Mapping[str, Any], key: str) -> object:
    if key not in table:
        raise InvalidValueError(f"pk.{key}", "given", None)
    return table[key]


def _variability(data: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    table = _table(data, "variability")
    _no_unknown("variability.", table, set(ETA_NAMES))
    return tuple(
        (k, finite_in_range(f"variability.{k}", v, low=0.0, high=3.0))
        for k, v in sorted(table.items())
    )


def _oral(data: Mapping[str, Any]) -> OralModel | None:
    table = _table(data, "oral")
    if not table:
        return None
    _no_unknown(
        "oral.",
        table,
        {"bioavailability", "ka_per_h", "first_pass_metabolite_fraction", "zero_order_h"},
    )
    f = finite_in_range("oral.bioavailability", table.get("bioavailability"), low=0.0, high=1.0)
    fp = finite_in_range(
        "oral.first_pass_metabolite_fraction",
        table.get("first_pass_metabolite_fraction", 0.0),
        low=0.0,
        high=1.0 - f,
    )
    return OralModel(
        bioavailability=f,
        ka_per_h=_positive("oral.ka_per_h", table.get("ka_per_h"), _MAX_RATE),
        first_pass_metabolite_fraction=fp,
        zero_order_h=finite_in_range(
            "oral.zero_order_h", table.get("zero_order_h", 0.0), low=0.0, high=24.0
        ),
    )


def _metabolite(data: Mapping[str, Any]) -> MetaboliteModel | None:
    table = _table(data, "metabolite")
    if not table:
        return None
    _no_unknown(
        "metabolite.",
        table,
        {"name", "cl_l_per_h", "v1_l", "q2_l_per_h", "v2_l", "fraction_formed", "molar_mass_ratio"},
    )
    name = table.get("name", "norketamine")
    if not isinstance(name, str):
        raise InvalidValueError("metabolite.name", "a string", name)
    if ("q2_l_per_h" in table) != ("v2_l" in table):
        raise InvalidValueError("metabolite.q2_l_per_h/v2_l", "both given or both absent", None)
    q2 = v2 = None
    if "q2_l_per_h" in table:
        q2 = _positive("metabolite.q2_l_per_h", table["q2_l_per_h"], _MAX_CLEARANCE)
        v2 = _positive("metabolite.v2_l", table["v2_l"], _MAX_VOLUME)
    return MetaboliteModel(
        name=name,
        cl_l_per_h=_positive("metabolite.cl_l_per_h", table.get("cl_l_per_h"), _MAX_CLEARANCE),
        v1_l=_positive("metabolite.v1_l", table.get("v1_l"), _MAX_VOLUME),
        q2_l_per_h=q2,
        v2_l=v2,
        fraction_formed=finite_in_range(
            "metabolite.fraction_formed", table.get("fraction_formed", 1.0), low=0.0, high=1.0
        ),
        molar_mass_ratio=finite_in_range(
            "metabolite.molar_mass_ratio",
            table.get("molar_mass_ratio", 1.0),
            low=0.0,
            high=10.0,
            low_inclusive=False,
        ),
    )
