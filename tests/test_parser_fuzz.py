"""Property-based fuzzing of every file parser of ketapain.

The parsers, by their entry point (and where the command line or the app calls them):

* protocol (TOML): ``protocols.library.load_protocol_file`` (``--protocol-file``,
  ``--protocol-dir``, a clinic's own protocol given by path);
* drug library (TOML): ``protocols.guardrails.load_drug_library`` (``--drug-library``);
* patient (JSON): ``protocols.patient.Patient.from_json_file`` (``screen``, ``plan``,
  ``check-rate``);
* schedule (JSON): ``pharmacology.schedules.Schedule.from_json_file`` (``simulate``,
  ``predict``, ``compare --schedule``);
* model (TOML): ``pharmacology.model_file.load_model_file`` (``--model-file``);
* alarm rules (TOML): ``clinic.alarms.load_rules`` (``KETAPAIN_ALARM_THRESHOLDS``, read
  when the app starts);
* FHIR Bundle (JSON): ``fhir.intake.import_bundle``, on SQLite (``fhir import``,
  ``POST /fhir``);
* FHIR resource: ``fhir.validation.check`` (``fhir validate``, every import and export).

Inputs: random bytes (mostly not UTF-8), random text (mostly neither TOML nor JSON, some
of it built from their punctuation), and mutations of the shipped valid files (the ten
library protocols, the drug library, ``examples/*.json``, ``examples/my_model.toml``, the
default alarm rules written out, a full referral Bundle): values replaced by wrong types,
NaN, infinities, negative, huge and empty values, keys deleted, unknown keys added,
values wrapped in lists and tables, list items duplicated, numbers scaled.

The property: a parser accepts the input, or raises one of ketapain's own errors
(:class:`~ketapain.errors.KetapainError`) whose message is one line naming the field at
fault (for a mutation: a key on the path of the mutated value, or the key added); an
accepted document is usable (a protocol lays out its calendar, a schedule gives its
total dose, a model simulates, a patient is screened, an alarm rule fires or not). Any
other exception (KeyError, TypeError, RecursionError, UnicodeDecodeError, a TOML or JSON
decoding error...) fails the test.

Known bugs (each reproduced by a ``strict`` xfail test at the end of the file, which
fails once the bug is fixed, so that its entry in ``KNOWN_BUGS`` can go): the fuzzing
tests count an input that hits one of these as "known bug" instead of failing, so that
they keep looking for new ones.

Run with ``-n 0 -s`` to see how many inputs each parser was given (the workers of
pytest-xdist do not show their output); ``HYPOTHESIS_PROFILE=thorough`` multiplies every
budget by 5.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tomllib
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ketapain.cli import fhir as cli_fhir
from ketapain.cli import main as cli_main
from ketapain.cli import predict as cli_predict
from ketapain.cli.main import app
from ketapain.clinic.alarms import DEFAULT_RULES, load_rules
from ketapain.clinic.audit import Actor
from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.errors import InvalidValueError, KetapainError, KetapainWarning
from ketapain.fhir.intake import FhirImportError, import_bundle
from ketapain.fhir.validation import Problem, check
from ketapain.pharmacology import Covariates, Schedule, get_model, simulate
from ketapain.pharmacology.model_file import load_model_file
from ketapain.protocols.guardrails import DRUG_LIBRARY_FILE, check_rate, load_drug_library
from ketapain.protocols.library import LIBRARY_DIR, load_protocol_file
from ketapain.protocols.patient import Patient
from ketapain.protocols.screening import screen

ROOT: Final = Path(__file__).resolve().parents[1]
EXAMPLES: Final = ROOT / "examples"
SCALE: Final = 5 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 1
FUZZ: Final = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
# Generated documents stay this shallow: deeper ones are refused for their depth alone
# (test_bug_deeply_nested_file), which would hide whatever else the input holds.
MAX_GENERATED_DEPTH: Final = 40

# Inputs tried, by parser and kind of input; and what became of them.
TRIED: Counter[tuple[str, str]] = Counter()
OUTCOMES: Counter[tuple[str, str]] = Counter()


def budget(n: int) -> settings:
    """The fuzz settings with ``n`` examples (times 5 under the thorough profile)."""
    return settings(FUZZ, max_examples=n * SCALE)


@pytest.fixture(scope="module", autouse=True)
def _report_inputs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many inputs each parser was given (shown with ``-n 0 -s``)."""
    yield
    if not TRIED:
        return
    lines = ["", "parser fuzzing: inputs tried (accepted / refused / known bug)"]
    for parser in sorted({p for p, _ in TRIED}):
        kinds = ", ".join(f"{k} {n}" for (p, k), n in sorted(TRIED.items()) if p == parser)
        total = sum(n for (p, _), n in TRIED.items() if p == parser)
        outcome = " / ".join(
            str(OUTCOMES[(parser, o)]) for o in ("accepted", "refused", "known bug")
        )
        lines.append(f"  {parser:<13} {total:>5} inputs ({kinds}); {outcome}")
    lines.append(f"  {'total':<13} {sum(TRIED.values()):>5} inputs")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))


