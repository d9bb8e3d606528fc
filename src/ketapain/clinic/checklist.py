"""The pre-infusion checklist: what must be true before the pump starts.

A nurse confirms consent, the escort home, fasting and the medication review, and
ticks the planned premedication given (or says why not). Baseline vital signs and a
baseline pain score are not ticked: they are read from the chart. The pump does not
start until every item holds (:func:`ketapain.clinic.pump.pump_event`).

The items follow the pre-infusion checklists of infusion-clinic software (clinical
reference §6: eligibility, fasting, medication changes, baseline vitals, consent) and
the protocols' discharge rules (an escort home).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from sqlalchemy import ForeignKey, Select, String, Text, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic._service import user_id
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.courses import current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import EventKind, Infusion, InfusionEvent
from ketapain.clinic.observations import Score, VitalSigns
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Correctable, current_of, get_or_raise
from ketapain.errors import InvalidValueError
from ketapain.sources import Source

__all__ = [
    "CONFIRMATIONS",
    "FASTING_SOURCE",
    "ChecklistStatus",
    "PreInfusionCheck",
    "checklist_status",
    "record_checklist",
]

# Procedural sedation fasting guidance shown next to the fasting item: light meal
# 6 h, clear fluids 2 h before (ASA 2017). The clinic's own instructions may differ;
# the checklist records the nurse's confirmation, not hours.
FASTING_SOURCE: Final = Source(
    authors="American Society of Anesthesiologists Task Force",
    year=2017,
    journal="Anesthesiology 126(3):376-393",
    title="Practice guidelines for preoperative fasting",
    doi="10.1097/ALN.0000000000001452",
)

# The confirmations, in the order a nurse asks them: field -> what is confirmed.
CONFIRMATIONS: Final = {
    "consent_confirmed": "written consent for this course is on file and valid",
    "escort_confirmed": "a responsible adult will take the patient home",
    "fasting_confirmed": "fasted as instructed (guidance: light meal 6 h, clear fluids 2 h)",
    "medications_reviewed": "medication changes since the last visit reviewed",
}


class PreInfusionCheck(Correctable):
    """The nurse's pre-infusion confirmations and the premedication given."""

    __tablename__ = "pre_infusion_checks"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "infusion_id",
        "checked_utc",
        "consent_confirmed",
        "escort_confirmed",
        "escort_name",
        "fasting_confirmed",
        "medications_reviewed",
        "premedication_given",
        "premedication_note",
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("infusions.id"), index=True)
    checked_utc: Mapped[datetime] = mapped_column(default=utc_now)
    consent_confirmed: Mapped[bool]
    escort_confirmed: Mapped[bool]
    escort_name: Mapped[str | None] = mapped_column(String(200), default=None)
    fasting_confirmed: Mapped[bool]
    medications_reviewed: Mapped[bool]
    premedication_given: Mapped[list[Any]] = mapped_column(default=list)
    premedication_note: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if self.escort_confirmed and not (self.escort_name or "").strip():
            raise InvalidValueError("escort_name", "the escort's name when confirmed", None)
        given = self.premedication_given
        if not isinstance(given, list) or not all(isinstance(d, str) and d for d in given):
            raise InvalidValueError("premedication_given", "a list of drug names", given)

    def as_dict(self) -> dict[str, Any]:
        """The confirmations as charted."""
        return {
            "id": str(self.id),
            "infusion_id": str(self.infusion_id),
            "checked_utc": self.checked_utc.isoformat(),
            **{name: getattr(self, name) for name in CONFIRMATIONS},
            "escort_name": self.escort_name,
            "premedication_given": list(self.premedication_given),
            "premedication_note": self.premedication_note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ChecklistStatus:
    """Where the checklist stands: the latest confirmations and what is still missing."""

    check: dict[str, Any] | None
    premedication: tuple[dict[str, Any], ...]
    baseline_vitals: bool
    baseline_nrs: bool
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when the pump may start."""
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        """JSON: the check, the planned premedication, baselines, what is missing."""
        return {
            "check": self.check,
            "premedication": list(self.premedication),
            "baseline_vitals": self.baseline_vitals,
            "baseline_nrs": self.baseline_nrs,
            "missing": list(self.missing),
            "complete": self.complete,
        }


def _before_start(session: Session, infusion_id: uuid.UUID) -> datetime | None:
    return session.scalar(_STARTED, {"infusion_id": infusion_id})


def _baseline_query(model: Any, *where: Any) -> tuple[Select[Any], Select[Any]]:
    """A current row of ``model`` charted for the infusion (``:infusion_id``): at any time,
    and before the pump started (``:start``)."""
    anytime = current_of(model, "infusion_id", "measured_utc").where(*where).limit(1)
    return anytime, anytime.where(model.measured_utc <= bindparam("start"))


# Read on every view of a chair: built once.
_LAST_CHECK: Final = current_of(PreInfusionCheck, "infusion_id", "-checked_utc").limit(1)
_STARTED: Final = select(InfusionEvent.time_utc).where(
    InfusionEvent.infusion_id == bindparam("infusion_id"), InfusionEvent.kind == EventKind.START
)
_BASELINE_VITALS: Final = _baseline_query(VitalSigns, VitalSigns.sbp_mmhg.is_not(None))
_BASELINE_NRS: Final = _baseline_query(Score, Score.instrument == "pain_nrs")


def _charted_in(view: dict[str, Any]) -> tuple[bool, bool]:
    """The baselines from an infusion view (:func:`ketapain.clinic.charting.infusion_view`):
    its current vital signs and scores, charted before the pump's start if it has started,
    as the baseline statements select them."""
    start = next((e["time_utc"] for e in view["events"] if e["kind"] == EventKind.START), None)
    limit = None if start is None else datetime.fromisoformat(start)

    def before(row: dict[str, Any]) -> bool:
        return limit is None or datetime.fromisoformat(row["measured_utc"]) <= limit

    vitals = any(v["sbp_mmhg"] is not None and before(v) for v in view["vitals"])
    nrs = any(s["instrument"] == "pain_nrs" and before(s) for s in view["scores"])
    return vitals, nrs


def checklist_status(
    session: Session,
    infusion: Infusion,
    *,
    plan: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
) -> ChecklistStatus:
    """The checklist of ``infusion``: confirmations, premedication and baselines.

    ``plan`` is the course's current plan, and ``view`` the infusion's view, when the
    caller has read them already (the chair page): the baselines are then found in the
    view's observations instead of read again.
    """
    row = session.scalars(_LAST_CHECK, {"infusion_id": infusion.id}).first()
    if plan is None:
        plan = current_plan(session, infusion.course_id).plan
    premed = tuple(p for p in plan.get("premedication", []) if not p["prn"])
    if view is not None:
        vitals, nrs = _charted_in(view)
    else:
        start = _before_start(session, infusion.id)

        def charted(queries: tuple[Select[Any], Select[Any]]) -> bool:
            anytime, before = queries
            params = {"infusion_id": infusion.id, "start": start}
            return session.scalars(anytime if start is None else before, params).first() is not None

        vitals = charted(_BASELINE_VITALS)
        nrs = charted(_BASELINE_NRS)
    missing = [
        f"Not confirmed: {text}."
        for name, text in CONFIRMATIONS.items()
        if row is None or not getattr(row, name)
    ]
    given = set(row.premedication_given) if row is not None else set()
    not_given = [p["drug"] for p in premed if p["drug"] not in given]
    if not_given and not (row is not None and (row.premedication_note or "").strip()):
        missing.append(
            f"Premedication not ticked as given ({', '.join(not_given)}): "
            "tick it, or note why it was not given."
        )
    if not vitals:
        missing.append("Baseline vital signs (blood pressure at least) are not charted.")
    if not nrs:
        missing.append("A baseline pain NRS is not charted.")
    return ChecklistStatus(
        check=None if row is None else row.as_dict(),
        premedication=premed,
        baseline_vitals=vitals,
        baseline_nrs=nrs,
        missing=tuple(missing),
    )


def record_checklist(
    db: Database,
    actor: Actor,
    infusion_id: uuid.UUID,
    *,
    consent_confirmed: bool,
    escort_confirmed: bool,
    fasting_confirmed: bool,
    medications_reviewed: bool,
    escort_name: str | None = None,
    premedication_given: list[str] | tuple[str, ...] = (),
    premedication_note: str | None = None,
) -> dict[str, Any]:
    """Chart the pre-infusion confirmations; the answer says what is still missing."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART)
        inf = get_or_raise(session, Infusion, infusion_id, "infusion")
        plan = current_plan(session, inf.course_id).plan
        planned = {p["drug"] for p in plan.get("premedication", [])}
        unknown = sorted(set(premedication_given) - planned)
        if unknown:
            allowed = ", ".join(sorted(planned)) or "none planned"
            raise InvalidValueError(
                "premedication_given", f"drugs of the plan ({allowed})", unknown
            )
        row = PreInfusionCheck(
            patient_id=inf.patient_id,
            infusion_id=inf.id,
            consent_confirmed=consent_confirmed,
            escort_confirmed=escort_confirmed,
            escort_name=(escort_name or "").strip() or None,
            fasting_confirmed=fasting_confirmed,
            medications_reviewed=medications_reviewed,
            premedication_given=list(premedication_given),
            premedication_note=(premedication_note or "").strip() or None,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        session.flush()
        return {"id": str(row.id), **checklist_status(session, inf).as_dict()}
