"""The patient portal's services: links (issue, resolve, revoke; only a hash stored),
submissions recorded and audited as the inactive ``patient-portal`` user, and the alerts
a patient's PHQ-9 raises."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic.accounts import User, authenticate, create_user
from ketapain.clinic.alarms import Alarm
from ketapain.clinic.audit import SYSTEM, AuditEntry, unit_of_work
from ketapain.clinic.charting import open_alarms
from ketapain.clinic.db import utc_now
from ketapain.clinic.observations import Score
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.portal import (
    DEFAULT_LINK_VALID_DAYS,
    PORTAL_USERNAME,
    LinkUnavailableError,
    PatientLink,
    issue_link,
    list_links,
    portal_actor,
    portal_view,
    resolve_link,
    revoke_link,
    submit,
)
from ketapain.clinic.registry import register_patient
from ketapain.config import Settings
from ketapain.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    InvalidValueError,
    RecordNotFoundError,
)

PHQ9_ITEM9 = {f"item{i}": 0 for i in range(1, 9)} | {"item9": 1}


@pytest.fixture
def link(db, staff, patient):
    """A 14-day link issued by the nurse for the fixture patient."""
    return issue_link(db, staff["nurse"], patient.id)


def _count(db, model, *where):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _expire(db, link_id):
    """Move the link's expiry to a second ago (time passing)."""
    with unit_of_work(db, SYSTEM) as s:
        s.get(PatientLink, link_id).expires_utc = utc_now() - timedelta(seconds=1)


# --- links ------------------------------------------------------------------------------


def test_a_link_stores_only_the_hash_of_its_secret(db, staff, link):
    """The secret is returned once; the row holds its SHA-256 and nowhere in the audit
    trail is the secret written."""
    assert link.url_path == f"/p/{link.secret}" and len(link.secret) >= 43
    with db.session() as s:
        row = s.get(PatientLink, link.link_id)
        audit = s.scalars(select(AuditEntry)).all()
    assert row.secret_sha256 == hashlib.sha256(link.secret.encode()).hexdigest()
    assert not any(link.secret in str(e.as_dict()) for e in audit)
    valid = row.expires_utc - row.created_utc
    assert abs(valid - timedelta(days=DEFAULT_LINK_VALID_DAYS)) < timedelta(seconds=5)


@pytest.mark.parametrize(("days", "ok"), [(0, False), (1, True), (90, True), (91, False)])
def test_link_validity_is_1_to_90_days(db, staff, patient, days, ok):
    """A link lasts 1 to 90 days; 0 or 91 is refused naming ``valid_days``."""
    if ok:
        issued = issue_link(db, staff["physician"], patient.id, valid_days=days)
        assert issued.expires_utc - utc_now() > timedelta(days=days) - timedelta(minutes=1)
    else:
        with pytest.raises(InvalidValueError) as err:
            issue_link(db, staff["physician"], patient.id, valid_days=days)
        assert err.value.field == "valid_days"


def test_only_nurses_and_physicians_issue_and_revoke_links(db, staff, patient, link):
    """The front desk and the admin may neither issue nor revoke a link."""
    for role in ("front_desk", "admin"):
        with pytest.raises(AccessDeniedError):
            issue_link(db, staff[role], patient.id)
        with pytest.raises(AccessDeniedError):
            revoke_link(db, staff[role], patient.id, link.link_id)
    assert _count(db, PatientLink) == 1


def test_expired_revoked_and_unknown_links_give_the_same_answer(db, staff, patient):
    """An unknown secret, an expired link and a revoked one raise the same error with the
    same message, so that a link cannot be probed; a link in force resolves."""
    expired = issue_link(db, staff["nurse"], patient.id)
    revoked = issue_link(db, staff["nurse"], patient.id)
    good = issue_link(db, staff["nurse"], patient.id)
    _expire(db, expired.link_id)
    revoke_link(db, staff["nurse"], patient.id, revoked.link_id)
    messages = set()
    for secret in ("not-a-link", expired.secret, revoked.secret):
        with pytest.raises(LinkUnavailableError) as err:
            resolve_link(db, secret)
        assert isinstance(err.value, RecordNotFoundError)
        messages.add(str(err.value))
    assert len(messages) == 1 and "not-a-link" not in messages.pop()
    assert resolve_link(db, good.secret).patient_id == patient.id


