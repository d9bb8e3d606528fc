"""The audit trail for admins (and physicians): every change, who, when, before/after."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketapain.clinic.audit import list_entries, reading
from ketapain.clinic.permissions import Action, require
from ketapain.web.deps import DbDep
from ketapain.web.pages._render import PageUserDep, render

__all__ = ["router"]

router = APIRouter()

_PAGE = 50


@router.get("/admin/audit")
def audit(
    request: Request,
    db: DbDep,
    me: PageUserDep,
    entity: str | None = None,
    actor_username: str | None = None,
    action: str | None = None,
    after_id: int = 0,
) -> Response:
    """Audit entries in the order written, 50 a page, filtered by table, user or action."""
    actor = me.user.actor()
    with reading(db, actor) as session:
        require(actor, Action.READ_AUDIT)
        rows = list_entries(
            session,
            entity=entity or None,
            actor_username=actor_username or None,
            action=action or None,
            after_id=after_id,
            limit=_PAGE + 1,
        )
    entries = [r.as_dict() for r in rows[:_PAGE]]
    return render(
        request,
        "audit.html",
        page_user=me,
        entries=entries,
        more=len(rows) > _PAGE,
        filters={
            "entity": entity or "",
            "actor_username": actor_username or "",
            "action": action or "",
        },
    )
