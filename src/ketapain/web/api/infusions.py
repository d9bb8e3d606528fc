"""Infusions: hang a bag, pump events (start, rate change, pause, resume, stop),
the infusion with its delivered dose, discharge check; alarms; the audit trail."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, Field

from ketapain.clinic.audit import list_entries
from ketapain.clinic.charting import acknowledge_alarm, discharge_check, infusion_view, open_alarms
from ketapain.clinic.checklist import checklist_status, record_checklist
from ketapain.clinic.infusions import Infusion
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.records import get_or_raise
from ketapain.web.api._schemas import Body, OverrideIn
from ketapain.web.deps import ActorDep, DbDep, ReadDep

router = APIRouter(tags=["infusions"])


class InfusionIn(Body):
    """The bag hung for a session."""

    session_number: int
    bag_mg: float
    bag_ml: float
    lot: str


class EventIn(Body):
    """A pump event; a start or rate change gives the rate in mg/h or mg/kg/h."""

    kind: str
    rate_mg_per_h: float | None = None
    rate_mg_per_kg_h: float | None = None
    reason: str | None = None
    time_utc: AwareDatetime | None = None
    overrides: list[OverrideIn] = Field(default_factory=list)
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="The infusion's `version` the event was decided on; when another "
        "event was charted since, the answer is 409 (conflict) instead of a lost update.",
    )


class ChecklistIn(Body):
    """The pre-infusion confirmations and the premedication given (drugs of the plan)."""

    consent_confirmed: bool
    escort_confirmed: bool
    fasting_confirmed: bool
    medications_reviewed: bool
    escort_name: str | None = None
    premedication_given: list[str] = Field(default_factory=list)
    premedication_note: str | None = None


class DischargeIn(Body):
    """Escort confirmation at discharge."""

    escort_confirmed: bool
    escort_name: str | None = None
    note: str | None = None


class AckIn(Body):
    """What was done about an alarm."""

    note: str


@router.post("/courses/{course_id}/infusions", status_code=201)
def hang(course_id: uuid.UUID, body: InfusionIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Hang a bag for a planned session; the pump program comes from the plan."""
    row = hang_infusion(db, actor, course_id, **body.model_dump())
    return {
        "id": str(row.id),
        "program": row.program,
        "plan_max_rate_mg_per_h": row.plan_max_rate_mg_per_h,
    }


@router.get("/infusions/{infusion_id}")
def infusion(infusion_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """The infusion with its events and the dose delivered (computed)."""
    return infusion_view(session, actor, infusion_id)


@router.post("/infusions/{infusion_id}/checklist", status_code=201)
def checklist(
    infusion_id: uuid.UUID, body: ChecklistIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Chart the pre-infusion checklist; the answer lists what is still missing."""
    return record_checklist(db, actor, infusion_id, **body.model_dump())


@router.get("/infusions/{infusion_id}/checklist")
def checklist_now(infusion_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """Where the checklist stands: ``complete`` and the ``missing`` items."""
    require(actor, Action.READ_CLINICAL)
    inf = get_or_raise(session, Infusion, infusion_id, "infusion")
    return checklist_status(session, inf).as_dict()


@router.post("/infusions/{infusion_id}/events", status_code=201)
def event(infusion_id: uuid.UUID, body: EventIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Chart a pump event; a start needs the checklist complete; a hard limit answers 409
    unless a physician overrides it; an ``expected_version`` other than the infusion's
    answers 409 naming the events charted since."""
    values = body.model_dump(exclude={"overrides"})
    return pump_event(
        db,
        actor,
        infusion_id,
        overrides=tuple((o.code, o.reason) for o in body.overrides),
        **values,
    )


@router.post("/infusions/{infusion_id}/discharge-checks", status_code=201)
def discharge(
    infusion_id: uuid.UUID, body: DischargeIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Record the discharge check; the answer says whether the patient may go, and why not."""
    return discharge_check(db, actor, infusion_id, **body.model_dump())


@router.get("/alarms")
def alarms(
    session: ReadDep, actor: ActorDep, patient_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Open (unacknowledged) alarms, newest first."""
    return open_alarms(session, actor, patient_id=patient_id)


@router.post("/alarms/{alarm_id}/acknowledgements", status_code=201)
def acknowledge(alarm_id: uuid.UUID, body: AckIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Acknowledge an alarm with a note."""
    return acknowledge_alarm(db, actor, alarm_id, note=body.note)


@router.get("/audit")
def audit(
    session: ReadDep,
    actor: ActorDep,
    entity: str | None = None,
    entity_id: str | None = None,
    actor_username: str | None = None,
    action: str | None = None,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit entries in the order written (admin, physician); page with ``after_id``."""
    require(actor, Action.READ_AUDIT)
    limit = max(1, min(limit, 1000))
    rows = list_entries(
        session,
        entity=entity,
        entity_id=entity_id,
        actor_username=actor_username,
        action=action,
        after_id=after_id,
        limit=limit,
    )
    return [r.as_dict() for r in rows]
