"""The patient portal page: questionnaires through an expiring link, no account."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
