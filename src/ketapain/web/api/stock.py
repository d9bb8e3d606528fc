"""The controlled-substance log: receipts, draws into bags, witnessed waste, returns,
corrections; balances per lot, the ledger of a lot, bag accounts and discrepancies."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, Field

from ketapain.clinic.controlled import (
    correct_entry,
    draw,
    receive,
    return_stock,
    waste,
)
from ketapain.clinic.stock_accounts import (
    bag_accounts,
    discrepancies,
    ledger,
    lot_balances,
)
from ketapain.web.api._schemas import Body, Correction
from ketapain.web.deps import ActorDep, DbDep, ReadDep

router = APIRouter(tags=["stock"])

Tolerance = Annotated[
    float | None,
    Query(
        description="The gap in mg a finished bag may show (default: the pump's stated "
        "accuracy, 5% of the dose given, at least 1 mg)."
    ),
]


class ReceiptIn(Body):
    """Vials received: lot, strength, volume and count (the amount is computed)."""

    lot: str
    vial_mg_per_ml: float
    vial_ml: float
    vials: int
    occurred_utc: AwareDatetime | None = None
    note: str | None = None


class DrawIn(Body):
    """Ketamine drawn from a lot into an infusion's bag."""

    lot: str
    amount_mg: float
    infusion_id: uuid.UUID
    occurred_utc: AwareDatetime | None = None


class WasteIn(Body):
    """Ketamine wasted before a witness: from a bag after its infusion, or from stock."""

    lot: str
    amount_mg: float
    witness_username: str
    reason: str
    infusion_id: uuid.UUID | None = None
    occurred_utc: AwareDatetime | None = None


class ReturnIn(Body):
    """Stock returned to the supplier or a reverse distributor."""

    lot: str
    amount_mg: float
    note: str = Field(description="To whom, and the paperwork.")
    occurred_utc: AwareDatetime | None = None


@router.post("/stock/receipts", status_code=201)
def new_receipt(body: ReceiptIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Log vials received (physician, nurse); the amount is vials x mL x mg/mL."""
    return receive(db, actor, **body.model_dump()).as_dict()


@router.post("/stock/draws", status_code=201)
def new_draw(body: DrawIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Log a draw into a bag; more than the lot holds answers 409."""
    return draw(db, actor, **body.model_dump()).as_dict()


@router.post("/stock/waste", status_code=201)
def new_waste(body: WasteIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Log waste with a witness (another physician or nurse, by username)."""
    return waste(db, actor, **body.model_dump()).as_dict()


@router.post("/stock/returns", status_code=201)
def new_return(body: ReturnIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Log stock returned to the supplier or a reverse distributor."""
    return return_stock(db, actor, **body.model_dump()).as_dict()


@router.post("/stock/entries/{entry_id}/corrections", status_code=201)
def correction(entry_id: uuid.UUID, body: Correction, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Correct (or retract) a log entry with the reason; a new witness is ``witness``."""
    row = correct_entry(db, actor, entry_id, **body.model_dump())
    return row.as_dict() | {"corrects_id": str(entry_id), "entered_in_error": row.entered_in_error}


@router.get("/stock/lots")
def lots(session: ReadDep, actor: ActorDep) -> list[dict[str, Any]]:
    """Balances per lot: received, drawn, wasted, returned, on hand (mg and mL)."""
    return lot_balances(session, actor)


@router.get("/stock/lots/{lot:path}")
def lot_ledger(lot: str, session: ReadDep, actor: ActorDep) -> list[dict[str, Any]]:
    """The ledger of a lot: entries in time order with the balance after each."""
    return ledger(session, actor, lot=lot)


@router.get("/stock/bags")
def bags(
    session: ReadDep, actor: ActorDep, lot: str | None = None, tolerance_mg: Tolerance = None
) -> list[dict[str, Any]]:
    """Bag accounts: drawn, given (from the pump), wasted and unaccounted, with flags."""
    return bag_accounts(session, actor, lot=lot, tolerance_mg=tolerance_mg)


@router.get("/stock/discrepancies")
def flagged(
    session: ReadDep, actor: ActorDep, tolerance_mg: Tolerance = None
) -> list[dict[str, Any]]:
    """What does not add up, each with its reason."""
    return discrepancies(session, actor, tolerance_mg=tolerance_mg)
