"""Reading the JSON and TOML files users give ketapain, with the refusals every parser
of such a file needs.

:func:`read_json` and :func:`read_toml` read a file as UTF-8 text, decode it, and refuse
with ketapain's :class:`~ketapain.errors.InvalidValueError` (naming the file, or the
field at fault) what the standard decoders would let out as another exception, or what
no parser of ketapain can use:

* bytes that are not UTF-8;
* text that is not JSON (or TOML);
* arrays and tables nested more than :data:`MAX_DEPTH` levels deep;
* an integer of more digits than Python converts (``sys.get_int_max_str_digits()``);
* an integer beyond the range of a float (``1`` and 400 zeros), which no quantity of
  ketapain is and which would overflow where a number is checked.

A file that cannot be opened (missing, a folder) raises the ``OSError`` of
:meth:`pathlib.Path.read_bytes`: each parser words that one itself.

The file is named in one of two ways, as each parser already does for its other errors:
by default the file's label (``"schedule file"``) is the field and its path the value;
with ``prefix=True`` the error is a :class:`~ketapain.errors.ModelFileError`, whose
message begins with the path.

:func:`key_name` names a key of a file in an error so that every key is seen, on one
line: ``''`` for an empty key, ``'a\\nb'`` for one with a line break.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ketapain.errors import InvalidValueError, ModelFileError, key_name

__all__ = ["MAX_DEPTH", "key_name", "read_json", "read_toml"]

# The deepest nesting a file is allowed. The formats read this way nest at most six
# levels (a protocol: phases, a phase, its doses, a dose, its steps, a step); 64 leaves
# room for any hand-written file, and keeps what reads the document afterwards
# (validation, the repr of a value in an error message) far below Python's recursion
# limit of 1000 frames.
MAX_DEPTH: Final = 64

_FLOAT_MAX: Final = sys.float_info.max


def read_json(path: Path, what: str, *, prefix: bool = False) -> Any:
    """The decoded JSON of ``path``, refused as the module says; ``what`` names the file
    (``"schedule file"``) or, with ``prefix``, is the field a whole-file error names."""
    return _read(path, what, prefix, "JSON", json.loads)


def read_toml(path: Path, what: str, *, prefix: bool = False) -> dict[str, Any]:
    """The decoded TOML of ``path``, refused as the module says (see :func:`read_json`)."""
    data: dict[str, Any] = _read(path, what, prefix, "TOML", tomllib.loads)
    return data


def _read(path: Path, what: str, prefix: bool, fmt: str, decode: Callable[[str], Any]) -> Any:
    def refuse(field: str | None, allowed: str, found: str) -> InvalidValueError:
        """The error of a file (``field`` None: the file as a whole) in the caller's style."""
        if prefix:
            return ModelFileError(str(path), field or what, allowed, found)
        if field is None:
            return InvalidValueError(what, f"{allowed} ({found})", str(path))
        return InvalidValueError(field, allowed, found)

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        found = f"byte 0x{raw[err.start]:02x} at offset {err.start} is not UTF-8"
        raise refuse(None, "UTF-8 text", found) from None
    nested = f"{fmt} nested at most {MAX_DEPTH} levels deep"
    containers = "arrays or tables" if fmt == "TOML" else "arrays or objects"
    try:
        data = decode(text)
    except RecursionError:
        raise refuse(None, nested, f"{containers} nested deeper") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise refuse(None, f"valid {fmt}", str(err)) from None
    except ValueError as err:
        # int() refuses a literal of more digits than sys.get_int_max_str_digits().
        if "integer string conversion" not in str(err):
            raise refuse(None, f"valid {fmt}", str(err)) from None
        digits = sys.get_int_max_str_digits()
        raise refuse(
            None, f"{fmt} whose integers have at most {digits} digits", "a longer integer"
        ) from None
    _check_tree(data, refuse, nested, containers)
    return data


def _check_tree(
    data: Any,
    refuse: Callable[[str | None, str, str], InvalidValueError],
    nested: str,
    containers: str,
) -> None:
    """Refuse nesting beyond MAX_DEPTH and integers beyond the float range (iteratively:
    the document may be as deep as the decoder could follow)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict | list):
            if len(path) >= MAX_DEPTH:
                raise refuse(None, nested, f"{containers} nested deeper")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((value, (*path, key)) for key, value in items)
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > _FLOAT_MAX:
            field = _field(path)
            found = f"an integer of {len(str(abs(node)))} digits"
            raise refuse(field or None, f"a number of magnitude at most {_FLOAT_MAX:.4g}", found)


def _field(path: tuple[str | int, ...]) -> str:
    """``path`` as the parsers name fields: ``doses[0].time_h``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{key_name(part)}" if out else key_name(part)
    return out
