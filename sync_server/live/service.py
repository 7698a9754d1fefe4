"""The live-update service of one server process: the hub, fed by the store's change notices,
and ended cleanly when the process stops."""

from __future__ import annotations

from contextlib import AsyncExitStack

from starlette.requests import Request

from ..services import Services, services_of
from ..settings import Settings
from .hub import SHUTDOWN, Hub
from .signals import on_stop_signal
from .stream import Timing


class Live:
    def __init__(self, settings: Settings) -> None:
        self.hub = Hub(settings.live_max_streams_per_user)
        self.timing = Timing(settings.live_heartbeat, settings.live_idle_timeout)
        self.max_wait = settings.live_max_wait
        self._running = AsyncExitStack()

    async def start(self, services: Services) -> None:
        """Begin hearing the store's notices (an app startup hook)."""
        services.extras["live"] = self
        await self._running.enter_async_context(services.store.watch(self.hub.deliver))
        self._running.enter_context(on_stop_signal(self.shut_down))

    def shut_down(self) -> None:
        """End every live connection now; refuse new ones."""
        self.hub.close_all(SHUTDOWN)

    async def stop(self, services: Services) -> None:
        """Stop hearing notices (an app shutdown hook)."""
        self.shut_down()
        await self._running.aclose()


def live_of(request: Request) -> Live:
    live: Live = services_of(request).extras["live"]
    return live
