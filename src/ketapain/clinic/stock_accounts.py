"""What the controlled-substance log adds up to: balances per lot, each bag against the
dose the pump delivered, the discrepancies, and the ledger of a lot with its running
balance (the entries are written by :mod:`ketapain.clinic.controlled`).

Reading the log needs the ``controlled_log`` permission (physicians and nurses): it names
the patient of each bag.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import check_range
from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor
from ketapain.clinic.controlled import _EPS_MG, EntryKind, StockEntry, _delta_mg, _entries, _lot
from ketapain.clinic.db import utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent, PumpState, delivery
from ketapain.clinic.patients import Patient
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.errors import RecordNotFoundError
from ketapain.sources import Source

__all__ = [
    "MIN_TOLERANCE_MG",
    "PUMP_ACCURACY_FRACTION",
    "PUMP_ACCURACY_SOURCE",
    "DiscrepancyKind",
    "bag_accounts",
    "default_tolerance_mg",
    "discrepancies",
    "discrepancies_of",
    "ledger",
    "lot_balances",
    "witnesses",
]

# Volumetric pumps deliver within their stated accuracy, measured with the trumpet-curve
# method of IEC 60601-2-24: "+/- 5% typical by volume" for a large-volume pump.
PUMP_ACCURACY_FRACTION: Final = 0.05
PUMP_ACCURACY_SOURCE: Final = Source(
    authors="B. Braun Melsungen AG",
    year=None,
    journal="Infusomat Space volumetric infusion pump, instructions for use",
    title="Start-up graphs and trumpet curves",
    locator="chapter 8: system accuracy +/-5% typical by volume (IEC 60601-2-24 method)",
)
# A clinic setting, not a published figure: the smallest gap worth a look whatever the
# dose (about 1 mL of residue read off a 1 mg/mL bag).
MIN_TOLERANCE_MG: Final = 1.0


class DiscrepancyKind(StrEnum):
    """Why the log does not add up."""

    LOT_NEGATIVE = "lot_negative"
    BAG_NOT_DRAWN = "bag_not_drawn"
    DRAW_AMOUNT = "draw_amount"
    DRAW_LOT = "draw_lot"
    BAG_UNACCOUNTED = "bag_unaccounted"


def default_tolerance_mg(administered_mg: float) -> float:
    """The gap a finished bag may show: the pump's stated accuracy on the dose given, at
    least :data:`MIN_TOLERANCE_MG`.

    >>> default_tolerance_mg(250.0), default_tolerance_mg(4.0)
    (12.5, 1.0)
    """
    return max(MIN_TOLERANCE_MG, PUMP_ACCURACY_FRACTION * administered_mg)


def _usernames(session: Session, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())


def witnesses(session: Session, actor: Actor) -> list[dict[str, str]]:
    """Who may witness the actor's waste: the other active physicians and nurses."""
    require(actor, Action.CONTROLLED_LOG)
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.username))
    return [
        {"username": u.username, "full_name": u.full_name, "role": str(u.role)}
        for u in users
        if u.id != actor.user_id and allowed(u.actor(), Action.CONTROLLED_LOG)
    ]


