"""Reading request bodies: content type, size and shape, each refused with its own problem."""

from __future__ import annotations

import functools
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .problems import FieldProblem, Problem, validation_errors

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


@functools.cache
def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(type_)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it grows past ``max_bytes`` (never buffered)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > max_bytes
        except ValueError:
            raise Problem(400, "malformed_request", "Content-Length is not a number") from None
        if too_big:
            raise Problem(413, "body_too_large", f"the body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, "body_too_large", f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, type_: type[T], max_bytes: int) -> T:
    """Decode a JSON body into ``type_``: 415 for another media type, 400 for malformed JSON,
    422 for JSON of the wrong shape."""
    body = await read_json_body(request, max_bytes)
    try:
        return _decoder(type_).decode(body)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass  # one pass for the good bodies; a bad one is read again to say what is wrong
    return convert(parse_json(body), type_)


async def read_json_body(request: Request, max_bytes: int) -> bytes:
    """The body of a JSON request, unread: 415 for another media type, 413 past ``max_bytes``."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise Problem(415, "unsupported_media_type", "send the body as application/json")
    return await read_body(request, max_bytes)


def parse_json(body: bytes) -> object:
    """``body`` as plain JSON values, or a 400 that says why it is not JSON."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise Problem(400, "malformed_json", f"the body is not valid JSON: {error}") from None
    except UnicodeDecodeError:
        raise Problem(400, "malformed_json", "the body is not valid UTF-8") from None
    except RecursionError:
        # msgspec's own depth guard (about a thousand levels), not a crash of the process.
        raise Problem(400, "malformed_json", "the body is nested too deeply") from None


def convert(raw: object, type_: type[T]) -> T:
    """Plain JSON values as ``type_``, or a 422 with the path of what is wrong."""
    try:
        return msgspec.convert(raw, type_, strict=True)
    except msgspec.ValidationError as error:
        raise wrong_shape(error) from None


def wrong_shape(error: msgspec.ValidationError) -> Problem:
    return Problem(
        422, "validation_failed", "the body has the wrong shape", errors=validation_errors(error)
    )


def json_response(
    content: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        _encoder.encode(content), status_code=status, media_type="application/json", headers=headers
    )


def field_problem(path: str, message: str) -> FieldProblem:
    return FieldProblem(path, message)
