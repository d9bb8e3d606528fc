"""The API of booking: series calendar, missed sessions, capacity, relapse and boosters."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["booking"])
