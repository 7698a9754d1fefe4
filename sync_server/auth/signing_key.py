"""The secret access tokens are signed with.

From ``SYNC_JWT_SECRET`` when set. Otherwise the embedded mode makes one on first start and
keeps it in the data directory (owner-only), so that tokens survive a restart. PostgreSQL mode
may run many processes that must all accept each other's tokens, so there a secret made up by
one process would be wrong: it refuses to start instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from ..settings import Settings

log = logging.getLogger("sync_server.auth")

SECRET_FILE = "jwt_secret"
MIN_SECRET_BYTES = 32  # HS256 wants a key at least as long as its 256-bit output


class ConfigurationError(RuntimeError):
    """The server cannot start with these settings; the message says what to set."""


def load_signing_key(settings: Settings) -> str:
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if configured:
        return _checked(configured, "SYNC_JWT_SECRET")
    if not settings.embedded:
        raise ConfigurationError(
            "SYNC_JWT_SECRET is required with DATABASE_URL (PostgreSQL): every server process "
            "must sign and check tokens with the same secret. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
    return _checked(_embedded_secret(settings.data_dir / SECRET_FILE), "the secret file")


def _checked(secret: str, origin: str) -> str:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{origin} is too short: a JWT secret needs at least {MIN_SECRET_BYTES} bytes"
        )
    return secret


def _embedded_secret(path: Path) -> str:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: if two starts race, one creates and the other reads what it wrote.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_existing(path)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secrets.token_urlsafe(48) + "\n")
        file.flush()
        os.fsync(file.fileno())
    log.info("generated a JWT signing secret", extra={"path": str(path)})
    return _read_existing(path)


def _read_existing(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Anyone who reads it can mint tokens for any user.
        os.chmod(path, 0o600)
        log.warning("tightened the JWT secret file to owner-only", extra={"path": str(path)})
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise ConfigurationError(f"{path} is empty; delete it to have a new secret generated")
    return secret