def test_revoking_checks_the_patient_and_is_idempotent(db, staff, patient, link):
    """A link is revoked through its own patient only; revoking twice keeps the first time."""
    other = register_patient(
        db, staff["front_desk"], mrn="T-0002", family_name="Roe", given_name="Rick",
        birth_date=datetime(1970, 1, 1).date(), sex="male",
    )  # fmt: skip
    with pytest.raises(RecordNotFoundError):
        revoke_link(db, staff["nurse"], other.id, link.link_id)
    first = revoke_link(db, staff["nurse"], patient.id, link.link_id)
    again = revoke_link(db, staff["physician"], patient.id, link.link_id)
    assert first["revoked_utc"] == again["revoked_utc"]
    with db.session() as s:
        listed = list_links(s, staff["nurse"], patient.id)
    assert [(x["id"], x["in_force"]) for x in listed] == [(str(link.link_id), False)]


# --- submissions ------------------------------------------------------------------------


def test_a_submission_is_recorded_and_audited_as_the_portal_user(db, link, patient):
    """The score is recorded by the ``patient-portal`` user; its audit entries carry that
    actor (role ``patient``) and the link's id; the link's last use is set."""
    sent = submit(db, link.secret, instrument="pain_nrs", value=4)
    with db.session() as s:
        portal = s.scalar(select(User).where(User.username == PORTAL_USERNAME))
        score = s.get(Score, sent.score.id)
        entries = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == str(score.id))).all()
        used = s.get(PatientLink, link.link_id).last_used_utc
    assert (score.patient_id, score.value, score.recorded_by_id) == (patient.id, 4.0, portal.id)
    assert {(e.action, e.actor_username, e.actor_role) for e in entries} == {
        ("create", PORTAL_USERNAME, "patient"),
        ("submit_pro", PORTAL_USERNAME, "patient"),
    }
    detail = next(e.detail for e in entries if e.action == "submit_pro")
    assert str(link.link_id) in detail
    assert used is not None


@pytest.mark.parametrize("instrument", ["moaas", "aldrete", "urinary_screen", "weight"])
def test_only_patient_reported_instruments_are_accepted(db, link, instrument):
    """A clinician's score (sedation, discharge, urinary screen) or an unknown name is
    refused naming ``instrument``; nothing is written."""
    with pytest.raises(InvalidValueError) as err:
        submit(db, link.secret, instrument=instrument, value=1)
    assert err.value.field == "instrument"
    assert _count(db, Score) == 0


def test_a_future_or_earlier_measured_time_is_refused(db, link):
    """A score dated in the future, or before the link was issued, is refused; one dated
    now is taken."""
    for when in (utc_now() + timedelta(minutes=5), utc_now() - timedelta(days=2)):
        with pytest.raises(InvalidValueError) as err:
            submit(db, link.secret, instrument="pain_nrs", value=3, measured_utc=when)
        assert err.value.field == "measured_utc"
    assert _count(db, Score) == 0
    submit(db, link.secret, instrument="pain_nrs", value=3, measured_utc=utc_now())
    assert _count(db, Score) == 1


def test_out_of_range_answers_are_refused(db, link):
    """A pain score of 11 or a PHQ-9 item of 4 is refused naming the field."""
    with pytest.raises(InvalidValueError):
        submit(db, link.secret, instrument="pain_nrs", value=11)
    with pytest.raises(InvalidValueError) as err:
        submit(db, link.secret, instrument="phq9", items=PHQ9_ITEM9 | {"item2": 4})
    assert err.value.field == "items.item2"
    assert _count(db, Score) == 0


