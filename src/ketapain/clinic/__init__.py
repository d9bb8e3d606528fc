"""Clinical records: the system of record of an infusion clinic.

Patients, courses, infusions, observations, alarms, screening results and overrides,
users and the audit trail, in SQLAlchemy 2.0 typed models with Alembic migrations.
Every write goes through :func:`ketapain.clinic.audit.unit_of_work`, which commits the
change and its audit entries together; clinical rows are append-only (corrections point
at the row they correct). Role rules live in :mod:`ketapain.clinic.permissions`.

Importing this package registers every table on ``Base.metadata``.
"""

from __future__ import annotations

from ketapain.clinic import (  # noqa: F401 - registers the tables and the audit hooks
    accounts,
    alarms,
    audit,
    booking,
    checklist,
    controlled,
    course_safety,
    courses,
    infusions,
    observations,
    patients,
    portal,
    screenings,
)
from ketapain.clinic.audit import SYSTEM, Actor, unit_of_work
from ketapain.clinic.db import Base, Database

__all__ = ["SYSTEM", "Actor", "Base", "Database", "unit_of_work"]
