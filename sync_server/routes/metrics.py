"""``GET /metrics``: Prometheus text format, summed over every server process (``metrics.py``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import metrics
from ..api_spec import Operation, Reply
from ..services import services_of


async def metrics_endpoint(request: Request) -> Response:
    services = services_of(request)
    metrics.record_pool(services.store)
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]

operations = [
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics of every server process",
        "operations",
        {
            200: Reply(
                "Prometheus text format 0.0.4", media_type="text/plain", schema={"type": "string"}
            )
        },
        public=True,
    )
]
