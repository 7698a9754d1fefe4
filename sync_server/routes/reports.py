"""``GET /v1/reports/sales?from=&to=&product_id=``: daily sales per product, read from the
``sales_daily`` model that the catch-up runner keeps up with the log (it may trail the latest
pushes by a moment)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from projections import sales
from schemas.reports import SalesDay, SalesReport
from schemas.values import parse_uuid

from ..api_spec import Body, Operation, Param, Reply
from ..auth import principal_of
from ..query_params import bad_parameter, iso_date, refuse_unknown
from ..request_body import json_response
from ..services import services_of

MAX_DAYS = 366


def _date(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return iso_date(raw)
    except ValueError as error:
        raise bad_parameter(name, str(error)) from None


async def sales_report(request: Request) -> Response:
    refuse_unknown(request, ("from", "to", "product_id"))
    today = datetime.now(UTC).date()
    end = _date(request, "to", today)
    # 30 days up to ``to``, but never before the first day a date can name.
    start = _date(request, "from", date.fromordinal(max(1, end.toordinal() - 29)))
    if start > end:
        raise bad_parameter("from", "must not be after to")
    if (end - start).days >= MAX_DAYS:
        raise bad_parameter("from", f"a report covers at most {MAX_DAYS} days")
    raw_product = request.query_params.get("product_id") or None
    try:
        product_id = None if raw_product is None else parse_uuid(raw_product)
    except ValueError:
        raise bad_parameter("product_id", "must be a UUID") from None
    owner = principal_of(request).user.id
    services = services_of(request)

    def read() -> list[sales.DayRow]:
        with services.store.snapshot() as sql:
            return sales.report(sql, owner, start.isoformat(), end.isoformat(), product_id)

    rows = await run_in_threadpool(read)
    days = [SalesDay(r.day, r.product_id, r.sku, r.units, r.revenue, r.sales) for r in rows]
    return json_response(SalesReport(start.isoformat(), end.isoformat(), days))


routes = [Route("/v1/reports/sales", sales_report, methods=["GET"])]


operations = [
    Operation(
        "GET",
        "/v1/reports/sales",
        "Daily sales per product",
        "reports",
        {200: Reply("One line per product and UTC day with sales", Body(SalesReport))},
        params=(
            Param("from", "query", {"type": "string", "format": "date"}, "first day (to - 29)"),
            Param("to", "query", {"type": "string", "format": "date"}, "last day (today, UTC)"),
            Param("product_id", "query", {"type": "string", "format": "uuid"}, "one product"),
        ),
        problems=(400,),
        description=f"At most {MAX_DAYS} days. Read from a model the catch-up runner keeps up "
        "with the log: it may trail the latest pushes by a moment.",
    ),
]
