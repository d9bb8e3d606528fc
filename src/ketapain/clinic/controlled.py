"""The controlled-substance log: ketamine is a Schedule III drug (DEA).

Every milligram is accounted for, per vial lot: vials received, drawn into an infusion
bag, wasted (with a second person as witness) and returned. What a patient received
comes from the infusion record (the pump events), never typed twice. Entries are
appended, never edited; a correction is a new row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.db import utc_now
from ketapain.clinic.records import Correctable
from ketapain.errors import InvalidValueError

__all__ = ["EntryKind", "StockEntry"]


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
