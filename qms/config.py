"""Typed settings, read from QMS_* environment variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """A setting has a value the application cannot use."""


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    # QMS_SECRET_KEY, if set; otherwise the web app takes the instance folder's key
    # (`web_secret_key`), so that commands which are not the web app write nothing.
    secret_key: str | None = None
    # QMS_LEDGER_KEY (hex), if set; otherwise the instance folder's `ledger_key`. Every
    # process that writes or verifies the ledger (web, CLI, scheduler, other instances on
    # one PostgreSQL) must use the same key.
    ledger_key: str | None = None
    timezone: str = "Asia/Shanghai"
    # Sessions end after this many minutes without a request (Annex 11 / Part 11).
    idle_timeout_minutes: int = 15
    # A signature later than this many minutes after the last password entry asks again.
    signature_freshness_minutes: int = 5
    # Failed logins in a row that lock an account, and for how long.
    lockout_threshold: int = 5
    lockout_minutes: int = 30
    # Cookies are Secure unless serving plain HTTP on loopback for development.
    secure_cookies: bool = True
    testing: bool = False
    # A site's own parameter file (institutional windows), applied over the shipped checklists.
    site_file: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        instance = Path(env.get("QMS_INSTANCE_PATH", "instance")).resolve()
        database_url = env.get("QMS_DATABASE_URL") or f"sqlite:///{instance / 'qms.sqlite3'}"
        timezone = env.get("QMS_TIMEZONE", "Asia/Shanghai")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(
                f"QMS_TIMEZONE={timezone!r} is not a known time zone; use an IANA name such as Asia/Shanghai"
            ) from exc
        site_file = Path(env["QMS_SITE_FILE"]).resolve() if env.get("QMS_SITE_FILE") else None
        if site_file is not None and not site_file.is_file():
            raise SettingsError(f"QMS_SITE_FILE={env['QMS_SITE_FILE']!r} is not a file")
        return cls(
            instance_path=instance,
            database_url=database_url,
            secret_key=env.get("QMS_SECRET_KEY") or None,
            ledger_key=_hex_key(env, "QMS_LEDGER_KEY"),
            timezone=timezone,
            idle_timeout_minutes=_int(env, "QMS_IDLE_TIMEOUT_MINUTES", 15),
            signature_freshness_minutes=_int(env, "QMS_SIGNATURE_FRESHNESS_MINUTES", 5),
            lockout_threshold=_int(env, "QMS_LOCKOUT_THRESHOLD", 5),
            lockout_minutes=_int(env, "QMS_LOCKOUT_MINUTES", 30),
            secure_cookies=env.get("QMS_SECURE_COOKIES", "1") not in ("0", "false", "no"),
            site_file=site_file,
        )


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} must be a whole number") from exc
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than zero")
    return value


def _hex_key(env: dict[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        if len(bytes.fromhex(raw)) < 32:
            raise ValueError
    except ValueError:
        raise SettingsError(f"{name} must be at least 64 hexadecimal digits (32 bytes)") from None
    return raw


def ledger_seal_key(settings: Settings) -> bytes:
    """The key that seals each ledger entry (an HMAC of its hash): QMS_LEDGER_KEY, else the
    instance folder's own, made once. It stays out of the database, so that someone who can
    write to the database but not read this key cannot append a record that verifies."""
    return bytes.fromhex(
        settings.ledger_key or _instance_secret(settings.instance_path, "ledger_key")
    )


def web_secret_key(settings: Settings) -> str:
    """The key that signs session cookies: QMS_SECRET_KEY, else the instance folder's own."""
    return settings.secret_key or _instance_secret(settings.instance_path)


def _instance_secret(instance: Path, name: str = "secret_key") -> str:
    """A secret kept in the instance folder, made once on first use."""
    path = instance / name
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # O_EXCL: two processes starting at once keep one key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
