"""Role rules: what each role may do. Services call :func:`require`; routes never decide.

=================  =========  =====  ==========  =====
action             physician  nurse  front desk  admin
=================  =========  =====  ==========  =====
read_schedule      yes        yes    yes         no
book               yes        yes    yes         no
register_patient   yes        yes    yes         no
read_clinical      yes        yes    no          no
chart              yes        yes    no          no
change_rate        yes        yes*   no          no
acknowledge_alarm  yes        yes    no          no
screen             yes        yes    no          no
override           yes        no     no          no
plan               yes        no     no          no
decide             yes        no     no          no
prescribe          yes        no     no          no
change_course      yes        no     no          no
review_safety      yes        no     no          no
controlled_log     yes        yes    no          no
submit_pro         no         no     no          no
read_audit         yes        no     no          yes
read_outcomes      yes        no     no          yes
manage_users       no         no     no          yes
=================  =========  =====  ==========  =====

A patient is no user of the clinic: the patient portal submits questionnaires through an
expiring link (:mod:`ketapain.clinic.portal`), acting as role ``patient``, which may only
``submit_pro``.

\\* a nurse changes a rate only within the plan's limits (:mod:`ketapain.clinic.infusions`).

>>> from ketapain.clinic.audit import Actor
>>> require(Actor(user_id=None, username="fd", role="front_desk"), Action.CHART)
Traceback (most recent call last):
...
ketapain.errors.AccessDeniedError: a front desk may not chart
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from ketapain.clinic.audit import Actor
from ketapain.errors import AccessDeniedError

__all__ = ["ROLE_ACTIONS", "Action", "allowed", "require"]


class Action(StrEnum):
    """Something a user may or may not do."""

    READ_SCHEDULE = "read_schedule"
    BOOK = "book"
    REGISTER_PATIENT = "register_patient"
    READ_CLINICAL = "read_clinical"
    CHART = "chart"
    CHANGE_RATE = "change_rate"
    ACKNOWLEDGE_ALARM = "acknowledge_alarm"
    SCREEN = "screen"
    OVERRIDE = "override"
    PLAN = "plan"
    DECIDE = "decide"
    PRESCRIBE = "prescribe"
    CHANGE_COURSE = "change_course"
    REVIEW_SAFETY = "review_safety"
    CONTROLLED_LOG = "controlled_log"
    SUBMIT_PRO = "submit_pro"
    READ_AUDIT = "read_audit"
    READ_OUTCOMES = "read_outcomes"
    MANAGE_USERS = "manage_users"


_NURSE: Final = frozenset(
    {
        Action.READ_SCHEDULE,
        Action.BOOK,
        Action.REGISTER_PATIENT,
        Action.READ_CLINICAL,
        Action.CHART,
        Action.CHANGE_RATE,
        Action.ACKNOWLEDGE_ALARM,
        Action.SCREEN,
        Action.CONTROLLED_LOG,
    }
)
ROLE_ACTIONS: Final[dict[str, frozenset[Action]]] = {
    "physician": _NURSE
    | {
        Action.OVERRIDE,
        Action.PLAN,
        Action.DECIDE,
        Action.PRESCRIBE,
        Action.CHANGE_COURSE,
        Action.REVIEW_SAFETY,
        Action.READ_AUDIT,
        Action.READ_OUTCOMES,
    },
    "nurse": _NURSE,
    "front_desk": frozenset({Action.READ_SCHEDULE, Action.BOOK, Action.REGISTER_PATIENT}),
    # Outcome reports are de-identified aggregates: a clinic's quality lead may be an admin.
    "admin": frozenset({Action.READ_AUDIT, Action.READ_OUTCOMES, Action.MANAGE_USERS}),
    "patient": frozenset({Action.SUBMIT_PRO}),
    # Set-up and background jobs (demo data, migrations) act as the system.
    "system": frozenset(Action),
}


def allowed(actor: Actor, action: Action) -> bool:
    """True if the actor's role allows ``action``."""
    return action in ROLE_ACTIONS.get(actor.role, frozenset())


def require(actor: Actor, action: Action, detail: str = "") -> None:
    """Raise :class:`AccessDeniedError` unless the actor's role allows ``action``."""
    if not allowed(actor, action):
        raise AccessDeniedError(actor.role, action.value, detail)
