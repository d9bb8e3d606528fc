"""Every resource ketapain writes or reads is checked twice, as FHIR R4 requires.

1. By the resource models of ``fhir.resources`` (pydantic): types, cardinality, required
   elements, a single choice of ``value[x]``. The library ships no plain R4 package,
   only R4B (4.3.0) beside R5 and STU3; R4B leaves the resources ketapain uses as R4
   defines them, so ketapain builds and reads them with the R4B models.
2. By HL7's official R4 JSON Schema (``fhir.schema.json`` as published with 4.0.0, of
   which 4.0.1 is the technical correction; public domain, vendored here compressed):
   required-binding codes (a ``status`` outside its value set), unknown elements,
   anything R4B added that R4 lacks. This is what makes the output R4.

The two catch complementary errors (the schema misses the single-choice rule, the
models miss the codes), so an entry is valid only if both accept it.

>>> check({"resourceType": "Observation", "status": "done", "code": {"text": "x"}})[0].path
'status'
>>> check({"resourceType": "Patient", "gender": "female"})
[]
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = ["MAX_NESTING", "SUPPORTED_VERSION", "Problem", "check", "model_class", "nesting_problem"]

SUPPORTED_VERSION: Final = "4.0.1"

# The deepest nesting of objects and arrays a resource may have, the resource itself the
# first level. The resource models validate by recursion, about four interpreter frames
# a level, and run out of Python's 1000 frames near 245 levels (122 nested extensions):
# 64 levels keep validation near 260 frames, leaving the rest for the caller (a web
# request's stack), and are still far deeper than any resource ketapain reads or
# writes (a nested extension or Questionnaire item adds two levels).
MAX_NESTING: Final = 64


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a resource: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@cache
def _schema() -> dict[str, Any]:
    raw = resources.files("ketapain.fhir").joinpath("fhir.schema.json.gz").read_bytes()
    schema: dict[str, Any] = json.loads(gzip.decompress(raw))
    # HL7 generated the JSON Schema with R4 4.0.0; 4.0.1 is its technical correction,
    # and the schema's lists of FHIR versions stop at 4.0.0: 4.0.1 joins them.
    for definition in schema["definitions"].values():
        for element in (definition.get("properties") or {}).values():
            versions = element.get("enum") if isinstance(element, dict) else None
            if isinstance(versions, list) and versions[-1:] == ["4.0.0"]:
                versions.append(SUPPORTED_VERSION)
    return schema


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The definitions with every ``{"$ref": "#/definitions/X"}`` replaced by X itself.

    The graph is cyclic (an Extension has Extensions), which validation does not mind: it
    descends only as deep as the resource. This spares the validator a reference lookup
    at every element (about a third of its time). In draft 6 the siblings of ``$ref`` are
    ignored, so replacing the whole object changes nothing.
    """
    definitions: dict[str, Any] = schema["definitions"]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                return definitions[ref.removeprefix("#/definitions/")]
            for key, value in node.items():
                node[key] = walk(value)
        elif isinstance(node, list):
            for k, value in enumerate(node):
                node[k] = walk(value)
        return node

    for value in definitions.values():
        walk(value)
    return definitions


@cache
def _definitions() -> dict[str, Any]:
    return _inline_refs(_schema())


@cache
def _validator(resource_type: str) -> Any:
    from jsonschema import Draft6Validator

    definitions = _definitions()
    if resource_type not in definitions:
        return None
    return Draft6Validator(definitions[resource_type])


def model_class(resource_type: str) -> Any:
    """The fhir.resources (R4B) model class of a resource type, or None if unknown."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("__root__",):
            out += f".{part}" if out else str(part)
    return out


def _schema_problems(resource: Mapping[str, Any]) -> list[Problem]:
    kind = str(resource.get("resourceType"))
    validator = _validator(kind)
    if validator is None:
        # A type of R4B (or R5) that R4 lacks: NutritionProduct, SubscriptionTopic...
        return [Problem("resourceType", f"not a FHIR R4 resource type: {kind!r}")]
    problems = []
    for error in validator.iter_errors(resource):
        # A failed oneOf (a wrong resource in a reference list) names its best sub-error.
        best = error
        if best.context:
            best = min(best.context, key=lambda e: len(list(e.relative_path)))
        message = best.message
        if len(message) > 300:
            message = message[:297] + "..."
        problems.append(Problem(_path(best.absolute_path), message))
    return problems


def _model_problems(resource: Mapping[str, Any]) -> list[Problem]:
    from pydantic import ValidationError

    cls = model_class(str(resource.get("resourceType")))
    if cls is None:
        return [
            Problem("resourceType", f"not a FHIR R4 resource: {resource.get('resourceType')!r}")
        ]
    try:
        cls.model_validate(dict(resource))
    except ValidationError as err:
        return [Problem(_path(e["loc"]), e["msg"]) for e in err.errors()]
    except (TypeError, ValueError) as err:
        return [Problem("", str(err))]
    return []


def nesting_problem(resource: Mapping[str, Any]) -> Problem | None:
    """A problem if ``resource`` nests objects and arrays more than :data:`MAX_NESTING`
    levels deep (the resource itself is the first), naming the top-level element that
    does; None otherwise. Iterative, so any depth that JSON decoding allowed is safe."""
    stack: list[tuple[Any, str, int]] = [
        (value, _path([key]), 2) for key, value in resource.items()
    ]
    while stack:
        node, top, depth = stack.pop()
        if not isinstance(node, Mapping | list):
            continue
        if depth > MAX_NESTING:
            return Problem(
                top, f"objects and arrays nested at most {MAX_NESTING} levels deep, got deeper"
            )
        values = node.values() if isinstance(node, Mapping) else node
        stack.extend((value, top, depth + 1) for value in values)
    return None


def check(resource: Mapping[str, Any]) -> list[Problem]:
    """Everything wrong with ``resource`` as FHIR R4 (empty if it is valid)."""
    if not isinstance(resource, Mapping) or "resourceType" not in resource:
        return [Problem("resourceType", "a FHIR resource (a JSON object with resourceType)")]
    too_deep = nesting_problem(resource)
    if too_deep is not None:
        return [too_deep]
    problems = _model_problems(resource)
    if problems and problems[0].path == "resourceType":
        return problems
    seen = {p.path for p in problems}
    problems += [p for p in _schema_problems(resource) if p.path not in seen]
    return problems
