"""Table printing shared by the benchmark scripts (imported from the script's folder)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def show(console: Console, title: str, columns: str, rows: list[list[str]], left: int) -> None:
    """Print a table of ``columns`` (separated by '|'); the first ``left`` align left."""
    out = Table(title=title)
    for k, col in enumerate(columns.split("|")):
        out.add_column(col, justify="left" if k < left else "right")
    for row in rows:
        out.add_row(*row)
    console.print(out)
