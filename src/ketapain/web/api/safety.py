"""The API of safety over the course."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["safety"])
