"""Handoff settings: ``config/handoff.yml`` (or ``$HANDOFF_CONFIG``) overlaid with environment variables.

Non-secret settings (opening hours, timeouts) live in the YAML file; secrets and addresses come only from
the environment:

=============================== ===========================================================================
``HANDOFF_CONFIG``              another YAML file instead of ``config/handoff.yml``
``HANDOFF_DATABASE_URL``        SQLAlchemy URL of the ticket store (default ``sqlite:///var/handoff.db``)
``HANDOFF_REFERENCE_KEY``       the key of the opaque references agents and the webhook see instead of sender ids
                                (default: a random one per desk process; ``./scripts/run`` keeps one in var/)
``HANDOFF_INTAKE_TOKEN``        the action server's service token for ``POST /api/intake/tickets``
``HANDOFF_WEBHOOK_URL``         optional external desk receiving signed events
``HANDOFF_WEBHOOK_SECRET``      the HMAC-SHA256 key for the webhook (required with the URL)
``HANDOFF_OPENING_HOURS``       e.g. ``mon-fri 09:00-18:00; sat 10:00-16:00`` or ``always``
``HANDOFF_CLAIM_TIMEOUT_SECONDS``, ``HANDOFF_CHECK_INTERVAL_SECONDS``, ``HANDOFF_AGENT_SILENCE_SECONDS``,
``HANDOFF_PRESENCE_WINDOW_SECONDS``  override the YAML values
``RASA_URL``, ``RASA_AUTH_TOKEN``  the Rasa server's HTTP API, used by the desk
=============================== ===========================================================================

Agents sign in with per-agent credentials issued by ``python -m bot agents issue`` into the ticket store
(bot.handoff.credentials). ``HANDOFF_AGENT_TOKENS`` (plaintext name=token pairs) and ``HANDOFF_SHARED_SECRET``
(one secret for all, the name in a header) are refused: neither is hashed, expires or says who acted.

These are the desk's settings. The action server reads only ``HANDOFF_DESK_URL`` and ``HANDOFF_INTAKE_TOKEN``
(bot.handoff.intake): the desk owns the tickets and the opening hours.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Dict, Mapping, Optional

import yaml
from pydantic import BaseModel, Extra, ValidationError, validator

from bot import PROJECT_ROOT
from bot.handoff.hours import OpeningHours, OpeningHoursError, hours_from_mapping, hours_from_text

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "handoff.yml"
"""The configuration file used when ``HANDOFF_CONFIG`` is not set."""

DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'handoff.db'}"
"""The embedded ticket store: a SQLite file under var/."""

MIN_TOKEN_CHARS = 16
"""Shortest accepted agent or service token."""


class HandoffConfigError(ValueError):
    """The handoff configuration is invalid; the message names the file or variable and the problem."""


class _FileSettings(BaseModel):
    """The YAML file's schema (see config/handoff.yml for what each field means)."""

    timezone: str = "Asia/Shanghai"
    opening_hours: Dict[str, str] = {}
    claim_timeout_seconds: int = 600
    agent_silence_seconds: int = 300
    presence_window_seconds: int = 90
    check_interval_seconds: int = 15
    max_reply_chars: int = 1000
    webhook_max_attempts: int = 5
    webhook_retry_seconds: int = 10

    class Config:
        extra = Extra.forbid

    @validator("claim_timeout_seconds", "agent_silence_seconds", "presence_window_seconds",
               "check_interval_seconds", "max_reply_chars", "webhook_max_attempts", "webhook_retry_seconds")
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive number")
        return value


class HandoffSettings(BaseModel):
    """Everything the handoff needs, validated. Times in seconds; URLs as strings; secrets never logged."""

    opening_hours: OpeningHours
    database_url: str = DEFAULT_DATABASE_URL
    reference_key: str = ""
    """Key of the opaque references shown instead of sender ids (bot.handoff.store.reference)."""
    intake_token: Optional[str] = None
    webhook_url: Optional[str] = None
    webhook_secret: Optional[str] = None
    webhook_max_attempts: int = 5
    webhook_retry_seconds: int = 10
    claim_timeout_seconds: int = 600
    """A queued ticket nobody claims in this time hands the conversation back to the bot (a follow-up record)."""
    agent_silence_seconds: int = 300
    """A claimed ticket whose agent sends nothing for this time is released back to the queue."""
    presence_window_seconds: int = 90
    """An agent counts as present at the desk for this long after their page's or API's last call."""
    check_interval_seconds: int = 15
    max_reply_chars: int = 1000
    rasa_url: Optional[str] = None
    rasa_token: Optional[str] = None

    class Config:
        arbitrary_types_allowed = True

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"HandoffSettings(database_url={self.database_url!r})"

    __str__ = __repr__


