"""Where the JWT secret comes from, and when the server must refuse to start."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sync_server.auth.signing_key import SECRET_FILE, ConfigurationError, load_signing_key
from sync_server.settings import Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    # Explicit values, whatever the environment of the test run says.
    values = {"database_url": None, **values}
    return Settings(data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def test_a_configured_secret_is_used(tmp_path: Path) -> None:
    secret = "configured-" + "c" * 40
    assert load_signing_key(settings(tmp_path, jwt_secret=secret)) == secret
    assert not (tmp_path / "data" / SECRET_FILE).exists()


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="too short"):
        load_signing_key(settings(tmp_path, jwt_secret="short"))


def test_postgres_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    configured = settings(tmp_path, database_url="postgresql://db/sync", jwt_secret=None)
    with pytest.raises(ConfigurationError, match="SYNC_JWT_SECRET is required"):
        load_signing_key(configured)


def test_embedded_mode_generates_one_secret_once_owner_only(tmp_path: Path) -> None:
    first = load_signing_key(settings(tmp_path, jwt_secret=None))
    path = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 48
    assert load_signing_key(settings(tmp_path, jwt_secret=None)) == first


def test_a_secret_file_others_can_read_is_tightened(tmp_path: Path) -> None:
    first = load_signing_key(settings(tmp_path, jwt_secret=None))
    path = tmp_path / "data" / SECRET_FILE
    path.chmod(0o644)
    assert load_signing_key(settings(tmp_path, jwt_secret=None)) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
