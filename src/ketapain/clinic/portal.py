"""The patient portal: an expiring link through which a patient submits questionnaires.

A nurse or physician issues a link for one patient; the patient opens it without an
account and submits the scores that are due (pain diary, PEG, BPI, PGIC, PHQ-9, GAD-7,
quality of life, cognitive complaints). Only the SHA-256 of the link's secret is stored;
a link expires and can be revoked, and a link unknown, expired or revoked gets one and the
same answer (:class:`LinkUnavailableError`).

A submission is recorded and audited as the user ``patient-portal``: role ``patient``
(which may only ``submit_pro``), inactive and without a usable password, so that no one
signs in as it; the audit entry names the link. A PHQ-9 or GAD-7 raises its alarms in the
same transaction (:func:`ketapain.clinic.follow_up.pro_alarms`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final, cast

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic._service import check_range, user_id
from ketapain.clinic.accounts import Role, User
from ketapain.clinic.alarms import Alarm
from ketapain.clinic.audit import SYSTEM, Actor, add_event, unit_of_work
from ketapain.clinic.db import Base, Database, utc_now
from ketapain.clinic.follow_up import due_for_patient, pro_alarms
from ketapain.clinic.instruments import INSTRUMENTS, PATIENT_REPORTED
from ketapain.clinic.observations import Score
from ketapain.clinic.patients import Patient
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import get_or_raise
from ketapain.clinic.registry import demographics_of
from ketapain.errors import ConflictError, InvalidValueError, RecordNotFoundError

__all__ = [
    "DEFAULT_LINK_VALID_DAYS",
    "LINK_VALID_DAYS_RANGE",
    "PORTAL_ROLE",
    "PORTAL_USERNAME",
    "IssuedLink",
    "LinkUnavailableError",
    "PatientLink",
    "ResolvedLink",
    "Submission",
    "issue_link",
    "list_links",
    "portal_actor",
    "portal_view",
    "resolve_link",
    "revoke_link",
    "submit",
]


class PatientLink(Base):
    """A link for one patient: the hash of its secret, who issued it, when it expires."""

    __tablename__ = "patient_links"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_utc: Mapped[datetime] = mapped_column(default=utc_now)
    expires_utc: Mapped[datetime]
    last_used_utc: Mapped[datetime | None] = mapped_column(default=None)
    revoked_utc: Mapped[datetime | None] = mapped_column(default=None)


# --- services ---------------------------------------------------------------------------

# A link lasts two weeks unless the issuer says otherwise: the clinic's choice (no
# published figure), the span of the daily diary after the series (seed 002). A link
# may be given for 1 to 90 days: about the 12-week follow-up (Sigtermans 2009) and a
# little more; longer-lived secrets are refused.
DEFAULT_LINK_VALID_DAYS: Final = 14
LINK_VALID_DAYS_RANGE: Final = (1, 90)
PORTAL_USERNAME: Final = "patient-portal"
PORTAL_ROLE: Final = "patient"
_UNAVAILABLE: Final = "the link is unknown, expired or withdrawn: ask the clinic for a new one"


class LinkUnavailableError(RecordNotFoundError):
    """A patient link that is unknown, expired or revoked: one answer for the three, so
    that a link cannot be probed (the web layer answers 404)."""

    def __init__(self) -> None:
        super().__init__("patient link", "(not shown)")
        self.args = (_UNAVAILABLE,)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedLink:
    """A new link: its id, the secret (shown once, never stored), its path and expiry."""

    link_id: uuid.UUID
    secret: str
    expires_utc: datetime

    @property
    def url_path(self) -> str:
        """The patient's page."""
        return f"/p/{self.secret}"

    def as_dict(self) -> dict[str, Any]:
        """JSON: id, path, secret and expiry."""
        return {
            "id": str(self.link_id),
            "url_path": self.url_path,
            "secret": self.secret,
            "expires_utc": self.expires_utc.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedLink:
    """A link in force: its id, the patient's id and when it expires."""

    link_id: uuid.UUID
    patient_id: uuid.UUID
    created_utc: datetime
    expires_utc: datetime


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_link(
    db: Database,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    valid_days: int = DEFAULT_LINK_VALID_DAYS,
) -> IssuedLink:
    """Issue a link for the patient (nurse or physician); the secret is returned once."""
    low, high = LINK_VALID_DAYS_RANGE
    if isinstance(valid_days, bool) or not isinstance(valid_days, int):
        raise InvalidValueError("valid_days", f"a whole number from {low} to {high}", valid_days)
    check_range("valid_days", valid_days, low, high)
    secret = secrets.token_urlsafe(32)  # 256 bits, as the API tokens
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART, "a nurse or physician issues a patient link")
        get_or_raise(session, Patient, patient_id, "patient")
        link = PatientLink(
            patient_id=patient_id,
            secret_sha256=_sha256(secret),
            issued_by_id=user_id(actor),
            expires_utc=utc_now() + timedelta(days=valid_days),
        )
        session.add(link)
        session.flush()
        return IssuedLink(link_id=link.id, secret=secret, expires_utc=link.expires_utc)


def _in_force(link: PatientLink | None, now: datetime) -> PatientLink:
    if link is None or link.revoked_utc is not None or link.expires_utc <= now:
        raise LinkUnavailableError
    return link


def resolve_link(db: Database, secret: str) -> ResolvedLink:
    """The link of ``secret`` if it is in force; :class:`LinkUnavailableError` if it is
    unknown, expired or revoked (the same error for the three)."""
    with db.read() as session:
        found = session.scalar(
            select(PatientLink).where(PatientLink.secret_sha256 == _sha256(secret))
        )
        link = _in_force(found, utc_now())
        return ResolvedLink(
            link_id=link.id,
            patient_id=link.patient_id,
            created_utc=link.created_utc,
            expires_utc=link.expires_utc,
        )


