"""What people type: emails and passwords are bounded and checked before any work."""

from __future__ import annotations

import pytest

from sync_server.auth.validation import (
    EMAIL_MAX,
    PASSWORD_MAX,
    email_problem,
    normalize_email,
    password_problem,
)


def test_emails_are_trimmed_and_lower_cased() -> None:
    assert normalize_email("  Ann.Lee+tours@Example.COM \n") == "ann.lee+tours@example.com"


@pytest.mark.parametrize(
    "email",
    ["a@example.com", "ann.lee+tours@sub.example.co.uk", "o'neil@example.ie", "ñandú@correo.es"],
)
def test_plausible_emails_pass(email: str) -> None:
    assert email_problem(email) is None


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@localhost",
        "a b@example.com",
        "a@b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@example..com",
        'a"b@example.com',
        "a\x00@example.com",
        "a\t@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ("b" * 60 + ".") * 5 + "com",  # over 254 characters in all
    ],
)
def test_implausible_emails_are_refused(email: str) -> None:
    assert email_problem(email) is not None


def test_an_email_is_at_most_254_characters() -> None:
    longest = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 61}"
    assert len(longest) == EMAIL_MAX
    assert email_problem(longest) is None
    assert email_problem(longest.replace("@", "@e")) is not None


@pytest.mark.parametrize(
    ("password", "ok"),
    [("1234567", False), ("12345678", True), ("p" * PASSWORD_MAX, True), ("p" * 1025, False)],
)
def test_passwords_are_8_to_1024_characters(password: str, ok: bool) -> None:
    assert (password_problem(password) is None) is ok
