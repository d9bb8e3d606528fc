"""One settings object for the clinic records, the API and the CLI.

Every setting has a default that works on a fresh machine (an SQLite file in the current
folder) and can be set from the environment::

    KETAPAIN_DATABASE_URL     sqlite:///ketapain.db (default) or
                              postgresql+psycopg://user:password@host:5432/ketapain
    KETAPAIN_TOKEN_TTL_H      lifetime of an API token, hours (default 12)
    KETAPAIN_SESSION_IDLE_MIN web session closes after this many idle minutes (default 30)
    KETAPAIN_LOCKOUT_ATTEMPTS failed logins in a row that lock an account (default 5)
    KETAPAIN_LOCKOUT_MIN      how long a locked account stays locked, minutes (default 15)
    KETAPAIN_ALARM_THRESHOLDS a TOML file replacing the default alarm thresholds
    KETAPAIN_TIMEZONE         the clinic's time zone for the pages, IANA name (default UTC)
    KETAPAIN_OUTCOME_SNAPSHOT a Parquet file that keeps the outcome rows between reports
    KETAPAIN_FHIR_MRN_SYSTEM  the identifier system (URI) of the clinic's medical record
                              numbers in FHIR (default https://ketapain.org/fhir/sid/mrn)
    KETAPAIN_CHAIRS           infusion chairs of the clinic (default 4)
    KETAPAIN_NURSES_ON_DUTY   nurses watching the chairs at once (default 2)
    KETAPAIN_PATIENTS_PER_NURSE patients in chairs one nurse watches at most (default 2)
    KETAPAIN_CLINIC_OPENS_H   hour the clinic opens, 0-23 (default 8)
    KETAPAIN_CLINIC_CLOSES_H  hour the clinic closes, 1-24, after it opens (default 18)
    KETAPAIN_SERVER_THREADS   request threads of each server process, 1-32 (default 4)

The token, session and lock-out values are clinic security policy, not clinical numbers.
NIST SP 800-63B (Grassi 2017, section 5.2.2) requires a limit of at most 100 consecutive
failed attempts; 5 attempts and 15 minutes follow the common practice of hospital systems
and can be set per clinic. The session idle time follows the HIPAA Security Rule's
automatic log-off (45 CFR 164.312(a)(2)(iii)), which sets no number.

The chairs, the nurses on duty, the patients one nurse watches and the opening hours are
the clinic's to set, not clinical numbers: the defaults (4 chairs, 2 nurses of 2
patients each, 08:00 to 18:00) make the demo clinic work. No published ratio of nurses to
patients in chairs was found for outpatient ketamine infusions (the clinical reference,
section 1, asks only for a monitored setting with trained staff). The booking services
(:mod:`ketapain.clinic.booking`) book at most ``min(chairs, nurses_on_duty *
patients_per_nurse)`` patients at once.

>>> Settings.from_env({}).database_url
'sqlite:///ketapain.db'
>>> Settings.from_env({"KETAPAIN_LOCKOUT_ATTEMPTS": "3"}).lockout_attempts
3
>>> Settings.from_env({"KETAPAIN_CHAIRS": "6"}).chairs
6
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ketapain.errors import InvalidValueError

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_MRN_SYSTEM", "Settings"]

DEFAULT_DATABASE_URL: Final = "sqlite:///ketapain.db"
DEFAULT_MRN_SYSTEM: Final = "https://ketapain.org/fhir/sid/mrn"
# NIST SP 800-63B section 5.2.2: no more than 100 consecutive failed attempts.
_MAX_LOCKOUT_ATTEMPTS: Final = 100
# Bounds of the whole-number settings against typing errors (a clinic, not a hospital).
_WHOLE_NUMBERS: Final = (
    ("chairs", 1, 100),
    ("nurses_on_duty", 1, 50),
    ("patients_per_nurse", 1, 10),
    ("clinic_opens_h", 0, 23),
    ("clinic_closes_h", 1, 24),
    ("server_threads", 1, 32),
)


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidValueError(key, f"a whole number from {low} to {high}", raw) from None
    if not low <= value <= high:
        raise InvalidValueError(key, f"a whole number from {low} to {high}", value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Settings of one deployment; build with :meth:`from_env` or directly in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    token_ttl_h: int = 12
    session_idle_min: int = 30
    lockout_attempts: int = 5
    lockout_min: int = 15
    alarm_thresholds_file: Path | None = None
    # Secure cookies need HTTPS; `ketapain serve` on loopback for a demo runs plain HTTP.
    secure_cookies: bool = False
    # Times are stored in UTC and shown in the clinic's zone (the pages' only conversion).
    timezone: str = "UTC"
    # A file that keeps the outcome rows between reports (ketapain.clinic.outcome_snapshot).
    outcome_snapshot: Path | None = None
    # The URI naming the clinic's MRNs in FHIR Patient.identifier (a URL or urn:oid:).
    fhir_mrn_system: str = DEFAULT_MRN_SYSTEM
    # Clinic capacity (the clinic's to set, not clinical numbers): chairs, nurses on duty,
    # patients in chairs one nurse watches, and the opening hours the desk books within.
    chairs: int = 4
    nurses_on_duty: int = 2
    patients_per_nurse: int = 2
    clinic_opens_h: int = 8
    clinic_closes_h: int = 18
    # Request threads of each server process (`ketapain serve --threads`): the routes are
    # CPU-bound and share one interpreter lock per process, so a busy clinic runs few
    # threads in more processes (README, "A busy clinic day").
    server_threads: int = 4

    def __post_init__(self) -> None:
        for name, low, high in _WHOLE_NUMBERS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidValueError(name, f"a whole number from {low} to {high}", value)
        if self.clinic_closes_h <= self.clinic_opens_h:
            raise InvalidValueError(
                "clinic_closes_h",
                f"an hour after the opening hour ({self.clinic_opens_h})",
                self.clinic_closes_h,
            )
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise InvalidValueError(
                "database_url", "an sqlite:/// or postgresql+psycopg:// URL", self.database_url
            )
        if not 1 <= self.lockout_attempts <= _MAX_LOCKOUT_ATTEMPTS:
            raise InvalidValueError(
                "lockout_attempts", f"1 to {_MAX_LOCKOUT_ATTEMPTS}", self.lockout_attempts
            )
        if not self.fhir_mrn_system.startswith(("http://", "https://", "urn:")):
            raise InvalidValueError(
                "fhir_mrn_system", "an absolute URI (http(s):// or urn:)", self.fhir_mrn_system
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValueError(
                "timezone", "an IANA time zone name such as Europe/Amsterdam", self.timezone
            ) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``KETAPAIN_*`` environment variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        thresholds = env.get("KETAPAIN_ALARM_THRESHOLDS")
        default = {f.name: f.default for f in fields(cls) if isinstance(f.default, int)}
        counts = {
            name: _int(env, f"KETAPAIN_{name.upper()}", default[name], low, high)
            for name, low, high in _WHOLE_NUMBERS
        }
        if counts["clinic_closes_h"] <= counts["clinic_opens_h"]:
            raise InvalidValueError(
                "KETAPAIN_CLINIC_CLOSES_H",
                f"an hour after KETAPAIN_CLINIC_OPENS_H ({counts['clinic_opens_h']})",
                counts["clinic_closes_h"],
            )
        return cls(
            database_url=env.get("KETAPAIN_DATABASE_URL") or DEFAULT_DATABASE_URL,
            token_ttl_h=_int(env, "KETAPAIN_TOKEN_TTL_H", 12, 1, 24 * 30),
            session_idle_min=_int(env, "KETAPAIN_SESSION_IDLE_MIN", 30, 1, 24 * 60),
            lockout_attempts=_int(env, "KETAPAIN_LOCKOUT_ATTEMPTS", 5, 1, _MAX_LOCKOUT_ATTEMPTS),
            lockout_min=_int(env, "KETAPAIN_LOCKOUT_MIN", 15, 1, 24 * 60),
            alarm_thresholds_file=Path(thresholds) if thresholds else None,
            secure_cookies=env.get("KETAPAIN_SECURE_COOKIES", "") in ("1", "true", "yes"),
            timezone=env.get("KETAPAIN_TIMEZONE") or "UTC",
            outcome_snapshot=Path(snap) if (snap := env.get("KETAPAIN_OUTCOME_SNAPSHOT")) else None,
            fhir_mrn_system=env.get("KETAPAIN_FHIR_MRN_SYSTEM") or DEFAULT_MRN_SYSTEM,
            **counts,
        )
