"""``GET /openapi.json`` (the document ``openapi.py`` builds) and ``GET /docs`` (a page that
renders it, self-contained: no script or style from another host, so it works offline)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..api_spec import Operation, Reply
from ..request_body import json_response

_PAGE = resources.files("sync_server").joinpath("static/docs.html").read_bytes()


async def openapi_document(request: Request) -> Response:
    return json_response(request.app.state.openapi)


async def docs_page(request: Request) -> Response:
    return Response(
        _PAGE,
        media_type="text/html",
        # The page runs only its own inline script and talks only to this server.
        headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self'"
        },
    )


routes = [
    Route("/openapi.json", openapi_document, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
]

operations = [
    Operation(
        "GET",
        "/openapi.json",
        "This API as OpenAPI 3.1",
        "operations",
        {200: Reply("The document", schema={"type": "object"})},
        public=True,
    ),
    Operation(
        "GET",
        "/docs",
        "This API for people: a page that renders /openapi.json",
        "operations",
        {200: Reply("An HTML page", media_type="text/html", schema={"type": "string"})},
        public=True,
    ),
]
