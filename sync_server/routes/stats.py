"""``GET /v1/stats``: the user's dashboard figures, from the read tables (``projections/stats``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from projections.stats import Dashboard, dashboard

from ..api_spec import Body, Operation, Param, Reply
from ..auth import principal_of
from ..query_params import refuse_unknown
from ..request_body import json_response
from ..resources import FROM, TO, Filter
from ..services import services_of


async def stats(request: Request) -> Response:
    services = services_of(request)
    refuse_unknown(request, (FROM.name, TO.name))
    start, end = (_date(request, bound) for bound in (FROM, TO))
    owner = principal_of(request).user.id

    def read() -> Dashboard:
        with services.store.snapshot() as sql:
            return dashboard(sql, owner, start, end)

    return json_response(await run_in_threadpool(read))


def _date(request: Request, bound: Filter) -> str | None:
    raw = request.query_params.get(bound.name)
    return None if raw is None else str(bound.value(raw))


routes = [Route("/v1/stats", stats, methods=["GET"])]

operations = [
    Operation(
        "GET",
        "/v1/stats",
        "Dashboard figures: shows by month and status, workout volume by week, low stock",
        "stats",
        {200: Reply("The figures", Body(Dashboard))},
        params=tuple(
            Param(bound.name, "query", bound.schema, f"shows and workouts {bound.description}")
            for bound in (FROM, TO)
        ),
        problems=(400,),
    )
]
