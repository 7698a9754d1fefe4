"""Accounts and auth over HTTP, against real server processes on both backends (PROTOCOL.md,
"Auth"). Tests on the shared ``server`` isolate themselves by registering their own users."""

from __future__ import annotations

import base64
import json
import stat
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from api import PASSWORD, assert_problem, bearer, new_email

from event_store import EventStore

SECRET = "e2e-auth-secret-" + "k" * 48
ISSUER, AUDIENCE = "sync-server", "sync-clients"


# -- helpers -------------------------------------------------------------------------------------


def register(client: httpx.Client, email: str | None = None, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/auth/register", json={"email": email or new_email(), "password": PASSWORD, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def login(
    client: httpx.Client, email: str, password: str = PASSWORD, **body: Any
) -> httpx.Response:
    return client.post("/v1/auth/login", json={"email": email, "password": password, **body})


def refresh(client: httpx.Client, token: str, **headers: str) -> httpx.Response:
    return client.post("/v1/auth/refresh", json={"refresh_token": token}, headers=headers)


def database_rows(database: Any, query: str, params: list[Any] | None = None) -> list[Any]:
    store: EventStore = database.open()
    try:
        with store.snapshot() as sql:
            return sql.fetchall(query, params or [])
    finally:
        store.close()


def forge(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def wait_for_a_fresh_window(margin: float = 8.0) -> None:
    """Rate limits count per wall-clock minute: start a test far from a minute's end."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


# -- the whole flow ------------------------------------------------------------------------------


def test_register_me_refresh_sessions_logout(client: httpx.Client) -> None:
    email = new_email()
    signed = register(client, f"  {email.upper()} ", name="  Ann  ")
    assert signed["user"]["email"] == email  # trimmed, lower case
    assert signed["user"]["name"] == "Ann"
    assert signed["expires_in"] == 900
    uuid.UUID(signed["user"]["id"])
    claims = claims_of(signed["access_token"])
    assert claims["sub"] == signed["user"]["id"]
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(signed["access_token"])["alg"] == "HS256"

    me = client.get("/v1/auth/me", headers=bearer(signed["access_token"]))
    assert me.status_code == 200
    assert me.json() == {"user": signed["user"]}

    rotated = refresh(client, signed["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    tokens = rotated.json()
    assert tokens["refresh_token"] != signed["refresh_token"]
    assert claims_of(tokens["access_token"])["sid"] == claims["sid"]  # same session
    assert client.get("/v1/auth/me", headers=bearer(tokens["access_token"])).status_code == 200

    phone = login(client, email, device_id="phone-1")
    assert phone.status_code == 200, phone.text
    assert phone.json()["user"] == signed["user"]
    listed = client.get("/v1/auth/sessions", headers=bearer(tokens["access_token"]))
    assert listed.status_code == 200
    sessions = {s["id"]: s for s in listed.json()["sessions"]}
    assert set(sessions) == {claims["sid"], claims_of(phone.json()["access_token"])["sid"]}
    assert sessions[claims["sid"]]["current"] is True
    phone_session = sessions[claims_of(phone.json()["access_token"])["sid"]]
    assert phone_session["device_id"] == "phone-1" and phone_session["current"] is False

    out = client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    assert_problem(refresh(client, tokens["refresh_token"]), 401)
    gone = client.get("/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert_problem(gone, 401, "session_ended")
    # The phone's session is another device: untouched.
    still = client.get("/v1/auth/me", headers=bearer(phone.json()["access_token"]))
    assert still.status_code == 200


def test_an_email_is_taken_whatever_its_case(client: httpx.Client) -> None:
    email = new_email()
    register(client, email)
    again = client.post(
        "/v1/auth/register", json={"email": f" {email.upper()}", "password": "another password"}
    )
    assert_problem(again, 409, "email_taken")
    assert login(client, f" {email.title()} ").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_answer(client: httpx.Client) -> None:
    email = new_email()
    register(client, email)
    wrong = login(client, email, "not the password")
    unknown = login(client, new_email(), "not the password")
    implausible = login(client, "not an email", "x")
    for response in (wrong, unknown, implausible):
        body = assert_problem(response, 401, "invalid_credentials")
        body.pop("request_id")
        assert body == {
            "type": "https://sync-server.dev/problems/invalid_credentials",
            "title": "Unauthorized",
            "status": 401,
            "code": "invalid_credentials",
            "detail": "wrong email or password",
        }
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


# -- refresh tokens, logout, sessions -------------------------------------------------------------


def test_a_reused_refresh_token_revokes_its_whole_session(client: httpx.Client) -> None:
    signed = register(client)
    first = refresh(client, signed["refresh_token"]).json()
    second = refresh(client, first["refresh_token"]).json()

    # The first refresh token again: whoever holds it (or the current one) is not trusted.
    reused = refresh(client, signed["refresh_token"])
    assert_problem(reused, 401, "refresh_token_reused")
    assert_problem(refresh(client, second["refresh_token"]), 401)
    for access in (signed["access_token"], first["access_token"], second["access_token"]):
        assert_problem(client.get("/v1/auth/me", headers=bearer(access)), 401, "session_ended")


def test_refresh_and_logout_refuse_tokens_they_never_issued(client: httpx.Client) -> None:
    for token in ("", "x" * 43, "x" * 5000):
        assert_problem(refresh(client, token), 401, "invalid_refresh_token")
        out = client.post("/v1/auth/logout", json={"refresh_token": token})
        assert_problem(out, 401, "invalid_refresh_token")


def test_logout_is_immediate_and_repeatable(client: httpx.Client) -> None:
    signed = register(client)
    body = {"refresh_token": signed["refresh_token"]}
    assert client.post("/v1/auth/logout", json=body).status_code == 204
    assert client.post("/v1/auth/logout", json=body).status_code == 204  # a retried logout
    assert_problem(refresh(client, signed["refresh_token"]), 401)
    me = client.get("/v1/auth/me", headers=bearer(signed["access_token"]))
    assert_problem(me, 401, "session_ended")


def test_revoking_a_session_ends_it_at_once(client: httpx.Client) -> None:
    email = new_email()
    laptop = register(client, email)
    phone = login(client, email, device_id="phone").json()
    phone_sid = claims_of(phone["access_token"])["sid"]

    revoked = client.delete(
        f"/v1/auth/sessions/{phone_sid}", headers=bearer(laptop["access_token"])
    )
    assert revoked.status_code == 204
    assert_problem(client.get("/v1/auth/me", headers=bearer(phone["access_token"])), 401)
    assert_problem(refresh(client, phone["refresh_token"]), 401)
    listed = client.get("/v1/auth/sessions", headers=bearer(laptop["access_token"])).json()
    assert [s["id"] for s in listed["sessions"]] == [claims_of(laptop["access_token"])["sid"]]


def test_users_cannot_see_or_revoke_each_others_sessions(client: httpx.Client) -> None:
    alice, bob = register(client), register(client)
    alice_sid = claims_of(alice["access_token"])["sid"]

    bobs = client.get("/v1/auth/sessions", headers=bearer(bob["access_token"])).json()
    assert alice_sid not in [s["id"] for s in bobs["sessions"]]
    for target in (alice_sid, str(uuid.uuid4()), "not-a-uuid"):
        attempt = client.delete(f"/v1/auth/sessions/{target}", headers=bearer(bob["access_token"]))
        assert_problem(attempt, 404, "not_found")
    me = client.get("/v1/auth/me", headers=bearer(alice["access_token"]))
    assert me.status_code == 200 and me.json()["user"]["id"] == alice["user"]["id"]


# -- the middleware ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/auth/me", "/v1/auth/sessions", "/v1/sync/pull", "/v1/shows", "/v1/no/such/thing"]
)
def test_everything_under_v1_needs_a_token(client: httpx.Client, path: str) -> None:
    assert_problem(client.get(path), 401, "unauthenticated")
    assert_problem(client.get(path, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401)
    assert_problem(client.get(path, headers=bearer("not.a.jwt")), 401, "invalid_token")
    assert_problem(client.post(path, json={}), 401)


def test_operations_endpoints_stay_public(client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200


# -- bad input -----------------------------------------------------------------------------------


def _json(**fields: Any) -> dict[str, Any]:
    return {"json": fields}


def _raw(content: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": content_type} if content_type else {}}


_BAD_REGISTRATIONS: list[tuple[str, dict[str, Any], int]] = [
    ("missing everything", _json(), 422),
    ("missing password", _json(email="a@example.com"), 422),
    ("missing email", _json(password=PASSWORD), 422),
    ("email of 10,000 characters", _json(email="a" * 9988 + "@ex.com", password=PASSWORD), 422),
    ("email of 255 characters", _json(email=f"{'a' * 60}@{'b' * 190}.com", password=PASSWORD), 422),
    ("not an email", _json(email="not an email", password=PASSWORD), 422),
    ("email with a NUL", _json(email="a\u0000b@example.com", password=PASSWORD), 422),
    ("password of 7 characters", _json(email="s@example.com", password="1234567"), 422),
    ("password of 1,025 characters", _json(email="l@example.com", password="p" * 1025), 422),
    ("password of 1 MB", _json(email="m@example.com", password="p" * 1_000_000), 413),
    ("password of the wrong type", _json(email="t@example.com", password=12345678), 422),
    ("name of 101 characters", _json(email="n@ex.com", password=PASSWORD, name="n" * 101), 422),
    ("a list, not an object", {"json": ["a@example.com", PASSWORD]}, 422),
    ("null", _raw(b"null"), 422),
    ("not JSON", _raw(b"{email: nope"), 400),
    ("not UTF-8", _raw(b'{"email": "\xff"}'), 400),
    ("a form", {"data": {"email": "f@example.com", "password": PASSWORD}}, 415),
    ("no content type", _raw(b'{"email": "c@example.com", "password": "x"}', None), 415),
]  # fmt: skip


def test_bad_registrations_are_refused_and_create_nothing(
    server: Any, client: httpx.Client
) -> None:
    before = database_rows(server.database, "SELECT count(*) FROM users")[0][0]
    for label, request, status in _BAD_REGISTRATIONS:
        response = client.post("/v1/auth/register", **request)
        assert response.status_code == status, f"{label}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/problem+json", label
    after = database_rows(server.database, "SELECT count(*) FROM users")[0][0]
    assert after == before


def test_bad_logins_and_refreshes_are_4xx(client: httpx.Client) -> None:
    for path in ("/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout"):
        for request, status in [
            ({"json": {}}, 422),
            ({"json": {"email": 1, "password": [], "refresh_token": 2}}, 422),
            ({"content": b"[", "headers": {"content-type": "application/json"}}, 400),
            ({"content": b"email=x", "headers": {"content-type": "text/plain"}}, 415),
            ({"json": {"email": "a@b.co", "password": "p" * 1_000_000, "refresh_token": "r"}}, 413),
        ]:
            response = client.post(path, **request)
            assert_problem(response, status)
    huge = login(client, "x" * 10_000 + "@example.com")
    assert_problem(huge, 401, "invalid_credentials")
    long_password = login(client, new_email(), "p" * 2000)
    assert_problem(long_password, 401, "invalid_credentials")


# -- forged tokens (a server whose secret the test knows) ----------------------------------------


def test_forged_and_stale_access_tokens_are_refused(server_factory: Any) -> None:
    server = server_factory(SYNC_JWT_SECRET=SECRET)
    with server.client() as client:
        signed = register(client)
        good = claims_of(signed["access_token"])
        assert client.get("/v1/auth/me", headers=bearer(forge(good))).status_code == 200

        now = int(time.time())
        cases = {
            "expired": (forge({**good, "iat": now - 3600, "exp": now - 60}), "token_expired"),
            "wrong audience": (forge({**good, "aud": "someone-else"}), "invalid_token"),
            "wrong issuer": (forge({**good, "iss": "evil"}), "invalid_token"),
            "no session id": (
                forge({k: v for k, v in good.items() if k != "sid"}),
                "invalid_token",
            ),
            "no expiry": (forge({k: v for k, v in good.items() if k != "exp"}), "invalid_token"),
            "alg none": (unsigned(good), "invalid_token"),
            "HS512": (forge(good, algorithm="HS512"), "invalid_token"),
            "another secret": (forge(good, key="another-secret-" + "z" * 40), "invalid_token"),
            "unknown session": (forge({**good, "sid": str(uuid.uuid4())}), "session_ended"),
            "someone else": (forge({**good, "sub": str(uuid.uuid4())}), "session_ended"),
        }
        header, payload, signature = signed["access_token"].split(".")
        other = base64.urlsafe_b64encode(
            json.dumps({**good, "sub": str(uuid.uuid4())}).encode()
        ).rstrip(b"=")
        cases["tampered payload"] = (f"{header}.{other.decode()}.{signature}", "invalid_token")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        cases["tampered signature"] = (f"{header}.{payload}.{flipped}", "invalid_token")

        for label, (token, code) in cases.items():
            response = client.get("/v1/auth/me", headers=bearer(token))
            assert response.status_code == 401, f"{label}: {response.text}"
            assert_problem(response, 401, code)


def test_no_password_token_secret_or_hash_reaches_the_logs(server_factory: Any) -> None:
    server = server_factory(SYNC_JWT_SECRET=SECRET)
    password, other_password = "pw-for-the-log-scan-7x1", "other-password-9q2"
    secrets: list[str] = [SECRET, password, other_password]
    with server.client() as client:
        email = new_email()
        signed = register(client, email, password=password)
        secrets += [signed["access_token"], signed["refresh_token"]]
        assert login(client, email, other_password).status_code == 401
        assert login(client, new_email(), other_password).status_code == 401
        phone = login(client, email, password, device_id="phone").json()
        secrets += [phone["access_token"], phone["refresh_token"]]
        rotated = refresh(client, signed["refresh_token"]).json()
        secrets += [rotated["access_token"], rotated["refresh_token"]]
        assert refresh(client, signed["refresh_token"]).status_code == 401  # reuse
        assert client.get("/v1/auth/me", headers=bearer(phone["access_token"])).status_code == 200
        client.get("/v1/auth/sessions", headers=bearer(phone["access_token"]))
        expired = forge({**claims_of(phone["access_token"]), "exp": int(time.time()) - 60})
        secrets.append(expired)
        assert client.get("/v1/auth/me", headers=bearer(expired)).status_code == 401
        too_short = client.post(
            "/v1/auth/register", json={"email": new_email(), "password": "s3cr3t!"}
        )
        assert too_short.status_code == 422
        secrets.append("s3cr3t!")
        client.post("/v1/auth/logout", json={"refresh_token": phone["refresh_token"]})
        client.get("/health")

    rows = database_rows(server.database, "SELECT password_hash FROM users")
    hashes = [str(h) for (h,) in rows]
    digests = database_rows(server.database, "SELECT token_hash FROM refresh_tokens")
    for (digest,) in digests:
        raw = bytes(digest)
        hashes += [
            raw.hex(),
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode(),
        ]
    assert hashes
    # Token signatures alone too: a log that cut a token short would still leak its signature.
    signatures = [s.rsplit(".", 1)[1] for s in secrets if s.count(".") == 2]
    time.sleep(0.3)  # the access log line of the last request is written after its response
    logs = server.logs()
    assert '"msg":"logged out"' in logs  # the scan reads the whole flow
    for needle in [*secrets, *signatures, *hashes, *(h.split("$")[-1] for h in hashes if "$" in h)]:
        assert needle not in logs, f"a secret reached the logs: {needle[:12]}…"


# -- rate limits ---------------------------------------------------------------------------------


def test_rate_limits_per_address_and_per_account(server_factory: Any, backend: str) -> None:
    limits = {"SYNC_RATE_LIMIT_PER_MINUTE": "3", "SYNC_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "2"}
    server = server_factory(**limits)
    # uvicorn takes the client address from X-Forwarded-For when the peer is 127.0.0.1 (a
    # local proxy): how this test speaks from other addresses.
    elsewhere = {"X-Forwarded-For": "10.0.0.2"}
    wait_for_a_fresh_window()
    with server.client() as client:
        emails = [new_email() for _ in range(4)]
        signed = [register(client, e) for e in emails[:3]]
        limited = client.post("/v1/auth/register", json={"email": emails[3], "password": PASSWORD})
        assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert database_rows(server.database, "SELECT count(*) FROM users")[0][0] == 3

        # Login, counted apart from registration: every attempt, 3 per address; failures only,
        # 2 per account.
        def login_from(address: str, email: str, password: str = PASSWORD) -> httpx.Response:
            body = {"email": email, "password": password}
            return client.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": address})

        for n in range(3):  # more successes than the account's limit, from three addresses
            assert login_from(f"10.0.1.{n}", emails[0]).status_code == 200
        assert login_from("10.0.2.1", emails[0], "wrong password").status_code == 401
        assert login_from("10.0.2.2", emails[0], "wrong password").status_code == 401
        # Two failures lock the account for the rest of the minute, the right password too:
        # anyone can do this to anyone (README, "Configuration"), the price of bounding
        # guesses from many addresses.
        assert_problem(login_from("10.0.2.3", emails[0]), 429, "rate_limited")
        assert login(client, emails[1]).status_code == 200
        assert login(client, emails[1]).status_code == 200
        assert login(client, emails[2], "wrong password").status_code == 401
        assert_problem(login(client, emails[1]), 429, "rate_limited")  # the address's 4th
        other_address = login_from("10.0.0.2", emails[1])
        assert other_address.status_code == 200, other_address.text

        # Refresh: the account is the token's user.
        first = refresh(client, signed[2]["refresh_token"])
        assert first.status_code == 200
        second = refresh(client, first.json()["refresh_token"])
        assert second.status_code == 200
        assert_problem(refresh(client, second.json()["refresh_token"]), 429)  # the account's 3rd
        assert_problem(refresh(client, "not-a-token"), 429, "rate_limited")  # the address's 4th
        assert_problem(refresh(client, "not-a-token", **elsewhere), 401, "invalid_refresh_token")

        # Logout: per address, every attempt, whatever its token.
        def logout(token: str, **headers: str) -> httpx.Response:
            return client.post("/v1/auth/logout", json={"refresh_token": token}, headers=headers)

        assert logout(signed[0]["refresh_token"]).status_code == 204
        assert_problem(logout("not-a-token"), 401, "invalid_refresh_token")
        assert logout(signed[0]["refresh_token"]).status_code == 204  # done already is fine
        assert_problem(logout(signed[1]["refresh_token"]), 429, "rate_limited")  # the 4th
        assert logout(signed[1]["refresh_token"], **elsewhere).status_code == 204

    if backend == "postgres":
        # A second process on the same database counts against the same numbers.
        twin = server_factory(database=server.database, **limits)
        with twin.client() as client:
            again = client.post(
                "/v1/auth/register", json={"email": new_email(), "password": PASSWORD}
            )
            assert_problem(again, 429, "rate_limited")


# -- the signing secret --------------------------------------------------------------------------


def test_postgres_mode_refuses_to_start_without_a_secret(server_factory: Any, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the embedded mode makes its own secret")
    with pytest.raises(RuntimeError, match="SYNC_JWT_SECRET is required"):
        server_factory(SYNC_JWT_SECRET="")


def test_restart_keeps_tokens_valid_and_rehashes_on_new_parameters(
    server_factory: Any, backend: str
) -> None:
    # Embedded: no secret given, so the server makes one and keeps it in its data directory.
    secret = {"SYNC_JWT_SECRET": ""} if backend == "sqlite" else {"SYNC_JWT_SECRET": SECRET}
    first = server_factory(**secret)
    with first.client() as client:
        signed = register(client)
    old_hash = database_rows(first.database, "SELECT password_hash FROM users")[0][0]
    assert str(old_hash).startswith("$argon2id$v=19$m=64,t=1,p=1$")
    if backend == "sqlite":
        secret_file = first.database.data_dir / "jwt_secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    first.stop()

    second = server_factory(database=first.database, SYNC_ARGON2_MEMORY_KIB="128", **secret)
    with second.client() as client:
        me = client.get("/v1/auth/me", headers=bearer(signed["access_token"]))
        assert me.status_code == 200, me.text
        assert login(client, signed["user"]["email"]).status_code == 200
    new_hash = database_rows(second.database, "SELECT password_hash FROM users")[0][0]
    assert str(new_hash).startswith("$argon2id$v=19$m=128,t=1,p=1$")
