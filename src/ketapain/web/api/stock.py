"""The API of controlled-substance log."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["stock"])
