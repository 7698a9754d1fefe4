"""HTTP with retries: one request in, the server's final answer (or a typed error) out.

Knows nothing of endpoints or tokens (``api.py`` does). What it decides is whether a failure is
worth another try:

* network errors, 5xx and 429 are retried with backoff (``retry.py``), honouring
  ``Retry-After``; any other 4xx is returned at once, since the same request will get the same
  answer;
* a request that is not idempotent (a login, a token refresh) is resent only when it certainly
  did nothing: the connection was never made, or the server refused it up front (429, 503).
  Pushes are idempotent (op ids), pulls are reads.

Every request is one ``httpx.Client`` call, so another transport (a fault injector in tests, a
proxy) plugs in as an ``httpx.BaseTransport``. Event streams go through the same client, but
are sent once and read as they come (``open_stream``, ``chunks``): whoever reads them decides
when to reconnect, and may ``abort`` a read from another thread.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import msgspec

from .errors import ApiError, NetworkError, RateLimited, ServerError
from .retry import RETRYABLE_STATUSES, SAFE_WITHOUT_IDEMPOTENCY, RetryPolicy, parse_retry_after

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures that happen before a single byte of the request left."""

_STREAM_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}

_encode = msgspec.json.Encoder().encode


class Transport:
    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "sync-client-sdk/1",
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """The server's answer once it is final: success, or a 4xx other than 429 (for the
        caller to read). Raises ``NetworkError``, ``ServerError`` or ``RateLimited`` when the
        retries run out."""
        content = None if body is None else _encode(body)
        all_headers = dict(headers or {})
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        attempts = max(1, self.retry.attempts)
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(
                    method, path, content=content, params=params, headers=all_headers
                )
            except httpx.TransportError as error:
                if attempt == attempts or not (idempotent or isinstance(error, _NOT_SENT)):
                    raise NetworkError(_failure(method, path, error)) from error
                self._sleep(self.retry.delay(attempt))
                continue
            status = response.status_code
            if status not in RETRYABLE_STATUSES:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            waiting_too_long = retry_after is not None and retry_after > self.retry.max_retry_after
            resendable = idempotent or status in SAFE_WITHOUT_IDEMPOTENCY
            if attempt == attempts or waiting_too_long or not resendable:
                raise _final_error(response, retry_after)
            self._sleep(self.retry.delay(attempt, retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def open_stream(
        self,
        path: str,
        *,
        timeout: httpx.Timeout,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``GET path`` as an event stream: the answer as soon as its headers came, whatever
        its status, with the body left to read (``chunks``); the caller closes it. Sent once,
        never retried. Raises ``NetworkError`` if no answer came."""
        all_headers = {
            **(headers or {}),
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        request = self._http.build_request(
            "GET", path, params=params, headers=all_headers, timeout=timeout
        )
        try:
            return self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise NetworkError(_failure("GET", path, error)) from error

    @staticmethod
    def chunks(response: httpx.Response) -> Iterator[bytes]:
        """The body of a streamed answer as it comes. Raises ``NetworkError`` when the
        connection breaks, times out (the read timeout is the longest silence allowed), or is
        aborted."""
        try:
            yield from response.iter_bytes()
        except (httpx.TransportError, httpx.StreamError) as error:
            raise NetworkError(_failure("GET", response.request.url.path, error)) from error

    @staticmethod
    def abort(response: httpx.Response) -> None:
        """Make the thread reading ``response`` give up now; safe from any thread.

        The socket is shut down rather than closed: closing it does not wake a read that is
        already waiting on it, shutting it down does (the read sees the end of the stream).
        Only the reading thread closes the response. A response without a socket (a transport
        in memory) is closed here instead.
        """
        network = response.extensions.get("network_stream")
        sock = None if network is None else network.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                # The plain socket's shutdown even for TLS: SSLSocket's own would drop its
                # TLS state under the feet of the reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            response.close()


def _failure(method: str, path: str, error: Exception) -> str:
    return f"{method} {path}: {type(error).__name__}: {error}"


def problem_of(response: httpx.Response, kind: type[ApiError] = ApiError) -> ApiError:
    """The problem+json of an error answer as a typed error (tolerating a body that is not)."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    detail = body.get("detail")
    errors = body.get("errors")
    request_id = body.get("request_id")
    return kind(
        response.status_code,
        code if isinstance(code, str) else f"http_{response.status_code}",
        detail if isinstance(detail, str) else None,
        errors if isinstance(errors, list) else [],
        request_id if isinstance(request_id, str) else response.headers.get("X-Request-ID"),
    )


def _final_error(response: httpx.Response, retry_after: float | None) -> ApiError:
    if response.status_code == 429:
        limited = problem_of(response)
        return RateLimited(
            retry_after,
            limited.status,
            limited.code,
            limited.detail,
            limited.errors,
            limited.request_id,
        )
    return problem_of(response, ServerError)
