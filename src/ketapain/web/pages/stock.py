"""The controlled-substance log: balances per lot with the discrepancies highlighted, bag
accounts, forms to receive, draw, waste (with a witness) and return; a lot's ledger."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from ketapain.clinic.audit import Actor, reading
from ketapain.clinic.controlled import (
    draw,
    receive,
    return_stock,
    waste,
)
from ketapain.clinic.db import Database
from ketapain.clinic.permissions import Action
from ketapain.clinic.stock_accounts import (
    MIN_TOLERANCE_MG,
    PUMP_ACCURACY_FRACTION,
    PUMP_ACCURACY_SOURCE,
    bag_accounts,
    discrepancies_of,
    ledger,
    lot_balances,
    witnesses,
)
from ketapain.errors import AccessDeniedError, KetapainError
from ketapain.web.deps import DbDep
from ketapain.web.pages._render import (
    FormReader,
    PageUser,
    PageUserDep,
    field_errors,
    read_form,
    redirect,
    refused_on_page,
    render,
)

__all__ = ["router"]

router = APIRouter()


# Bags shown and offered in the forms, newest first (all of them: the API).
_BAGS_LISTED: Final = 40


def _bag_option(b: dict[str, Any]) -> tuple[str, str]:
    text = (
        f"{b['patient_mrn']} · session {b['session_number']} · {b['bag_mg']:g} mg · "
        f"lot {b['lot']} · {b['state'].replace('_', ' ')}"
    )
    return b["infusion_id"], text


def _page(request: Request, db: DbDep, me: PageUser, **context: Any) -> Response:
    actor = me.user.actor()
    with reading(db, actor) as session:
        lots = lot_balances(session, actor)
        bags = bag_accounts(session, actor)
        flags = discrepancies_of(lots, bags)
        people = witnesses(session, actor)
    return render(
        request,
        "stock.html",
        page_user=me,
        lots=lots,
        bags=bags[::-1][:_BAGS_LISTED],
        flags=flags,
        flagged_lots={f["lot"] for f in flags if f["kind"] == "lot_negative"},
        bag_options=[("", "choose the bag")] + [_bag_option(b) for b in bags[::-1][:_BAGS_LISTED]],
        witness_options=[("", "choose the witness")]
        + [(w["username"], f"{w['full_name']} ({w['role']})") for w in people],
        tolerance=f"{PUMP_ACCURACY_FRACTION:.0%} of the dose given, at least "
        f"{MIN_TOLERANCE_MG:g} mg ({PUMP_ACCURACY_SOURCE.short()}: stated pump accuracy)",
        ledger=None,
        **context,
    )


@router.get("/stock")
def stock(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """Balances, discrepancies, bag accounts and the forms of the log."""
    return _page(request, db, me)


@router.get("/stock/{lot:path}")
def lot_page(request: Request, lot: str, db: DbDep, me: PageUserDep) -> Response:
    """The ledger of one lot, with the running balance."""
    actor = me.user.actor()
    with reading(db, actor) as session:
        rows = ledger(session, actor, lot=lot)
    return render(request, "stock.html", page_user=me, lot=lot, ledger=rows)


def _infusion(r: FormReader, *, required: bool) -> uuid.UUID | None:
    raw = r.text("infusion_id", required=required, what="the bag")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        r.errors["infusion_id"] = f"Must be a bag from the list (got {raw})."
        return None


def _receive(db: Database, actor: Actor, r: FormReader) -> str:
    values: dict[str, Any] = {
        "lot": r.text("lot", required=True, what="the lot number"),
        "vial_mg_per_ml": r.number("vial_mg_per_ml", required=True, what="the strength"),
        "vial_ml": r.number("vial_ml", required=True, what="the vial's volume"),
        "vials": r.whole("vials", required=True, what="the number of vials"),
        "occurred_utc": r.when("occurred_utc"),
        "note": r.text("note"),
    }
    r.done()
    return receive(db, actor, **values).lot


def _draw(db: Database, actor: Actor, r: FormReader) -> str:
    values: dict[str, Any] = {
        "lot": r.text("lot", required=True, what="the lot number"),
        "amount_mg": r.number("amount_mg", required=True, what="the amount drawn"),
        "infusion_id": _infusion(r, required=True),
        "occurred_utc": r.when("occurred_utc"),
    }
    r.done()
    return draw(db, actor, **values).lot


def _waste(db: Database, actor: Actor, r: FormReader) -> str:
    values: dict[str, Any] = {
        "lot": r.text("lot", required=True, what="the lot number"),
        "amount_mg": r.number("amount_mg", required=True, what="the amount wasted"),
        "witness_username": r.text("witness", required=True, what="the witness"),
        "infusion_id": _infusion(r, required=False),
        "reason": r.text("reason", required=True, what="the reason"),
        "occurred_utc": r.when("occurred_utc"),
    }
    r.done()
    return waste(db, actor, **values).lot


def _return(db: Database, actor: Actor, r: FormReader) -> str:
    values: dict[str, Any] = {
        "lot": r.text("lot", required=True, what="the lot number"),
        "amount_mg": r.number("amount_mg", required=True, what="the amount returned"),
        "note": r.text("note", required=True, what="to whom, and the paperwork"),
        "occurred_utc": r.when("occurred_utc"),
    }
    r.done()
    return return_stock(db, actor, **values).lot


_ACTIONS: Final[dict[str, Callable[[Database, Actor, FormReader], str]]] = {
    "receipts": _receive,
    "draws": _draw,
    "waste": _waste,
    "returns": _return,
}


def _again(
    request: Request, db: DbDep, me: PageUser, form: FormData, err: KetapainError
) -> Response:
    if isinstance(err, AccessDeniedError):
        errors = refused_on_page(err, me.user.actor(), Action.CONTROLLED_LOG)
        return _page(request, db, me, status=403, values=form, errors=errors)
    return _page(request, db, me, status=422, values=form, errors=field_errors(err))


@router.post("/stock/{action}")
async def act(request: Request, action: str, db: DbDep, me: PageUserDep) -> Response:
    """Receive vials, draw into a bag, waste with a witness, return to the supplier."""
    form = await read_form(request, me.secret)
    handler = _ACTIONS.get(action)
    if handler is None:
        return render(
            request, "error.html", page_user=me, status=404, title="Not found",
            message=f"no stock action {action!r}",
        )  # fmt: skip
    try:
        lot = handler(db, me.user.actor(), FormReader(form, me.tz))
    except KetapainError as err:
        return _again(request, db, me, form, err)
    return redirect("/stock#lots", page_user=me, flash=[("ok", f"Logged in lot {lot}.")])