def revoke_link(
    db: Database, actor: Actor, patient_id: uuid.UUID, link_id: uuid.UUID
) -> dict[str, Any]:
    """Withdraw a link of the patient (nurse or physician); revoking it again changes
    nothing."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART, "a nurse or physician revokes a patient link")
        link = session.get(PatientLink, link_id)
        if link is None or link.patient_id != patient_id:
            raise RecordNotFoundError("patient link", link_id)
        if link.revoked_utc is None:
            link.revoked_utc = utc_now()
        return {"id": str(link.id), "revoked_utc": link.revoked_utc.isoformat()}


def list_links(session: Session, actor: Actor, patient_id: uuid.UUID) -> list[dict[str, Any]]:
    """The patient's links, newest first: issued, expires, last used, revoked (no secret)."""
    require(actor, Action.READ_CLINICAL)
    get_or_raise(session, Patient, patient_id, "patient")
    now = utc_now()
    rows = session.scalars(
        select(PatientLink)
        .where(PatientLink.patient_id == patient_id)
        .order_by(PatientLink.created_utc.desc())
    )
    return [
        {
            "id": str(link.id),
            "created_utc": link.created_utc.isoformat(),
            "expires_utc": link.expires_utc.isoformat(),
            "last_used_utc": None if link.last_used_utc is None else link.last_used_utc.isoformat(),
            "revoked_utc": None if link.revoked_utc is None else link.revoked_utc.isoformat(),
            "in_force": link.revoked_utc is None and link.expires_utc > now,
        }
        for link in rows
    ]


def portal_actor(db: Database) -> Actor:
    """The actor of portal submissions: the inactive user ``patient-portal`` (role
    ``patient``, no usable password), created by the system on first use."""
    with db.read() as session:
        user = session.scalar(select(User).where(User.username == PORTAL_USERNAME))
    if user is None:
        try:
            with unit_of_work(db, SYSTEM) as session:
                user = User(
                    username=PORTAL_USERNAME,
                    full_name="Patient portal (questionnaires sent through patient links)",
                    role=cast(Role, PORTAL_ROLE),
                    # Not an Argon2 hash: no password verifies against it.
                    password_hash="!",
                    active=False,
                )
                session.add(user)
        except ConflictError:  # created meanwhile by another request
            with db.read() as session:
                user = session.scalar(select(User).where(User.username == PORTAL_USERNAME))
    if user is None or str(user.role) != PORTAL_ROLE or user.active:
        raise ConflictError(
            "username", f"the user {PORTAL_USERNAME!r} exists and is not the portal's own"
        )
    return Actor(user_id=user.id, username=PORTAL_USERNAME, role=PORTAL_ROLE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    """A score the patient sent and the alarms it raised."""

    score: Score
    alarms: list[Alarm]

    def as_dict(self) -> dict[str, Any]:
        """The score, and each alarm's level and signal (the message is for the staff)."""
        return {
            "score": self.score.as_dict(),
            "alerts": [{"signal": a.signal, "level": a.level} for a in self.alarms],
        }


def submit(
    db: Database,
    secret: str,
    *,
    instrument: str,
    value: float | None = None,
    items: dict[str, int] | None = None,
    measured_utc: datetime | None = None,
) -> Submission:
    """Record a patient-reported score sent through a link, with the alerts it raises;
    audited as ``patient-portal`` with the link's id."""
    found = resolve_link(db, secret)
    if instrument not in PATIENT_REPORTED:
        raise InvalidValueError("instrument", f"one of {', '.join(PATIENT_REPORTED)}", instrument)
    now = utc_now()
    if measured_utc is not None:
        if measured_utc.tzinfo is None:
            raise InvalidValueError("measured_utc", "a timezone-aware time (UTC)", measured_utc)
        if measured_utc > now:
            raise InvalidValueError("measured_utc", "a time not in the future", measured_utc)
        if measured_utc < found.created_utc:
            # A link reports what happened since it was given, not before.
            raise InvalidValueError(
                "measured_utc",
                f"a time after the link was issued ({found.created_utc})",
                measured_utc,
            )
    actor = portal_actor(db)
    with unit_of_work(db, actor) as session:
        require(actor, Action.SUBMIT_PRO)
        link = _in_force(session.get(PatientLink, found.link_id), now)  # not revoked meanwhile
        row = Score(
            patient_id=link.patient_id,
            instrument=instrument,
            value=value,
            items=items,
            measured_utc=measured_utc or now,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        session.flush()
        alarms = pro_alarms(row, recorded_by_id=user_id(actor))
        session.add_all(alarms)
        link.last_used_utc = now
        add_event(
            session,
            actor,
            action="submit_pro",
            entity="scores",
            entity_id=str(row.id),
            detail=f"patient link {link.id}: {instrument}",
        )
    return Submission(score=row, alarms=alarms)


def portal_view(
    db: Database, secret: str, *, today: date | None = None, tz: tzinfo = UTC
) -> dict[str, Any]:
    """What the patient's page shows: the given name and the questionnaires due today
    (the clinic's day in ``tz``); nothing else of the record."""
    found = resolve_link(db, secret)
    today = today or utc_now().astimezone(tz).date()
    with db.read() as session:
        demo = demographics_of(session, found.patient_id)
        due = due_for_patient(session, found.patient_id, today=today, tz=tz)
        return {
            "given_name": demo.given_name,
            "expires_utc": found.expires_utc.isoformat(),
            "today": today.isoformat(),
            "due": [
                {
                    "instrument": item.instrument,
                    "title": INSTRUMENTS[item.instrument].title,
                    "timepoint": item.timepoint,
                    "due_by": item.window_end.isoformat(),
                }
                for item in due
            ],
        }
