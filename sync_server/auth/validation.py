"""Checks on what people type: emails, passwords, names, device ids.

Every bound is checked before any expensive work: argon2 over a megabyte is a cheap DoS.
"""

from __future__ import annotations

import re

from ..problems import FieldProblem

PASSWORD_MIN = 8
PASSWORD_MAX = 1024
EMAIL_MAX = 254  # RFC 5321's limit on a forward path
EMAIL_LOCAL_MAX = 64
NAME_MAX = 100
DEVICE_ID_MAX = 128

# Permissive on purpose (internationalized addresses pass), strict on what is never valid in
# an address people use: whitespace, control characters, quoting, brackets, empty labels.
_LOCAL = re.compile(r"^[^\s\x00-\x1f\x7f@\"(),:;<>\[\]\\]+$")
_LABEL = re.compile(r"^[^\s\x00-\x1f\x7f@\"(),:;<>\[\]\\.]{1,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize_email(raw: str) -> str:
    return raw.strip().lower()


def email_problem(email: str) -> str | None:
    """Why a normalized email is refused, or None."""
    if not email:
        return "is required"
    if len(email) > EMAIL_MAX:
        return f"must be at most {EMAIL_MAX} characters"
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return "is not an email address"
    if len(local) > EMAIL_LOCAL_MAX or not _LOCAL.match(local):
        return "is not an email address"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "is not an email address"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "is not an email address"
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        return "is not an email address"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < PASSWORD_MIN:
        return f"must be at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"must be at most {PASSWORD_MAX} characters"
    return None


def normalize_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    return raw.strip() or None


def name_problem(name: str | None) -> str | None:
    if name is None:
        return None
    if len(name) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if _CONTROL.search(name):
        return "must not contain control characters"
    return None


def device_id_problem(device_id: str | None) -> str | None:
    if device_id is None:
        return None
    if not device_id or len(device_id) > DEVICE_ID_MAX:
        return f"must be 1 to {DEVICE_ID_MAX} characters"
    if _CONTROL.search(device_id):
        return "must not contain control characters"
    return None


def collect(**checks: str | None) -> list[FieldProblem]:
    """The field problems among ``checks`` (field name -> problem or None), in order."""
    return [FieldProblem(path, message) for path, message in checks.items() if message]