def lot_balances(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Stock per lot: received, drawn, wasted from stock, returned, on hand (mg and mL)."""
    require(actor, Action.CONTROLLED_LOG)
    lots: dict[str, dict[str, Any]] = {}
    strengths: dict[str, set[float]] = {}
    for e in _entries(session):
        b = lots.setdefault(e.lot, dict.fromkeys(_TOTALS, 0.0) | {"lot": e.lot, "vials": 0})
        bag_waste = e.kind == EntryKind.WASTE and e.infusion_id is not None
        b["wasted_from_bags_mg" if bag_waste else _TOTAL_OF[EntryKind(e.kind)]] += e.amount_mg
        if e.kind == EntryKind.RECEIPT and e.vial_mg_per_ml is not None:
            strengths.setdefault(e.lot, set()).add(e.vial_mg_per_ml)
            b["vials"] += e.vials or 0
    out = []
    for lot, b in sorted(lots.items()):
        on_hand = b["received_mg"] - b["drawn_mg"] - b["wasted_mg"] - b["returned_mg"]
        # A lot has one strength; corrections could leave two, and then no volume.
        one = strengths.get(lot, set())
        strength = next(iter(one)) if len(one) == 1 else None
        out.append(
            b
            | {
                "vial_mg_per_ml": strength,
                "on_hand_mg": on_hand,
                "on_hand_ml": None if strength is None else on_hand / strength,
            }
        )
    return out


_TOTAL_OF: Final = {
    EntryKind.RECEIPT: "received_mg",
    EntryKind.DRAW: "drawn_mg",
    EntryKind.WASTE: "wasted_mg",  # from stock; waste left in a bag is counted apart
    EntryKind.RETURN: "returned_mg",
}
_TOTALS: Final = (*_TOTAL_OF.values(), "wasted_from_bags_mg")


def _flag(kind: DiscrepancyKind, reason: str, **where: Any) -> dict[str, Any]:
    keys = ("lot", "infusion_id", "entry_id", "patient_mrn")
    return {"kind": str(kind), "reason": reason} | {k: where.get(k) for k in keys}


def _bag_flags(row: dict[str, Any], draws: list[StockEntry], bag_lot: str) -> list[dict[str, Any]]:
    """What does not add up in one bag's account."""
    at = {"infusion_id": row["infusion_id"], "patient_mrn": row["patient_mrn"], "lot": bag_lot}
    if not draws:
        why = f"bag of {row['bag_mg']:g} mg hung with no draw logged"
        return [_flag(DiscrepancyKind.BAG_NOT_DRAWN, why, **at)]
    flags = [
        _flag(DiscrepancyKind.DRAW_LOT, f"drawn from lot {e.lot}; the bag names lot {bag_lot}",
              **at | {"lot": e.lot, "entry_id": str(e.id)})
        for e in draws if e.lot != bag_lot
    ]  # fmt: skip
    if abs(row["drawn_mg"] - row["bag_mg"]) > _EPS_MG:
        why = f"{row['drawn_mg']:g} mg drawn into a bag of {row['bag_mg']:g} mg"
        flags.append(_flag(DiscrepancyKind.DRAW_AMOUNT, why, **at))
    if row["ended"] and abs(row["unaccounted_mg"]) > row["tolerance_mg"]:
        why = (
            f"{row['unaccounted_mg']:+.1f} mg unaccounted (drawn {row['drawn_mg']:g}, given "
            f"{row['administered_mg']:.1f}, wasted {row['wasted_mg']:g}); tolerance "
            f"{row['tolerance_mg']:.1f} mg ({PUMP_ACCURACY_SOURCE.short()}: pump accuracy)"
        )
        flags.append(_flag(DiscrepancyKind.BAG_UNACCOUNTED, why, **at))
    return flags


def bag_accounts(
    session: Session, actor: Actor, *, lot: str | None = None, tolerance_mg: float | None = None
) -> list[dict[str, Any]]:
    """Per bag: drawn into it, given to the patient (from the pump events), wasted from it
    and unaccounted = drawn - given - wasted, with what does not add up.

    ``tolerance_mg`` is the gap a finished bag may show; by default
    :func:`default_tolerance_mg` of the dose given.
    """
    require(actor, Action.CONTROLLED_LOG)
    if tolerance_mg is not None:
        check_range("tolerance_mg", tolerance_mg, 0.0, 5000.0)
    bag_entries: dict[uuid.UUID, list[StockEntry]] = {}
    for e in _entries(session):
        if e.infusion_id is not None:
            bag_entries.setdefault(e.infusion_id, []).append(e)
    query = select(Infusion, Patient.mrn).join(Patient, Patient.id == Infusion.patient_id)
    if lot is not None:
        of_lot = [i for i, es in bag_entries.items() if any(e.lot == lot for e in es)]
        query = query.where(or_(Infusion.lot == lot, Infusion.id.in_(of_lot)))
    bags = session.execute(query.order_by(Infusion.recorded_utc, Infusion.id)).all()
    events: dict[uuid.UUID, list[InfusionEvent]] = {}
    for ev in session.scalars(
        select(InfusionEvent)
        .where(InfusionEvent.infusion_id.in_([inf.id for inf, _ in bags]))
        .order_by(InfusionEvent.sequence)
    ):
        events.setdefault(ev.infusion_id, []).append(ev)
    now = utc_now()
    rows = []
    for inf, mrn in bags:
        d = delivery([ev.pump_event() for ev in events.get(inf.id, [])], until=now)
        mine = bag_entries.get(inf.id, [])
        draws = [e for e in mine if e.kind == EntryKind.DRAW]
        drawn = sum(e.amount_mg for e in draws)
        wasted = sum(e.amount_mg for e in mine if e.kind == EntryKind.WASTE)
        row: dict[str, Any] = {
            "infusion_id": str(inf.id), "patient_mrn": mrn, "session_number": inf.session_number,
            "hung_utc": inf.recorded_utc.isoformat(), "lot": inf.lot, "bag_mg": inf.bag_mg,
            "bag_ml": inf.bag_ml, "state": str(d.state), "ended": d.state is PumpState.STOPPED,
            "drawn_mg": drawn, "administered_mg": d.delivered_mg, "wasted_mg": wasted,
            "unaccounted_mg": drawn - d.delivered_mg - wasted,
            "tolerance_mg": default_tolerance_mg(d.delivered_mg)
            if tolerance_mg is None else tolerance_mg,
        }  # fmt: skip
        row["discrepancies"] = _bag_flags(row, draws, inf.lot)
        rows.append(row)
    return rows


def discrepancies(
    session: Session, actor: Actor, *, tolerance_mg: float | None = None
) -> list[dict[str, Any]]:
    """What does not add up: lots below zero, then bags (no draw, a draw of another amount
    or lot than the bag's, a finished bag with more unaccounted than the tolerance)."""
    lots = lot_balances(session, actor)
    return discrepancies_of(lots, bag_accounts(session, actor, tolerance_mg=tolerance_mg))


def discrepancies_of(
    lots: list[dict[str, Any]], bags: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The discrepancies of balances and bag accounts already read (as :func:`discrepancies`)."""
    out = [
        _flag(DiscrepancyKind.LOT_NEGATIVE, f"lot {b['lot']} on hand {b['on_hand_mg']:g} mg",
              lot=b["lot"])
        for b in lots if b["on_hand_mg"] < -_EPS_MG
    ]  # fmt: skip
    return out + [f for row in bags for f in row["discrepancies"]]


def ledger(session: Session, actor: Actor, *, lot: str) -> list[dict[str, Any]]:
    """The log of one lot in time order, with the balance after each entry, who recorded
    it, the witness, and the infusion and patient a draw or a bag's waste concerns."""
    require(actor, Action.CONTROLLED_LOG)
    entries = _entries(session, _lot(lot))
    if not entries:
        raise RecordNotFoundError("stock lot", lot)
    people: set[uuid.UUID | None] = {e.recorded_by_id for e in entries}
    names = _usernames(session, people | {e.witness_id for e in entries})
    bags = {e.infusion_id for e in entries if e.infusion_id is not None}
    mrns = dict(
        session.execute(
            select(Infusion.id, Patient.mrn)
            .join(Patient, Patient.id == Infusion.patient_id)
            .where(Infusion.id.in_(bags))
        ).all()
    )
    balance = 0.0
    rows = []
    for e in entries:
        balance += _delta_mg(e)
        rows.append(
            e.as_dict()
            | {
                "change_mg": _delta_mg(e),
                "balance_mg": balance,
                "recorded_by_username": names.get(e.recorded_by_id),
                "witness_username": None if e.witness_id is None else names.get(e.witness_id),
                "patient_mrn": None if e.infusion_id is None else mrns.get(e.infusion_id),
                "correction_reason": e.correction_reason,
            }
        )
    return rows