# --- documents: serialisers and the shipped valid files ---------------------------------


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (
            f"{_toml_string(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{" + ", ".join(items) + "}"
    raise TypeError(type(value))


def toml_dumps(doc: Mapping[str, Any]) -> str:
    """A TOML document of ``doc`` (every table inline; None values left out)."""
    return "".join(
        f"{_toml_string(str(k))} = {_toml_value(v)}\n" for k, v in doc.items() if v is not None
    )


def json_dumps(doc: Any) -> str:
    """JSON as Python writes it: NaN and Infinity as the bare words ``json`` reads back."""
    return json.dumps(doc, allow_nan=True)


def _alarm_seed() -> dict[str, Any]:
    rules = [
        {
            "signal": r.signal,
            "level": r.level,
            "op": r.op,
            "value": r.value,
            "source": r.source.cite(),
        }
        for r in DEFAULT_RULES
    ]
    return {"rule": rules}


def _load_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- a valid referral Bundle (as tests/fhir/test_intake.py builds them) ------------------

MRN_SYSTEM: Final = Settings().fhir_mrn_system
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
PATIENT_URL: Final = "urn:uuid:5f0c2b8e-8f59-4c1e-9d0a-6c1d2f3e4a5b"
SUBJECT: Final = {"subject": {"reference": PATIENT_URL}}


def _qty(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def _obs(loinc: str, when: str, **value: Any) -> dict[str, Any]:
    code = {"coding": [{"system": LOINC, "code": loinc}]}
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": code,
        **SUBJECT,
        "effectiveDateTime": when,
        **value,
    }


def referral_resources(mrn: str = "KP-FUZZ-1") -> list[dict[str, Any]]:
    """A referral: the patient, diagnoses, history, an allergy, medications, a lab result,
    a pregnancy test, weight, height, blood pressure, heart rate, SpO2, temperature, NRS."""
    t_lab, t_body, t_vitals = "2025-02-27T07:15:00Z", "2025-03-03T08:30:00Z", "2025-03-03T09:00:00Z"
    clinical = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
        ]
    }
    bp = [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "valueQuantity": _qty(132.0, "mm[Hg]"),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
            "valueQuantity": _qty(84.0, "mm[Hg]"),
        },
    ]
    return [
        {
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "name": [{"use": "official", "family": "Okafor", "given": ["Mary", "Ann"]}],
            "gender": "female",
            "birthDate": "1975-03-14",
        },
        {
            "resourceType": "Condition",
            "clinicalStatus": clinical,
            "code": {"coding": [{"system": ICD10CM, "code": "G90.511"}]},
            **SUBJECT,
        },
        {
            "resourceType": "Condition",
            "clinicalStatus": clinical,
            "code": {"coding": [{"system": SNOMED, "code": "247398009"}]},
            **SUBJECT,
        },
        {
            "resourceType": "Condition",
            "clinicalStatus": clinical,
            "code": {"coding": [{"system": ICD10CM, "code": "I10"}]},
            **SUBJECT,
        },
        {
            "resourceType": "AllergyIntolerance",
            "code": {"text": "penicillin"},
            "patient": {"reference": PATIENT_URL},
            "reaction": [{"manifestation": [{"text": "hives"}], "severity": "moderate"}],
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {
                "text": "oxycodone",
                "coding": [{"system": RXNORM, "code": "7804"}],
            },
            **SUBJECT,
            "dosage": [{"doseAndRate": [{"rateQuantity": _qty(40.0, "mg/d")}]}],
        },
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {
                "text": "gabapentin",
                "coding": [{"system": RXNORM, "code": "25480"}],
            },
            **SUBJECT,
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": _qty(300.0, "mg")}],
                }
            ],
        },
        _obs(
            "1742-6",
            t_lab,
            valueQuantity=_qty(52.0, "U/L"),
            referenceRange=[{"low": _qty(7.0, "U/L"), "high": _qty(40.0, "U/L")}],
        ),
        _obs(
            "1975-2",
            t_lab,
            valueQuantity=_qty(34.2, "umol/L"),
            referenceRange=[{"high": _qty(20.52, "umol/L")}],
        ),
        _obs(
            "2106-3",
            t_lab,
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "260385009"}]},
        ),
        _obs("29463-7", t_body, valueQuantity=_qty(154.0, "[lb_av]")),
        _obs("8302-2", t_body, valueQuantity=_qty(165.0, "cm")),
        _obs("85354-9", t_vitals, component=bp),
        _obs("8867-4", "2025-03-03T04:00:00-05:00", valueQuantity=_qty(76.0, "/min")),
        _obs("59408-5", t_vitals, valueQuantity=_qty(97.0, "%")),
        _obs("8310-5", t_vitals, valueQuantity=_qty(98.6, "[degF]")),
        _obs("72514-3", t_vitals, valueInteger=7),
    ]