REFUSED_VARIABLES = ("HANDOFF_AGENT_TOKENS", "HANDOFF_SHARED_SECRET")
"""Credentials of earlier releases that are no longer accepted (see the module docstring)."""


def _intake_token(env: Mapping[str, str]) -> Optional[str]:
    """The service token, checked here so that it can never double as Rasa's token."""
    token = (env.get("HANDOFF_INTAKE_TOKEN") or "").strip() or None
    if token is None:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise HandoffConfigError(f"HANDOFF_INTAKE_TOKEN is shorter than {MIN_TOKEN_CHARS} characters")
    if token == (env.get("RASA_AUTH_TOKEN") or "").strip():
        raise HandoffConfigError("HANDOFF_INTAKE_TOKEN must differ from RASA_AUTH_TOKEN")
    return token


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise HandoffConfigError(f"{name} must be a whole number of seconds, not {raw!r}") from err
    if value <= 0:
        raise HandoffConfigError(f"{name} must be positive")
    return value


def load_settings(env: Optional[Mapping[str, str]] = None) -> HandoffSettings:
    """Read the YAML file named by ``HANDOFF_CONFIG`` (default config/handoff.yml) and overlay ``env``.

    ``env`` defaults to ``os.environ``. A relative SQLite path in the database URL is taken from the project
    root. Raises HandoffConfigError naming the file or variable for anything invalid.
    """
    env = os.environ if env is None else env
    path = Path(env.get("HANDOFF_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        file_settings = _FileSettings.parse_obj(raw)
    except FileNotFoundError as err:
        raise HandoffConfigError(f"{path}: handoff configuration file is missing") from err
    except (yaml.YAMLError, ValidationError) as err:
        raise HandoffConfigError(f"{path}: {err}") from err
    try:
        if env.get("HANDOFF_OPENING_HOURS"):
            hours = hours_from_text(env["HANDOFF_OPENING_HOURS"], file_settings.timezone)
        else:
            hours = hours_from_mapping(file_settings.opening_hours, file_settings.timezone)
    except OpeningHoursError as err:
        raise HandoffConfigError(f"{path} / HANDOFF_OPENING_HOURS: {err}") from err
    webhook_url = env.get("HANDOFF_WEBHOOK_URL") or None
    webhook_secret = env.get("HANDOFF_WEBHOOK_SECRET") or None
    if webhook_url and not webhook_secret:
        raise HandoffConfigError("HANDOFF_WEBHOOK_URL is set but HANDOFF_WEBHOOK_SECRET is not")
    for name in REFUSED_VARIABLES:
        if env.get(name):
            raise HandoffConfigError(f"{name} is no longer accepted: issue each agent their own credential with "
                                     "python -m bot agents issue <name> (docs/handoff.md)")
    return HandoffSettings(
        opening_hours=hours,
        database_url=_absolute_sqlite(env.get("HANDOFF_DATABASE_URL") or DEFAULT_DATABASE_URL),
        reference_key=(env.get("HANDOFF_REFERENCE_KEY") or "").strip() or secrets.token_urlsafe(32),
        intake_token=_intake_token(env),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_max_attempts=file_settings.webhook_max_attempts,
        webhook_retry_seconds=file_settings.webhook_retry_seconds,
        claim_timeout_seconds=_int_env(env, "HANDOFF_CLAIM_TIMEOUT_SECONDS", file_settings.claim_timeout_seconds),
        check_interval_seconds=_int_env(env, "HANDOFF_CHECK_INTERVAL_SECONDS",
                                        file_settings.check_interval_seconds),
        agent_silence_seconds=_int_env(env, "HANDOFF_AGENT_SILENCE_SECONDS", file_settings.agent_silence_seconds),
        presence_window_seconds=_int_env(env, "HANDOFF_PRESENCE_WINDOW_SECONDS",
                                         file_settings.presence_window_seconds),
        max_reply_chars=file_settings.max_reply_chars,
        rasa_url=(env.get("RASA_URL") or "").rstrip("/") or None,
        rasa_token=env.get("RASA_AUTH_TOKEN") or None,
    )


def _absolute_sqlite(url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        return prefix + str(PROJECT_ROOT / url[len(prefix):])
    return url
