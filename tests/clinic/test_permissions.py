"""The role table: what each clinic role may do, and the refusal it gets otherwise."""

from __future__ import annotations

import re

import pytest

from ketapain.clinic import permissions
from ketapain.clinic.audit import Actor
from ketapain.clinic.permissions import ROLE_ACTIONS, Action, allowed, require
from ketapain.errors import AccessDeniedError

ROLES = ("physician", "nurse", "front_desk", "admin")

# The table of the permissions module docstring, copied by hand: action -> (physician,
# nurse, front desk, admin). A change of a role rule must change both.
TABLE: dict[str, tuple[bool, bool, bool, bool]] = {
    "read_schedule": (True, True, True, False),
    "book": (True, True, True, False),
    "register_patient": (True, True, True, False),
    "read_clinical": (True, True, False, False),
    "chart": (True, True, False, False),
    "change_rate": (True, True, False, False),
    "acknowledge_alarm": (True, True, False, False),
    "screen": (True, True, False, False),
    "override": (True, False, False, False),
    "plan": (True, False, False, False),
    "decide": (True, False, False, False),
    "prescribe": (True, False, False, False),
    "change_course": (True, False, False, False),
    "review_safety": (True, False, False, False),
    "controlled_log": (True, True, False, False),
    "submit_pro": (False, False, False, False),
    "read_audit": (True, False, False, True),
    "read_outcomes": (True, False, False, True),
    "manage_users": (False, False, False, True),
}
CASES = [(role, action) for action in TABLE for role in ROLES]


def _actor(role: str) -> Actor:
    return Actor(user_id=None, username=f"user-{role}", role=role)


def test_table_lists_every_action() -> None:
    """The expected table names exactly the actions the module defines."""
    assert set(TABLE) == {a.value for a in Action}
    assert set(ROLE_ACTIONS) == {*ROLES, "patient", "system"}


def test_the_portal_role_only_submits_questionnaires() -> None:
    """A patient acting through a portal link may submit scores and nothing else."""
    assert ROLE_ACTIONS["patient"] == {Action.SUBMIT_PRO}
    assert not allowed(_actor("patient"), Action.READ_CLINICAL)


def test_docstring_table_is_the_expected_table() -> None:
    """The table printed in the module docstring says what the test table says."""
    doc = permissions.__doc__
    assert doc is not None
    rows = {}
    for line in doc.splitlines():
        words = line.split()
        if len(words) == 5 and words[0] in TABLE:
            rows[words[0]] = tuple(w.rstrip("*") == "yes" for w in words[1:])
    assert rows == TABLE


@pytest.mark.parametrize(("role", "action"), CASES)
def test_allowed_matches_table(role: str, action: str) -> None:
    """allowed() gives the table's yes or no for this role and action."""
    expected = TABLE[action][ROLES.index(role)]
    assert allowed(_actor(role), Action(action)) is expected


@pytest.mark.parametrize(("role", "action"), CASES)
def test_require_follows_allowed(role: str, action: str) -> None:
    """require() passes silently where allowed, else raises 'a <role> may not <action>'."""
    actor = _actor(role)
    if TABLE[action][ROLES.index(role)]:
        assert require(actor, Action(action)) is None
        return
    words = f"a {role.replace('_', ' ')} may not {action.replace('_', ' ')}"
    with pytest.raises(AccessDeniedError, match=f"^{re.escape(words)}$") as info:
        require(actor, Action(action))
    assert info.value.role == role
    assert info.value.action == action
    assert info.value.audited is False
    assert isinstance(info.value, PermissionError)


def test_require_message_examples() -> None:
    """The refusal reads as plain words, with the detail after a colon."""
    with pytest.raises(AccessDeniedError, match=r"^a front desk may not chart$"):
        require(_actor("front_desk"), Action.CHART)
    with pytest.raises(AccessDeniedError, match=r"^a nurse may not read audit: not a nurse's$"):
        require(_actor("nurse"), Action.READ_AUDIT, "not a nurse's")
    with pytest.raises(AccessDeniedError, match=r"^a physician may not manage users$"):
        require(_actor("physician"), Action.MANAGE_USERS)


@pytest.mark.parametrize("action", list(Action))
def test_system_may_do_everything(action: Action) -> None:
    """The system role (set-up, background jobs) is allowed every action."""
    assert allowed(_actor("system"), action)
    require(_actor("system"), action)


@pytest.mark.parametrize("role", ["", "superuser", "Physician", "front desk"])
def test_unknown_role_may_do_nothing(role: str) -> None:
    """A role the table does not know is allowed nothing (no case folding, no guessing)."""
    assert not any(allowed(_actor(role), a) for a in Action)
    with pytest.raises(AccessDeniedError):
        require(_actor(role), Action.READ_SCHEDULE)