def referral_bundle(mrn: str = "KP-FUZZ-1") -> dict[str, Any]:
    """The referral as a transaction Bundle (fixed fullUrls: the fuzzing is reproducible)."""
    entries = []
    for k, resource in enumerate(referral_resources(mrn)):
        url = PATIENT_URL if k == 0 else f"urn:uuid:{uuid.UUID(int=k)}"
        entries.append(
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return {"resourceType": "Bundle", "id": "fuzz", "type": "transaction", "entry": entries}


# --- the parsers -------------------------------------------------------------------------


def _use_protocol(p: Any) -> None:
    p.slots()
    p.infusion_rates()
    p.total_dose_mg(70.0)
    _ = p.dosing_weight_cap_kg


def _use_drug_library(lib: Any) -> None:
    for limits in lib.profiles.values():
        check_rate(limits, rate_mg_per_h=20.0, dosing_weight_kg=70.0, what="fuzz")


def _use_patient(patient: Patient) -> None:
    screen(patient)


def _use_schedule(schedule: Schedule) -> None:
    schedule.total_dose_mg(weight_kg=70.0)
    params = get_model("domino-cl79").parameters(Covariates.single(weight_kg=70.0), warn=False)
    start = max(schedule.start_h(), 0.0) if schedule.doses else 0.0
    simulate(params, schedule, times_h=np.linspace(start, start + 24.0, 5))


def _use_model(model: Any) -> None:
    params = model.parameters(Covariates.single(weight_kg=70.0), warn=False)
    dose = Schedule.from_dict(
        {"doses": [{"route": "iv_infusion", "start_h": 0, "duration_h": 1, "rate_mg_per_h": 20}]}
    )
    simulate(params, dose, times_h=np.linspace(0.0, 4.0, 5))


def _use_rules(rules: Any) -> None:
    for rule in rules:
        rule.fires(120.0, baseline=100.0)
        rule.describe(120.0)
        if not math.isfinite(rule.value):
            raise _AcceptedNonFiniteError(rule.value)


class _AcceptedNonFiniteError(Exception):
    """An alarm rule accepted with a threshold that is not a finite number (KNOWN_BUGS)."""


@dataclass(frozen=True)
class FileParser:
    """A parser of one kind of file: how to call it, how to use what it returns, and the
    shipped valid documents that the mutations start from."""

    name: str
    fmt: str  # "toml" or "json"
    load: Callable[[Path], Any]
    use: Callable[[Any], None]
    seeds: tuple[Any, ...]

    def dumps(self, doc: Any) -> str:
        return toml_dumps(doc) if self.fmt == "toml" else json_dumps(doc)


PARSERS: Final = {
    p.name: p
    for p in (
        FileParser(
            "protocol",
            "toml",
            load_protocol_file,
            _use_protocol,
            tuple(_load_toml(f) for f in sorted(LIBRARY_DIR.glob("*.toml"))),
        ),
        FileParser(
            "drug-library",
            "toml",
            load_drug_library,
            _use_drug_library,
            (_load_toml(DRUG_LIBRARY_FILE),),
        ),
        FileParser(
            "patient",
            "json",
            Patient.from_json_file,
            _use_patient,
            tuple(_load_json(f) for f in sorted(EXAMPLES.glob("patient-*.json"))),
        ),
        FileParser(
            "schedule",
            "json",
            Schedule.from_json_file,
            _use_schedule,
            tuple(
                _load_json(EXAMPLES / f)
                for f in ("schedule.json", "ten_weekdays.json", "titration.json")
            ),
        ),
        FileParser(
            "model", "toml", load_model_file, _use_model, (_load_toml(EXAMPLES / "my_model.toml"),)
        ),
        FileParser("alarm-rules", "toml", load_rules, _use_rules, (_alarm_seed(),)),
    )
}


# --- known bugs: (parser or "*", exception type, pattern of the message) -----------------

# (parser or "*", exception class, pattern of its message): none is open.
KNOWN_BUGS: Final[tuple[tuple[str, type[BaseException], str], ...]] = ()


def _known_bug(parser: str, exc: BaseException) -> bool:
    return any(
        (p in ("*", parser)) and isinstance(exc, kind) and re.search(pattern, str(exc))
        for p, kind, pattern in KNOWN_BUGS
    )


def _check_message(err: KetapainError, names: frozenset[str]) -> None:
    """The error is one line, names its field, and (for a mutation) a key on its path."""
    message = str(err)
    assert message.strip(), f"{type(err).__name__} without a message"
    assert "\n" not in message, f"a message of several lines: {message!r}"
    if isinstance(err, InvalidValueError):
        assert isinstance(err.field, str) and err.field.strip(), f"no field: {message!r}"
        assert err.field in message, f"the message does not name {err.field!r}: {message!r}"
    if names:
        # A key may be quoted with its escapes (repr) in the value the message quotes.
        assert any(n in message or repr(n)[1:-1] in message for n in names), (
            f"the message names none of the keys mutated {sorted(names)}: {message!r}"
        )


def run_parser(
    parser: FileParser, path: Path, kind: str, names: frozenset[str] = frozenset()
) -> None:
    """Parse ``path`` and use what comes back: a refusal by the parser must be ketapain's
    error naming a mutated key; one by the engine using an accepted document must be
    ketapain's error naming its field (counted as "refused" too)."""
    TRIED[(parser.name, kind)] += 1
    stage = "parse"
    try:
        with warnings.catch_warnings():
            # Extrapolation warnings are expected for odd covariates; every other warning
            # (a numpy overflow...) stays an error, as in the rest of the suite.
            warnings.simplefilter("ignore", KetapainWarning)
            loaded = parser.load(path)
            stage = "use"
            parser.use(loaded)
    except KetapainError as err:
        OUTCOMES[(parser.name, "refused")] += 1
        _check_message(err, names if stage == "parse" else frozenset())
    except Exception as exc:
        if not _known_bug(parser.name, exc):
            raise
        OUTCOMES[(parser.name, "known bug")] += 1
    else:
        OUTCOMES[(parser.name, "accepted")] += 1


# --- strategies --------------------------------------------------------------------------

# Words the parsers know (codes, units, dates, enum values) and words that look like
# numbers, so that a replaced value is sometimes almost right.
# fmt: off
_WORDS: Final = (
    "", " ", "\t\n", "\x00", "\u00e9", "\u202e", "\U0001f489", PATIENT_URL, MRN_SYSTEM,
    "NaN", "nan", "inf", "-inf", "1e400", "-1", "0", "true", "null", "racemic", "s-ketamine",
    "domino-cl79", "oral", "iv_infusion", "iv_bolus", "outpatient", "inpatient", "scheduled",
    "after_decision", "on_relapse", "female", "male", "G90.511", "crps_1", "hypertension",
    "oxycodone", ">", "<=", "rise_pct", "warn", "stop", "sbp_mmhg", "moaas", "2025-03-03",
    "2025-03-03T09:00:00Z", "2025-03-03T09:00:00", "2099-01-01T00:00:00Z", "0001-01-01", "mg/d",
    "mg/h", "ug/h", "mg", "kg", "g", "[lb_av]", "cm", "[in_i]", "umol/L", "U/L", "Cel",
    "[degF]", "%", "/min", "mm[Hg]", "{score}", "8480-6", "29463-7", "8302-2", "72514-3",
    "1742-6", "final", "preliminary", "entered-in-error", "active", "remission", "refuted",
    "http://loinc.org", "http://snomed.info/sct", "http://unitsofmeasure.org", "Patient/1",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
)
_EDGE_NUMBERS: Final = (
    0, -1, 1, 0.0, -0.0, 1e-300, 5e-324, 1e300, 1.7976931348623157e308, 2**53 + 1, 2**63 - 1,
    -(2**63), 24, 24.0, 45.0, 45.000001, 366, 367, 1000, 1e6,
)
# Keys of the formats, added where they do not belong.
_KNOWN_KEYS: Final = (
    "name", "doses", "phases", "pk", "rule", "value", "resourceType", "entry", "extension",
    "id", "code", "subject", "source", "title", "days",
)
# fmt: on
NUMBERS: Final = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_EDGE_NUMBERS),
)
TEXTS: Final = st.one_of(st.text(max_size=12), st.sampled_from(_WORDS))
SCALARS: Final = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)
KEYS: Final = st.one_of(st.text(max_size=8), st.sampled_from(_KNOWN_KEYS))
VALUES: Final = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
# Text made of the punctuation of TOML and JSON, mostly not valid in either.
SYNTAX_TEXT: Final = st.text(
    alphabet=st.sampled_from(list("[]{}=:,.\" '\n#\\-+_.0123456789aeflnrstuxzAENTI")), max_size=120
)


