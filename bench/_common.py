"""Pieces shared by the benchmark scripts (imported from the scripts' folder)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

FloatArray = NDArray[np.float64]


def linear_rhs(_t: float, x: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """dx/dt = A x + b, the right-hand side every solve_ivp baseline integrates."""
    return a @ x + b


def _jacobian(_t: float, _x: FloatArray, a: FloatArray, _b: FloatArray) -> FloatArray:
    return a


#: The solve_ivp settings of every baseline: LSODA with the exact Jacobian.
LSODA: dict[str, Any] = {"method": "LSODA", "rtol": 1e-6, "atol": 1e-9, "jac": _jacobian}


def show(console: Console, title: str, columns: str, rows: list[list[str]], left: int) -> None:
    """Print a table of ``columns`` (separated by '|'); the first ``left`` align left."""
    out = Table(title=title)
    for k, col in enumerate(columns.split("|")):
        out.add_column(col, justify="left" if k < left else "right")
    for row in rows:
        out.add_row(*row)
    console.print(out)
