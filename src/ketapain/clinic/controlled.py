"""The controlled-substance log: ketamine is a Schedule III drug (DEA).

Every milligram is accounted for, per vial lot: vials received, drawn into an infusion
bag, wasted (with a second person as witness) and returned. What a patient received
comes from the infusion record (the pump events), never typed twice. Entries are
appended, never edited; a correction is a new row.

Writes (:func:`receive`, :func:`draw`, :func:`waste`, :func:`return_stock`,
:func:`correct_entry`) and reads (:mod:`ketapain.clinic.stock_accounts`) need the
``controlled_log`` permission (physicians and nurses): the log names the patient of each
bag. Stock never goes negative through a write; a correction may leave it so, and that is
flagged.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic._service import check_range, user_id
from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent, PumpState, pump_state
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.clinic.records import Correctable, correct, current, get_or_raise
from ketapain.errors import ConflictError, InvalidValueError

__all__ = [
    "EntryKind",
    "StockEntry",
    "correct_entry",
    "draw",
    "receive",
    "return_stock",
    "waste",
]


class EntryKind(StrEnum):
    """What moved: stock in, into a bag, wasted, or back to the supplier."""

    RECEIPT = "receipt"
    DRAW = "draw"
    WASTE = "waste"
    RETURN = "return"


class StockEntry(Correctable):
    """One movement of ketamine from or into a vial lot, in mg.

    A receipt gives the vials' strength and count; a draw names the infusion whose bag it
    filled; a waste names its witness (another user) and, when left in a bag, the
    infusion.
    """

    __tablename__ = "stock_entries"
    __copy_on_correct__: ClassVar = (
        "kind",
        "lot",
        "amount_mg",
        "occurred_utc",
        "vial_mg_per_ml",
        "vial_ml",
        "vials",
        "infusion_id",
        "witness_id",
        "note",
    )

    kind: Mapped[EntryKind] = mapped_column(String(10))
    lot: Mapped[str] = mapped_column(String(60), index=True)
    amount_mg: Mapped[float]
    occurred_utc: Mapped[datetime] = mapped_column(default=utc_now)
    vial_mg_per_ml: Mapped[float | None] = mapped_column(default=None)
    vial_ml: Mapped[float | None] = mapped_column(default=None)
    vials: Mapped[int | None] = mapped_column(default=None)
    infusion_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("infusions.id"), default=None, index=True
    )
    witness_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if self.kind not in set(EntryKind):
            raise InvalidValueError("kind", f"one of {', '.join(EntryKind)}", self.kind)
        if not (self.lot or "").strip():
            raise InvalidValueError("lot", "the vial lot number", self.lot)
        # 100 g bounds typing slips (a box of 25 vials of 500 mg/10 mL is 12.5 g).
        check_range("amount_mg", self.amount_mg, 0.001, 100000.0)
        if self.kind == EntryKind.RECEIPT:
            # Ketamine vials come at 10, 50 and 100 mg/mL (clinical reference 3.7; DailyMed [S48]).
            check_range("vial_mg_per_ml", self.vial_mg_per_ml, 1.0, 100.0)
            check_range("vial_ml", self.vial_ml, 0.1, 100.0)
            if self.vial_mg_per_ml is None or self.vial_ml is None or self.vials is None:
                raise InvalidValueError(
                    "vials", "a receipt names vial_mg_per_ml, vial_ml and vials", None
                )
            check_range("vials", self.vials, 1, 10000)
            expected = self.vial_mg_per_ml * self.vial_ml * self.vials
            if abs(expected - self.amount_mg) > 1e-6 * max(expected, 1.0):
                raise InvalidValueError(
                    "amount_mg", f"vials x mL x mg/mL = {expected:g}", self.amount_mg
                )
        if self.kind == EntryKind.DRAW and self.infusion_id is None:
            raise InvalidValueError("infusion_id", "the infusion whose bag was filled", None)
        if self.kind == EntryKind.WASTE and self.witness_id is None:
            raise InvalidValueError("witness", "a second person who saw the waste", None)
        if self.witness_id is not None and self.witness_id == self.recorded_by_id:
            raise InvalidValueError("witness", "someone other than the recorder", "self")

    def as_dict(self) -> dict[str, Any]:
        """The entry, as the log shows it."""
        return {
            "id": str(self.id),
            "kind": str(self.kind),
            "lot": self.lot,
            "amount_mg": self.amount_mg,
            "occurred_utc": self.occurred_utc.isoformat(),
            "vial_mg_per_ml": self.vial_mg_per_ml,
            "vial_ml": self.vial_ml,
            "vials": self.vials,
            "infusion_id": None if self.infusion_id is None else str(self.infusion_id),
            "witness_id": None if self.witness_id is None else str(self.witness_id),
            "note": self.note,
            "recorded_by": str(self.recorded_by_id),
            "recorded_utc": self.recorded_utc.isoformat(),
        }


# --- services ---------------------------------------------------------------------------

# Charting devices' clocks differ by seconds; a time further ahead is a typing error.
_CLOCK_SKEW: Final = timedelta(minutes=1)
# Float slack when comparing sums of mg (arithmetic, not a clinical tolerance).
_EPS_MG: Final = 1e-6


def _delta_mg(e: StockEntry) -> float:
    """What an entry does to its lot: a receipt adds; a draw, a return and waste from stock
    take away; waste left in a bag left the lot when it was drawn."""
    if e.kind == EntryKind.RECEIPT:
        return e.amount_mg
    if e.kind == EntryKind.WASTE and e.infusion_id is not None:
        return 0.0
    return -e.amount_mg


def _entries(session: Session, lot: str | None = None) -> list[StockEntry]:
    query = current(StockEntry).order_by(
        StockEntry.occurred_utc, StockEntry.recorded_utc, StockEntry.id
    )
    if lot is not None:
        query = query.where(StockEntry.lot == lot)
    return list(session.scalars(query))


def _lot(lot: str) -> str:
    if not isinstance(lot, str) or not lot.strip():
        raise InvalidValueError("lot", "the vial lot number", lot)
    return lot.strip()


def _number(field: str, value: float | None, *, whole: bool = False) -> float:
    """A positive number (the model's check gives the bounds, naming the field)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(field, "a number", value)
    if not value > 0 or (whole and not float(value).is_integer()):
        raise InvalidValueError(field, f"a {'whole ' if whole else ''}number above 0", value)
    return float(value)


def _when(occurred_utc: datetime | None) -> datetime:
    t = occurred_utc or utc_now()
    if t.tzinfo is None:
        raise InvalidValueError("occurred_utc", "a time with its UTC offset", t.isoformat())
    if t > utc_now() + _CLOCK_SKEW:
        raise InvalidValueError("occurred_utc", "not in the future", t.isoformat())
    return t


def _take(session: Session, lot: str, amount_mg: float, verb: str) -> None:
    """Refuse taking more than the lot holds: stock never goes negative."""
    on_hand = sum(_delta_mg(e) for e in _entries(session, lot))
    if amount_mg > on_hand + _EPS_MG:
        raise ConflictError(
            "amount_mg",
            f"lot {lot} holds {on_hand:g} mg: cannot {verb} {amount_mg:g} mg from it",
        )


def _add(session: Session, actor: Actor, **values: Any) -> StockEntry:
    row = StockEntry(recorded_by_id=user_id(actor), **values)
    session.add(row)
    session.flush()
    return row


def _witness(session: Session, actor: Actor, username: str | None) -> uuid.UUID:
    """The witness's user id: another active user who may keep the log."""
    name = (username or "").strip()
    if not name:
        raise InvalidValueError("witness", "the username of a second physician or nurse", username)
    user = session.scalar(select(User).where(User.username == name))
    if user is None or not user.active or not allowed(user.actor(), Action.CONTROLLED_LOG):
        raise InvalidValueError("witness", "an active physician or nurse", name)
    if user.id == actor.user_id:
        raise InvalidValueError("witness", "someone other than the recorder", name)
    return user.id


def receive(
    db: Database,
    actor: Actor,
    *,
    lot: str,
    vial_mg_per_ml: float,
    vial_ml: float,
    vials: int,
    occurred_utc: datetime | None = None,
    note: str | None = None,
) -> StockEntry:
    """Log vials received into stock: vials x mL x mg/mL."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CONTROLLED_LOG)
        lot = _lot(lot)
        strength = _number("vial_mg_per_ml", vial_mg_per_ml)
        amount = strength * _number("vial_ml", vial_ml) * _number("vials", vials, whole=True)
        known = {e.vial_mg_per_ml for e in _entries(session, lot) if e.kind == EntryKind.RECEIPT}
        if known and strength not in known:
            was = ", ".join(f"{s:g}" for s in sorted(s for s in known if s is not None))
            raise ConflictError("vial_mg_per_ml", f"lot {lot} was received at {was} mg/mL")
        return _add(
            session, actor, kind=EntryKind.RECEIPT, lot=lot, amount_mg=amount,
            occurred_utc=_when(occurred_utc), vial_mg_per_ml=strength, vial_ml=vial_ml,
            vials=int(vials), note=note,
        )  # fmt: skip


def draw(
    db: Database,
    actor: Actor,
    *,
    lot: str,
    amount_mg: float,
    infusion_id: uuid.UUID,
    occurred_utc: datetime | None = None,
) -> StockEntry:
    """Log ketamine drawn from a lot into an infusion's bag; never more than the lot holds."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CONTROLLED_LOG)
        lot = _lot(lot)
        get_or_raise(session, Infusion, infusion_id, "infusion")
        amount = _number("amount_mg", amount_mg)
        _take(session, lot, amount, "draw")
        return _add(
            session, actor, kind=EntryKind.DRAW, lot=lot, amount_mg=amount,
            occurred_utc=_when(occurred_utc), infusion_id=infusion_id,
        )  # fmt: skip


def _bag_left_mg(session: Session, lot: str, infusion_id: uuid.UUID) -> float:
    """What may still be wasted from a bag: drawn into it less wasted from it; refused
    while the pump runs and for a lot not drawn into it."""
    get_or_raise(session, Infusion, infusion_id, "infusion")
    kinds = session.scalars(
        select(InfusionEvent.kind)
        .where(InfusionEvent.infusion_id == infusion_id)
        .order_by(InfusionEvent.sequence)
    )
    if pump_state(kinds) in (PumpState.RUNNING, PumpState.PAUSED):
        raise ConflictError(
            "infusion_id", "the infusion is still on: waste the rest after the stop"
        )
    bag = list(session.scalars(current(StockEntry).where(StockEntry.infusion_id == infusion_id)))
    lots = sorted({e.lot for e in bag if e.kind == EntryKind.DRAW})
    if not lots:
        raise ConflictError("infusion_id", "no draw into this bag is logged: log the draw first")
    if lot not in lots:
        raise InvalidValueError("lot", f"a lot drawn into this bag ({', '.join(lots)})", lot)
    return sum(e.amount_mg if e.kind == EntryKind.DRAW else -e.amount_mg for e in bag)


def waste(
    db: Database,
    actor: Actor,
    *,
    lot: str,
    amount_mg: float,
    witness_username: str,
    infusion_id: uuid.UUID | None = None,
    reason: str,
    occurred_utc: datetime | None = None,
) -> StockEntry:
    """Log ketamine wasted before a witness: the rest of a bag after its infusion
    (``infusion_id``), or from stock."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CONTROLLED_LOG)
        lot = _lot(lot)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidValueError("reason", "why it was wasted", reason)
        witness_id = _witness(session, actor, witness_username)
        amount = _number("amount_mg", amount_mg)
        if infusion_id is None:
            _take(session, lot, amount, "waste")
        elif amount > (left := _bag_left_mg(session, lot, infusion_id)) + _EPS_MG:
            raise ConflictError(
                "amount_mg", f"the bag holds at most {left:g} mg of what was drawn into it"
            )
        return _add(
            session, actor, kind=EntryKind.WASTE, lot=lot, amount_mg=amount,
            occurred_utc=_when(occurred_utc), infusion_id=infusion_id, witness_id=witness_id,
            note=reason.strip(),
        )  # fmt: skip


def return_stock(
    db: Database,
    actor: Actor,
    *,
    lot: str,
    amount_mg: float,
    note: str,
    occurred_utc: datetime | None = None,
) -> StockEntry:
    """Log stock returned to the supplier or a reverse distributor, with a note."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CONTROLLED_LOG)
        lot = _lot(lot)
        if not isinstance(note, str) or not note.strip():
            raise InvalidValueError("note", "to whom, and the paperwork", note)
        amount = _number("amount_mg", amount_mg)
        _take(session, lot, amount, "return")
        return _add(
            session, actor, kind=EntryKind.RETURN, lot=lot, amount_mg=amount,
            occurred_utc=_when(occurred_utc), note=note.strip(),
        )  # fmt: skip


def correct_entry(
    db: Database,
    actor: Actor,
    entry_id: uuid.UUID,
    *,
    reason: str,
    entered_in_error: bool = False,
    changes: dict[str, Any] | None = None,
) -> StockEntry:
    """Correct (or retract) a log entry with a reason; the old entry stays.

    A new witness is named as ``witness`` (a username, checked as for a waste); a changed
    vial count or strength of a receipt recomputes its amount unless one is given.
    """
    with unit_of_work(db, actor) as session:
        require(actor, Action.CONTROLLED_LOG)
        values = dict(changes or {})
        if "witness_id" in values:
            raise InvalidValueError("changes.witness_id", "given as witness (a username)", "id")
        if "witness" in values:
            values["witness_id"] = _witness(session, actor, values.pop("witness"))
        if isinstance(values.get("infusion_id"), str):
            try:
                values["infusion_id"] = uuid.UUID(values["infusion_id"])
            except ValueError:
                raise InvalidValueError(
                    "changes.infusion_id", "an infusion id", values["infusion_id"]
                ) from None
        if values.get("infusion_id") is not None:
            get_or_raise(session, Infusion, values["infusion_id"], "infusion")
        old = get_or_raise(session, StockEntry, entry_id, "stock entry")
        vial = {"vial_mg_per_ml", "vial_ml", "vials"}
        if old.kind == EntryKind.RECEIPT and vial & set(values) and "amount_mg" not in values:
            got = [values.get(k, getattr(old, k)) for k in sorted(vial)]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in got):
                values["amount_mg"] = got[0] * got[1] * got[2]
        return correct(
            session, StockEntry, entry_id, kind="stock entry", reason=reason,
            actor_id=user_id(actor), entered_in_error=entered_in_error, changes=values,
        )  # fmt: skip


# --- reading the log --------------------------------------------------------------------