def _depth(text: str) -> int:
    depth = top = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    return top


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, (*path, i))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


_OPS: Final = ("replace", "replace", "delete", "add_key", "wrap", "empty", "scale", "duplicate")


@st.composite
def mutants(draw: st.DrawFn, seeds: tuple[Any, ...], *, toml: bool) -> tuple[Any, frozenset[str]]:
    """A seed with one to three mutations, and the keys on the mutated paths: a refusal
    should name one of them (none are expected when a key was deleted or the whole
    document replaced)."""
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    names: set[str] = set()
    unnamed = False  # a key deleted or the whole document replaced: no key to expect
    for _ in range(draw(st.integers(1, 3))):
        path, node = draw(st.sampled_from(list(_nodes(doc))))
        op = draw(st.sampled_from(_OPS))
        new: Any = node
        if op == "replace":
            new = draw(VALUES)
        elif op == "delete" and path:
            # A missing key may be reported as the alternative then missing (a protocol
            # without phases is read as one phase of top-level doses): no name to expect.
            del _parent(doc, path)[path[-1]]
            unnamed = True
        elif op == "add_key" and isinstance(node, dict):
            key = draw(KEYS)
            node[key] = draw(VALUES)
            names.add(key)
        elif op == "wrap":
            new = draw(st.sampled_from([[node], {"x": node}, [node, node]]))
        elif op == "empty":
            new = draw(st.sampled_from(["", [], {}, 0, False]))
        elif op == "scale" and isinstance(node, int | float) and not isinstance(node, bool):
            factor = draw(st.sampled_from([-1, 0, 0.5, 2, 10, 1000, 1e-9, 1e300]))
            new = node * factor
        elif op == "duplicate" and isinstance(node, list) and node:
            node.append(copy.deepcopy(draw(st.sampled_from(node))))
        if new is not node:
            if not path:
                doc = new if not toml or isinstance(new, dict) else {"x": new}
                unnamed = True
            else:
                _parent(doc, path)[path[-1]] = new
        names.update(p for p in path if isinstance(p, str))
    return doc, frozenset() if unnamed else frozenset(names)


