"""Fixtures of the end-to-end tests: an HTTP client on the module's server, a signed-up user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api import Device, sign_up


@pytest.fixture
def http(server: Any) -> Iterator[httpx.Client]:
    """A client of the module's shared server (tests isolate themselves by user)."""
    with server.client() as client:
        yield client


@pytest.fixture
def device(http: httpx.Client) -> Device:
    """A new user, signed in on one device."""
    return sign_up(http)
