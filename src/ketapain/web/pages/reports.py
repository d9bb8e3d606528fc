"""The cohort outcome report for physicians and admins, with its downloads.

``/reports/cohort`` shows the filter form and the report; the same query string on
``.pdf``, ``.csv``, ``.parquet`` and ``.json`` downloads the PDF, the de-identified
analysis table and the analysis as JSON. Every request reads the records once (audited).
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ketapain.analytics.cohort import CohortFilter
from ketapain.analytics.report import CohortAnalysis, analyse
from ketapain.clinic.audit import reading
from ketapain.clinic.db import utc_now
from ketapain.clinic.outcomes import cohort_table
from ketapain.clinic.permissions import Action, require
from ketapain.errors import InvalidValueError
from ketapain.protocols.library import list_protocols
from ketapain.protocols.vocabulary import DIAGNOSES
from ketapain.reports.cohort_report import export_table, render_cohort_html, write_cohort_pdf
from ketapain.web.deps import DbDep, SettingsDep
from ketapain.web.pages._render import PageUser, PageUserDep, render

__all__ = ["router"]

router = APIRouter()

_Multi = Annotated[list[str] | None, Query()]


def _day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(field, "a date YYYY-MM-DD", value) from None


def _analysis(
    db: DbDep,
    settings: SettingsDep,
    me: PageUser,
    purpose: str,
    start_from: str | None,
    start_to: str | None,
    protocol: list[str] | None,
    diagnosis: list[str] | None,
) -> tuple[CohortAnalysis, datetime]:
    actor = me.user.actor()
    with reading(db, actor):  # a refusal is audited
        require(actor, Action.READ_OUTCOMES, "outcome reports are for physicians and admins")
    f = CohortFilter(
        start_from=_day(start_from, "from"),
        start_to=_day(start_to, "to"),
        protocols=tuple(p for p in protocol or () if p),
        diagnoses=tuple(d for d in diagnosis or () if d),
    )
    now = utc_now()
    table = cohort_table(db, actor, purpose=purpose, as_of=now, snapshot=settings.outcome_snapshot)
    return analyse(table, f), now


def _query(request: Request) -> str:
    return urlencode(list(request.query_params.multi_items()))


@router.get("/reports/cohort")
def cohort_page(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    me: PageUserDep,
    start_from: Annotated[str | None, Query(alias="from")] = None,
    start_to: Annotated[str | None, Query(alias="to")] = None,
    protocol: _Multi = None,
    diagnosis: _Multi = None,
) -> Response:
    """The report of the courses the filters select, with download links."""
    a, now = _analysis(db, settings, me, "report page", start_from, start_to, protocol, diagnosis)
    q = _query(request)
    links = {k: f"/reports/cohort.{k}?{q}" for k in ("pdf", "csv", "parquet", "json")}
    return render(
        request,
        "report.html",
        page_user=me,
        report=render_cohort_html(a, generated=now, fragment=True, links=links),
        protocols=[p.name for p in list_protocols()],
        diagnoses=sorted(DIAGNOSES),
        chosen={
            "from": start_from or "",
            "to": start_to or "",
            "protocol": set(protocol or ()),
            "diagnosis": set(diagnosis or ()),
        },
    )


def _download(body: bytes, media: str, name: str) -> Response:
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/reports/cohort.{kind}")
def cohort_download(
    kind: str,
    db: DbDep,
    settings: SettingsDep,
    me: PageUserDep,
    start_from: Annotated[str | None, Query(alias="from")] = None,
    start_to: Annotated[str | None, Query(alias="to")] = None,
    protocol: _Multi = None,
    diagnosis: _Multi = None,
) -> Response:
    """The PDF report, the analysis table (CSV, Parquet) or the analysis (JSON)."""
    if kind not in ("pdf", "csv", "parquet", "json"):
        raise InvalidValueError("format", "pdf, csv, parquet or json", kind)
    a, now = _analysis(
        db, settings, me, f"{kind} download", start_from, start_to, protocol, diagnosis
    )
    stamp = now.strftime("%Y%m%d")
    if kind == "json":
        body = json.dumps(a.as_dict(), default=str, allow_nan=False).encode()
        return Response(body, media_type="application/json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cohort.{kind}"
        if kind == "pdf":
            write_cohort_pdf(a, path, generated=now)
            return Response(path.read_bytes(), media_type="application/pdf")
        export_table(a.table, path, fmt=kind)
        data = path.read_bytes()
    media = "text/csv" if kind == "csv" else "application/vnd.apache.parquet"
    return _download(data, media, f"ketapain-cohort-{stamp}.{kind}")
