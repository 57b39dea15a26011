"""Handoff settings: ``config/handoff.yml`` (or ``$HANDOFF_CONFIG``) overlaid with environment variables.

Non-secret settings (opening hours, timeouts) live in the YAML file; secrets and addresses come only from
the environment:

=============================== ===========================================================================
``HANDOFF_CONFIG``              another YAML file instead of ``config/handoff.yml``
``HANDOFF_DATABASE_URL``        SQLAlchemy URL of the ticket store (default ``sqlite:///var/handoff.db``)
``HANDOFF_AGENT_TOKENS``        per-agent tokens, ``name=token,name=token``
``HANDOFF_SHARED_SECRET``       one secret for all agents (each then gives a name); ignored with tokens
``HANDOFF_INTAKE_TOKEN``        the action server's service token for ``POST /api/intake/tickets``
``HANDOFF_WEBHOOK_URL``         optional external desk receiving signed events
``HANDOFF_WEBHOOK_SECRET``      the HMAC-SHA256 key for the webhook (required with the URL)
``HANDOFF_OPENING_HOURS``       e.g. ``mon-fri 09:00-18:00; sat 10:00-16:00`` or ``always``
``HANDOFF_CLAIM_TIMEOUT_SECONDS``, ``HANDOFF_CHECK_INTERVAL_SECONDS``, ``HANDOFF_AGENT_SILENCE_SECONDS``,
``HANDOFF_PRESENCE_WINDOW_SECONDS``  override the YAML values
``RASA_URL``, ``RASA_AUTH_TOKEN``  the Rasa server's HTTP API, used by the desk
=============================== ===========================================================================

These are the desk's settings. The action server reads only ``HANDOFF_DESK_URL`` and ``HANDOFF_INTAKE_TOKEN``
(bot.handoff.intake): the desk owns the tickets and the opening hours.
"""
from __future__ import annotations

import os
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
    agent_tokens: Dict[str, str] = {}
    shared_secret: Optional[str] = None
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

    @property
    def auth_configured(self) -> bool:
        """True if agents can authenticate (per-agent tokens or a shared secret)."""
        return bool(self.agent_tokens) or bool(self.shared_secret)


def parse_agent_tokens(text: str) -> Dict[str, str]:
    """``"王敏=tok1,李强=tok2"`` -> ``{"王敏": "tok1", "李强": "tok2"}``.

    Raises HandoffConfigError for an entry without ``=``, an empty name or token, a token shorter than 16
    characters, or a name or token given twice.
    """
    tokens: Dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, token = entry.partition("=")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise HandoffConfigError("HANDOFF_AGENT_TOKENS entries must look like name=token")
        if len(token) < MIN_TOKEN_CHARS:
            raise HandoffConfigError(f"HANDOFF_AGENT_TOKENS: the token of {name!r} is shorter than "
                                     f"{MIN_TOKEN_CHARS} characters")
        if name in tokens or token in tokens.values():
            raise HandoffConfigError(f"HANDOFF_AGENT_TOKENS: {name!r} or its token is given twice")
        tokens[name] = token
    return tokens


def _intake_token(env: Mapping[str, str], agent_tokens: Mapping[str, str],
                  shared_secret: Optional[str]) -> Optional[str]:
    """The service token, checked here so that an agent credential can never double as it."""
    token = (env.get("HANDOFF_INTAKE_TOKEN") or "").strip() or None
    if token is None:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise HandoffConfigError(f"HANDOFF_INTAKE_TOKEN is shorter than {MIN_TOKEN_CHARS} characters")
    if token in agent_tokens.values() or token == shared_secret:
        raise HandoffConfigError("HANDOFF_INTAKE_TOKEN must differ from every agent credential")
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
    agent_tokens = parse_agent_tokens(env.get("HANDOFF_AGENT_TOKENS", ""))
    shared_secret = env.get("HANDOFF_SHARED_SECRET") or None
    return HandoffSettings(
        opening_hours=hours,
        database_url=_absolute_sqlite(env.get("HANDOFF_DATABASE_URL") or DEFAULT_DATABASE_URL),
        agent_tokens=agent_tokens,
        shared_secret=shared_secret,
        intake_token=_intake_token(env, agent_tokens, shared_secret),
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
