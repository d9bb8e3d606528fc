"""The API of follow-up: patient-reported outcomes, reminders, patient links."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["follow-up"])
