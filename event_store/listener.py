"""The PostgreSQL side of change notices: one ``LISTEN`` connection per server process.

It runs as one task in the process's event loop, on a dedicated connection outside the pool
(a pooled connection would be handed to other work between notifications). If the database
goes away it reconnects with exponential backoff; each time it starts listening it delivers
``None`` first, since anything committed while it was not listening was never heard.
A connection that died without a word (a network cut) is found by a ``SELECT 1`` whenever no
notification arrived for ``probe_every`` seconds, and by TCP keepalives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg import sql

from . import changes

log = logging.getLogger("event_store.listener")

NAME = "sync-server listener"
"""The ``application_name`` of listening connections, followed by their channel."""


async def listen(
    url: str,
    deliver: changes.Deliver,
    *,
    options: dict[str, int],
    probe_every: float = 30.0,
    backoff: tuple[float, float] = (0.2, 10.0),
) -> None:
    """Deliver every change notice of the database at ``url`` until cancelled. ``options``:
    libpq's, as for the store's own connections (a connect timeout, TCP keepalives)."""
    first_delay, max_delay = backoff
    delay = first_delay
    while True:
        try:
            connection = await _connect(url, options)
        except psycopg.Error as error:
            log.warning("cannot listen for changes", extra={"error": str(error), "retry": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        try:
            async with connection:
                channel = await _start_listening(connection)
                delay = first_delay
                log.info("listening for changes", extra={"channel": channel})
                deliver(None)
                await _name(connection, channel)
                await _relay(connection, deliver, probe_every)
        except psycopg.Error as error:
            log.warning("change listener lost its connection", extra={"error": str(error)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
        except Exception:
            # A bug must not silence live updates for the life of the process: log, start over.
            log.exception("change listener failed")
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def _connect(url: str, options: dict[str, int]) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name=NAME, **options
    )


async def _start_listening(connection: psycopg.AsyncConnection[Any]) -> str:
    row = await (await connection.execute(f"SELECT {changes.CHANNEL_SQL}")).fetchone()
    assert row is not None
    channel: str = row[0]
    await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return channel


async def _name(connection: psycopg.AsyncConnection[Any], channel: str) -> None:
    """Name the connection after its channel, so that an operator (or a test) can tell whose
    listener it is; done once it hears and has delivered its first None."""
    await connection.execute(sql.SQL("SET application_name = {}").format(f"{NAME} {channel}"))


async def _relay(
    connection: psycopg.AsyncConnection[Any], deliver: changes.Deliver, probe_every: float
) -> None:
    while True:
        async for notify in connection.notifies(timeout=probe_every):
            notice = changes.decode(notify.payload)
            if notice is not None:
                deliver(notice)
        # Quiet for a while: make sure the connection is still there (raises if not).
        # Notifications that arrive meanwhile wait in psycopg's backlog for the next loop.
        await connection.execute("SELECT 1")