# --- the file parsers: bytes, text, mutations ---------------------------------------------

PARSER_NAMES: Final = sorted(PARSERS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the files the parsers read (one per parser, rewritten per input)."""
    return tmp_path_factory.mktemp("fuzz")


def _file(workdir: Path, parser: FileParser, content: bytes | str) -> Path:
    path = workdir / f"{parser.name}.{parser.fmt}"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", PARSER_NAMES)
@budget(30)
@given(content=st.binary(max_size=200))
def test_random_bytes(workdir: Path, name: str, content: bytes) -> None:
    """Random bytes (mostly not UTF-8): accepted or refused with ketapain's error."""
    assume(_depth(content.decode("latin-1")) <= MAX_GENERATED_DEPTH)
    parser = PARSERS[name]
    run_parser(parser, _file(workdir, parser, content), "bytes")


@pytest.mark.parametrize("name", PARSER_NAMES)
@budget(40)
@given(content=st.one_of(st.text(max_size=120), SYNTAX_TEXT))
def test_random_text(workdir: Path, name: str, content: str) -> None:
    """Random text and text of TOML/JSON punctuation: accepted or refused, well worded."""
    assume(_depth(content) <= MAX_GENERATED_DEPTH)
    parser = PARSERS[name]
    run_parser(parser, _file(workdir, parser, content), "text")


@pytest.mark.parametrize("name", PARSER_NAMES)
@budget(80)
@given(data=st.data())
def test_mutated_shipped_files(workdir: Path, name: str, data: st.DataObject) -> None:
    """Mutations of the shipped valid files: accepted, or refused naming a mutated key."""
    parser = PARSERS[name]
    doc, names = data.draw(mutants(parser.seeds, toml=parser.fmt == "toml"), label="mutant")
    run_parser(parser, _file(workdir, parser, parser.dumps(doc)), "mutant", names)


@pytest.mark.parametrize("name", PARSER_NAMES)
def test_shipped_files_are_accepted(workdir: Path, name: str) -> None:
    """The seeds, written back out by the fuzzer's own serialiser, are accepted as they are
    (so that a refused mutant is refused for its mutation)."""
    parser = PARSERS[name]
    for doc in parser.seeds:
        parser.use(parser.load(_file(workdir, parser, parser.dumps(doc))))


# --- FHIR: the Bundle import (on SQLite) and the R4 validator ------------------------------


@pytest.fixture
def physician(staff: dict[str, Actor]) -> Actor:
    """The physician of the template database (registers patients and charts)."""
    return staff["physician"]


def _check_import_error(err: FhirImportError) -> None:
    assert err.problems, "a refused Bundle names no problem"
    for p in err.problems:
        assert str(p.message).strip(), f"a problem without a message: {p}"
        assert p.expression().startswith("Bundle"), p.expression()


def _import(db: Database, actor: Any, bundle: Any, kind: str) -> str:
    """Import ``bundle``; the outcome: accepted, refused or known bug."""
    TRIED[("fhir-import", kind)] += 1
    outcome = "refused"
    try:
        import_bundle(db, actor, bundle, mrn_system=MRN_SYSTEM)
    except FhirImportError as err:
        _check_import_error(err)
    except KetapainError as err:
        _check_message(err, frozenset())
    except Exception as exc:
        if not _known_bug("fhir-import", exc):
            raise
        outcome = "known bug"
    else:
        outcome = "accepted"
    OUTCOMES[("fhir-import", outcome)] += 1
    return outcome


BUNDLE_SEEDS: Final = (referral_bundle(),)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@budget(100)
@given(data=st.data())
def test_fhir_import_mutated_bundles(db: Database, physician: Any, data: st.DataObject) -> None:
    """Mutations of a valid referral Bundle, imported into one SQLite database (so later
    inputs meet the patient earlier ones wrote: duplicates, corrections, conflicts):
    imported, or refused with a FhirImportError whose every problem names its element."""
    bundle, _ = data.draw(mutants(BUNDLE_SEEDS, toml=False), label="bundle")
    _import(db, physician, bundle, "mutant")


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@budget(30)
@given(
    bundle=st.one_of(
        VALUES,
        st.fixed_dictionaries(
            {"resourceType": st.just("Bundle")},
            optional={
                "type": st.sampled_from(["transaction", "collection", "searchset", "batch"])
                | TEXTS,
                "entry": st.lists(
                    st.one_of(
                        VALUES,
                        st.fixed_dictionaries({"resource": VALUES}, optional={"request": VALUES}),
                    )
                ),
            },
        ),
    )
)
def test_fhir_import_random_json(db: Database, physician: Any, bundle: Any) -> None:
    """Random JSON and random Bundle shells: refused with a FhirImportError (never imported
    by accident, never another exception)."""
    assert _import(db, physician, bundle, "random") != "accepted", bundle


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_fhir_seed_bundle_is_imported(db: Database, physician: Any) -> None:
    """The seed Bundle is valid: it imports (so a refused mutant is refused for its mutation)."""
    result = import_bundle(db, physician, referral_bundle("KP-FUZZ-SEED"), mrn_system=MRN_SYSTEM)
    assert len(result.patients) == 1


RESOURCE_SEEDS: Final = tuple(referral_resources())
RESOURCE_TYPES: Final = (
    "Patient",
    "Observation",
    "Condition",
    "Bundle",
    "Encounter",
    "NutritionProduct",
    "SubscriptionTopic",
    "Foo",
    "",
    "patient",
)


def _validate(resource: Any, kind: str) -> list[Problem]:
    TRIED[("fhir-validate", kind)] += 1
    try:
        problems = check(resource)
    except Exception as exc:
        if not _known_bug("fhir-validate", exc):
            raise
        OUTCOMES[("fhir-validate", "known bug")] += 1
        return []
    assert isinstance(problems, list)
    for p in problems:
        assert isinstance(p, Problem) and isinstance(p.path, str), p
        assert str(p.message).strip(), f"a problem without a message: {p!r}"
    OUTCOMES[("fhir-validate", "refused" if problems else "accepted")] += 1
    return problems


@budget(100)
@given(data=st.data())
def test_fhir_validator_mutated_resources(data: st.DataObject) -> None:
    """Mutations of valid resources: a list of problems (each with a path and a message),
    never an exception."""
    resource, _ = data.draw(mutants(RESOURCE_SEEDS, toml=False), label="resource")
    _validate(resource, "mutant")


@budget(50)
@given(
    resource=st.one_of(
        VALUES,
        st.dictionaries(KEYS, VALUES, max_size=6)
        .map(dict)
        .flatmap(lambda d: st.sampled_from(RESOURCE_TYPES).map(lambda t: {**d, "resourceType": t})),
    )
)
def test_fhir_validator_random_json(resource: Any) -> None:
    """Random JSON and random objects with a resourceType (known, R4B-only, unknown)."""
    _validate(resource, "random")


def test_fhir_validator_accepts_the_seed_resources() -> None:
    """Every seed resource is valid R4 as it is."""
    for resource in RESOURCE_SEEDS:
        assert check(resource) == [], resource["resourceType"]


# --- the command line: a malformed file is one error line, exit code 2, no traceback -------

runner = CliRunner()


@pytest.fixture
def wide_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Error consoles wide enough that an error message is one line, as on a wide terminal."""
    for module in (cli_main, cli_predict, cli_fhir):
        monkeypatch.setattr(module.err_console, "_width", 10_000)


def _cli_error(args: list[str], *, code: int = 2) -> str:
    """Run the command; return its error message, after checking that it exits with
    ``code``, prints no traceback and gives one message: an ``error:`` line, or for a file
    typer's option parsing refuses (``fhir``), typer's error panel (joined here)."""
    # COLUMNS: typer's own error panel is drawn as wide as the message (one line).
    result = runner.invoke(app, args, env={"COLUMNS": "10000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__} escaped: {result.exception!r}"
    )
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    if any("─ Error ─" in line for line in lines):
        return " ".join(line.strip("│ ") for line in lines if line.startswith("│"))
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.mark.usefixtures("wide_errors")
@pytest.mark.parametrize(
    ("command", "filename", "content", "expected"),
    [
        pytest.param(
            ["simulate", "--weight-kg", "70", "--schedule"],
            "s.json",
            '{"doses": [',
            ("schedule file", "s.json"),
            id="schedule-not-json",
        ),
        pytest.param(
            ["simulate", "--weight-kg", "70", "--schedule"],
            "s.json",
            '{"doses": [{"route": "oral", "time_h": 0, "dose_mg": "ten"}]}',
            ("doses[0].dose_mg",),
            id="schedule-dose-text",
        ),
        pytest.param(
            ["screen"],
            "p.json",
            '{"age_y": 45, "sex": "female", "weight_kg": 68, "shoe_size": 40}',
            ("shoe_size",),
            id="patient-unknown-key",
        ),
        pytest.param(
            ["screen"],
            "p.json",
            b"\xff\xfe not UTF-8",
            ("patient file", "p.json"),
            id="patient-not-utf8",
        ),
        pytest.param(
            ["protocols", "--protocol-file"],
            "c.toml",
            "name = [",
            ("c.toml", "TOML"),
            id="protocol-not-toml",
        ),
        pytest.param(
            ["protocols", "--protocol-file"],
            "c.toml",
            'name = "x"\ndrug = 3\n',
            ("c.toml", "drug"),
            id="protocol-drug-number",
        ),
        pytest.param(
            ["fhir", "validate"], "b.json", "{", ("b.json", "not JSON"), id="bundle-not-json"
        ),
        pytest.param(
            ["fhir", "validate"], "b.json", b"\xff{}", ("b.json", "UTF-8"), id="bundle-not-utf8"
        ),
    ],
)
def test_cli_reports_malformed_files(
    tmp_path: Path,
    command: list[str],
    filename: str,
    content: str | bytes,
    expected: tuple[str, ...],
) -> None:
    """A malformed file: exit code 2 and one error message naming the file or the field."""
    path = tmp_path / filename
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = _cli_error([*command, str(path)])
    for word in expected:
        assert word in line, line


@pytest.mark.usefixtures("wide_errors")
def test_cli_reports_malformed_model_file(tmp_path: Path) -> None:
    """A model file without its [pk] table: exit 2, one line naming the file and ``pk``."""
    schedule = tmp_path / "s.json"
    schedule.write_text((EXAMPLES / "schedule.json").read_text(encoding="utf-8"), encoding="utf-8")
    model = tmp_path / "m.toml"
    model.write_text('name = "m"\ndrug = "racemic"\n', encoding="utf-8")
    line = _cli_error(
        ["simulate", "--weight-kg", "70", "--schedule", str(schedule), "--model-file", str(model)]
    )
    assert "m.toml" in line and "pk" in line, line


@pytest.mark.usefixtures("wide_errors")
def test_cli_reports_malformed_drug_library(tmp_path: Path) -> None:
    """A drug library with a text where a limit belongs: exit 2, naming file and limit."""
    library = tmp_path / "lib.toml"
    library.write_text('[profiles.outpatient.rate_mg_per_h]\nhard_max = "60"\n', encoding="utf-8")
    line = _cli_error(
        ["screen", str(EXAMPLES / "patient-crps.json"), "--drug-library", str(library)]
    )
    assert "lib.toml" in line and "hard_max" in line, line


# --- the known bugs, one minimal reproduction each (strict: they fail once fixed) ---------

NOT_UTF8: Final = b'{"doses": []}\xff'
DEEP_JSON: Final = "[" * 5000 + "]" * 5000
DEEP_TOML: Final = "a = " + "[" * 5000 + "]" * 5000 + "\n"
LONG_INT: Final = "1" * 5000
HUGE_INT: Final = "1" + "0" * 400  # 1e400 written out: beyond the float range


def _refused(parser: str, content: bytes | str, tmp_path: Path) -> KetapainError:
    p = PARSERS[parser]
    path = tmp_path / f"f.{p.fmt}"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    with pytest.raises(KetapainError) as err:
        p.use(p.load(path))
    return err.value


def _bug(reason: str, raises: type[BaseException]) -> pytest.MarkDecorator:
    """A known bug: the test fails with ``raises`` until it is fixed, then fails as XPASS."""
    return pytest.mark.xfail(strict=True, reason=reason, raises=raises)


@pytest.mark.parametrize(
    "parser",
    [
        "schedule",
        "model",
        "alarm-rules",
        "patient",
        "protocol",
        "drug-library",
    ],
)
def test_bug_file_not_utf8(parser: str, tmp_path: Path) -> None:
    """B1: a file that is not UTF-8 is refused with ketapain's error naming the file."""
    err = _refused(parser, NOT_UTF8, tmp_path)
    assert "f." in str(err)


@pytest.mark.parametrize("parser", PARSER_NAMES)
def test_bug_deeply_nested_file(parser: str, tmp_path: Path) -> None:
    """B2: 5000 nested arrays are refused with ketapain's error, not a RecursionError."""
    _refused(parser, DEEP_TOML if PARSERS[parser].fmt == "toml" else DEEP_JSON, tmp_path)


@pytest.mark.parametrize("parser", PARSER_NAMES)
def test_bug_integer_of_5000_digits(parser: str, tmp_path: Path) -> None:
    """B3: an integer literal of 5000 digits is refused with ketapain's error."""
    content = f"a = {LONG_INT}\n" if PARSERS[parser].fmt == "toml" else f"[{LONG_INT}]"
    _refused(parser, content, tmp_path)


HUGE_INT_FILES: Final = {
    "patient": f'{{"age_y": 45, "sex": "female", "weight_kg": {HUGE_INT}}}',
    "schedule": f'{{"doses": [{{"route": "oral", "time_h": {HUGE_INT}, "dose_mg": 1}}]}}',
    "model": f'name = "m"\ndrug = "racemic"\n[pk]\ncl_l_per_h = {HUGE_INT}\nv1_l = 4.4\n',
    "alarm-rules": f'[[rule]]\nsignal = "sbp_mmhg"\nlevel = "stop"\nop = ">"\n'
    f'value = {HUGE_INT}\nsource = "x"\n',
    "drug-library": f"[profiles.outpatient.rate_mg_per_h]\nhard_max = {HUGE_INT}\n",
    "protocol": f"max_rate_mg_per_h = {HUGE_INT}\n"
    + (LIBRARY_DIR / "single-day.toml").read_text(encoding="utf-8"),
}


@pytest.mark.parametrize("parser", PARSER_NAMES)
def test_bug_integer_beyond_float_range(parser: str, tmp_path: Path) -> None:
    """B4: a number of 401 digits where a number belongs is refused naming its field."""
    err = _refused(parser, HUGE_INT_FILES[parser], tmp_path)
    assert isinstance(err, InvalidValueError)


def _with_unknown_key(parser: str, key: str) -> str:
    if parser == "patient":
        return json.dumps({"age_y": 45, "sex": "female", "weight_kg": 68, key: 1})
    seed = {
        "model": EXAMPLES / "my_model.toml",
        "drug-library": DRUG_LIBRARY_FILE,
        "protocol": LIBRARY_DIR / "single-day.toml",
    }[parser]
    return f"{_toml_string(key)} = 1\n" + seed.read_text(encoding="utf-8")


@pytest.mark.parametrize("key", ["", "a\nb"], ids=["empty", "line-break"])
@pytest.mark.parametrize("parser", ["drug-library", "model", "patient", "protocol"])
def test_bug_unknown_key_named_bare(parser: str, key: str, tmp_path: Path) -> None:
    """B8: an unknown key "" or "a<newline>b" is refused with a one-line error naming it."""
    message = str(_refused(parser, _with_unknown_key(parser, key), tmp_path))
    assert "\n" not in message and repr(key) in message, message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_alarm_threshold_not_finite_is_refused(value: str, tmp_path: Path) -> None:
    """B6 (fixed): an alarm threshold that is not a finite number is refused naming
    rule[0].value."""
    path = tmp_path / "alarms.toml"
    path.write_text(
        f'[[rule]]\nsignal = "sbp_mmhg"\nlevel = "stop"\nop = ">"\nvalue = {value}\nsource = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(InvalidValueError, match=re.escape("rule[0].value")):
        load_rules(path)


def test_model_tiny_reference_weight_is_refused(tmp_path: Path) -> None:
    """B10 (fixed): a reference weight of 1e-7 kg is refused naming it, or gives a usable
    model."""
    path = tmp_path / "m.toml"
    text = (EXAMPLES / "my_model.toml").read_text(encoding="utf-8")
    path.write_text(
        text.replace("reference_weight_kg = 70", "reference_weight_kg = 1e-7"), encoding="utf-8"
    )
    try:
        model = load_model_file(path)
    except InvalidValueError as err:
        message = str(err)
    else:
        model.parameters(Covariates.single(weight_kg=70.0), warn=False)
        return
    assert "reference_weight_kg" in message, message


def _nested_extensions(depth: int) -> dict[str, Any]:
    ext: dict[str, Any] = {"url": "http://example.org/x", "valueString": "x"}
    for _ in range(depth):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    return ext


def test_bug_fhir_validator_nested_extensions() -> None:
    """B5: a Patient with 200 nested extensions gets problems or none, not a RecursionError."""
    check({"resourceType": "Patient", "extension": [_nested_extensions(200)]})


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_bug_fhir_import_nested_extensions(db: Database, physician: Any) -> None:
    """B5: the referral Bundle with 200 nested extensions on its Patient is imported or
    refused with a FhirImportError."""
    bundle = referral_bundle("KP-FUZZ-DEEP")
    bundle["entry"][0]["resource"]["extension"] = [_nested_extensions(200)]
    with pytest.raises(FhirImportError):
        import_bundle(db, physician, bundle, mrn_system=MRN_SYSTEM)


@pytest.mark.usefixtures("wide_errors")
def test_bug_cli_schedule_not_utf8(tmp_path: Path) -> None:
    """B1 at the command line: a schedule file that is not UTF-8 is one error line."""
    path = tmp_path / "s.json"
    path.write_bytes(NOT_UTF8)
    line = _cli_error(["simulate", "--weight-kg", "70", "--schedule", str(path)])
    assert "s.json" in line


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(DEEP_JSON, id="deep"),
        pytest.param(f"[{LONG_INT}]", id="long-int"),
    ],
)
def test_bug_cli_fhir_bundle_unreadable(tmp_path: Path, content: str) -> None:
    """B2, B3 at the command line: a Bundle file JSON cannot hold is one error message."""
    path = tmp_path / "b.json"
    path.write_text(content, encoding="utf-8")
    assert "b.json" in _cli_error(["fhir", "validate", str(path)])
