"""Reading command-line values and writing simulation results in each format."""

from __future__ import annotations

import csv
import io
import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ketapain.errors import InvalidValueError
from ketapain.pharmacology import Profile
from ketapain.pharmacology._types import FloatArray

MAX_TIME_POINTS = 1_000_000


class Format(StrEnum):
    """Output formats of ``ketapain simulate``."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    PNG = "png"
    NPZ = "npz"
    PARQUET = "parquet"


def parse_times(spec: str) -> FloatArray:
    """Parse ``start:stop:step`` (hours, stop included) into an array of times.

    >>> parse_times("0:1:0.25").tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    parts = spec.split(":")
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise InvalidValueError(
            "--times-h", "START:STOP:STEP in hours, e.g. 0:8:0.25", spec
        ) from None
    if not all(math.isfinite(x) for x in (start, stop, step)) or step <= 0 or stop < start:
        raise InvalidValueError("--times-h", "finite START <= STOP and STEP > 0", spec)
    n = math.floor((stop - start) / step + 1e-9) + 1
    if n > MAX_TIME_POINTS:
        raise InvalidValueError("--times-h", f"at most {MAX_TIME_POINTS} points", n)
    return np.asarray(start + step * np.arange(n), dtype=np.float64)


def summary_columns(profile: Profile, *, population: bool) -> dict[str, FloatArray]:
    """Return the columns reported for one patient or a population's percentiles."""
    columns: dict[str, FloatArray] = {"time_h": profile.time_h}
    if population:
        columns |= {
            k: v for k, v in profile.percentiles((5.0, 50.0, 95.0)).items() if "amount" not in k
        }
    else:
        columns |= {k: v[0] for k, v in profile.curves().items() if "amount" not in k}
    return columns


def to_json(columns: dict[str, FloatArray]) -> str:
    """Return the columns as a JSON object of equal-length arrays."""
    return json.dumps({k: [float(x) for x in v] for k, v in columns.items()})


def to_csv(columns: dict[str, FloatArray]) -> str:
    """Return the columns as CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values(), strict=True):
        writer.writerow([f"{float(x):.6g}" for x in row])
    return buffer.getvalue()


def save_curves(profile: Profile, path: Path, fmt: Format, extra: dict[str, FloatArray]) -> None:
    """Save every subject's curves (npz: arrays (N, T); parquet: one row per subject-time)."""
    curves = {k: v for k, v in profile.curves().items() if "amount" not in k}
    if fmt is Format.NPZ:
        arrays: dict[str, Any] = {"time_h": profile.time_h, **curves, **extra}
        np.savez_compressed(path, **arrays)
        return
    n, t = profile.n_subjects, profile.time_h.size
    table = {
        "subject": np.repeat(np.arange(n, dtype=np.int32), t),
        "time_h": np.tile(profile.time_h, n),
        **{k: np.ascontiguousarray(v).reshape(-1) for k, v in curves.items()},
        **{k: np.repeat(v, t) for k, v in extra.items()},
    }
    pq.write_table(pa.table(table), path)