def test_a_revoked_or_expired_link_cannot_submit(db, staff, patient, link):
    """After revocation the same secret is refused like an unknown one; nothing is written."""
    revoke_link(db, staff["nurse"], patient.id, link.link_id)
    with pytest.raises(LinkUnavailableError):
        submit(db, link.secret, instrument="pain_nrs", value=2)
    other = issue_link(db, staff["nurse"], patient.id)
    _expire(db, other.link_id)
    with pytest.raises(LinkUnavailableError):
        submit(db, other.secret, instrument="pain_nrs", value=2)
    assert _count(db, Score) == 0


@pytest.mark.parametrize(("item9", "alerted"), [(0, False), (1, True)])
def test_a_patients_phq9_item9_alerts_the_physician(db, staff, patient, link, item9, alerted):
    """Item 9 at 1 through the portal: a stop alarm in the same transaction, open on the
    physician's list; at 0: none."""
    sent = submit(db, link.secret, instrument="phq9", items=PHQ9_ITEM9 | {"item9": item9})
    assert [a.signal for a in sent.alarms] == (["phq9_item9"] if alerted else [])
    with db.session() as s:
        listed = open_alarms(s, staff["physician"], patient_id=patient.id)
        portal = s.scalar(select(User.id).where(User.username == PORTAL_USERNAME))
    assert [a["level"] for a in listed] == (["stop"] if alerted else [])
    if alerted:
        assert _count(db, Alarm, Alarm.recorded_by_id == portal) == 1


# --- the portal user --------------------------------------------------------------------


def test_the_portal_user_cannot_sign_in(db, link):
    """``patient-portal`` is inactive with no usable password: sign-in is refused whatever
    is typed; its role may only submit questionnaires."""
    actor = portal_actor(db)
    with db.session() as s:
        user = s.get(User, actor.user_id)
    assert (user.active, str(user.role)) == (False, "patient")
    for password in ("", "!", user.password_hash, "test-password-1"):
        with pytest.raises(AuthenticationError):
            authenticate(db, Settings(), username=PORTAL_USERNAME, password=password)
    require(actor, Action.SUBMIT_PRO)
    for action in (Action.CHART, Action.READ_CLINICAL, Action.READ_SCHEDULE):
        with pytest.raises(AccessDeniedError):
            require(actor, action)


def test_the_portal_user_is_created_once(db, link):
    """Two submissions share one portal user, created on the first."""
    assert _count(db, User, User.username == PORTAL_USERNAME) == 0
    submit(db, link.secret, instrument="pain_nrs", value=5)
    submit(db, link.secret, instrument="eq_vas", value=70)
    assert _count(db, User, User.username == PORTAL_USERNAME) == 1


def test_a_staff_user_named_patient_portal_is_not_taken_for_the_portal(db, link):
    """If an active staff user already holds the name, the portal refuses to act as it."""
    create_user(
        db, SYSTEM, username=PORTAL_USERNAME, full_name="Someone", role="nurse",
        password="long-password-1",
    )  # fmt: skip
    with pytest.raises(ConflictError):
        submit(db, link.secret, instrument="pain_nrs", value=5)
    assert _count(db, Score) == 0


# --- the page's view --------------------------------------------------------------------


def test_the_portal_view_shows_the_given_name_only(db, link):
    """The view names the patient by given name; no family name, MRN or birth date."""
    view = portal_view(db, link.secret)
    assert view["given_name"] == "Jane"
    text = str(view)
    assert "Doe" not in text and "T-0001" not in text and "1980" not in text
    assert view["due"] == []  # no course: nothing is asked
    with pytest.raises(LinkUnavailableError):
        portal_view(db, "no-such-link")


def test_the_portal_view_lists_what_is_due_until_sent(db, staff, patient, link):
    """With a course in its first week, today's pain diary is due; once sent, it is not."""
    from ketapain.clinic.treatment import create_course

    today = datetime.now(UTC).date()
    create_course(
        db, staff["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=today - timedelta(days=3), bag_mg=250, bag_ml=250,
    )  # fmt: skip
    due = [d["instrument"] for d in portal_view(db, link.secret)["due"]]
    assert "pain_nrs" in due
    submit(db, link.secret, instrument="pain_nrs", value=5)
    assert "pain_nrs" not in [d["instrument"] for d in portal_view(db, link.secret)["due"]]
