"""Key change notifications: one dedicated LISTEN connection that comes back when it drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable

import asyncpg

from gateway.log import STORE_LOG

log = logging.getLogger(STORE_LOG)

# What asyncpg raises when the server, the network or the connection fails.
PG_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)

LISTEN_APPLICATION = "share-gateway-listen"
CONNECT_TIMEOUT_S = 5.0
# A network path that drops silently leaves the socket looking open: an idle
# connection is checked with a query this often.
CHECK_INTERVAL_S = 10.0
MAX_BACKOFF_S = 30.0


def listen_application_name() -> str:
    """The LISTEN connection's application_name; the pid tells ops which gateway holds it."""
    return f"{LISTEN_APPLICATION}:{os.getpid()}"


def _next_delay(delay: float) -> float:
    return min(max(delay * 2, 0.5), MAX_BACKOFF_S)


class KeyChangeListener:
    """LISTENs on a channel and calls every callback on each notification.

    After each (re)connection the callbacks are called once more, because
    notifications sent while no connection listened are lost for good.
    """

    def __init__(self, url: str, where: str, channel: str) -> None:
        self.url = url
        self.where = where
        self.channel = channel
        self.callbacks: list[Callable[[], None]] = []
        # How many connections have listened so far.
        self.connections = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="key-change-listen")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _changed(self) -> None:
        for callback in list(self.callbacks):
            try:
                callback()
            except Exception:
                log.exception("key change callback failed")

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if delay:
                # Jitter, so that a fleet that lost the server together does not return together.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                connection = await asyncpg.connect(
                    self.url,
                    timeout=CONNECT_TIMEOUT_S,
                    server_settings={"application_name": listen_application_name()},
                )
            except PG_ERRORS as exc:
                delay = _next_delay(delay)
                log.warning(
                    "key change notifications: cannot connect to %s, next try in %.1f s: %s",
                    self.where,
                    delay,
                    exc,
                )
                continue

            started = time.monotonic()
            try:
                await self._listen(connection)
                log.warning("key change notifications from %s lost; reconnecting", self.where)
            except PG_ERRORS as exc:
                log.warning(
                    "key change notifications from %s lost (%s); reconnecting", self.where, exc
                )
            finally:
                await _close(connection)
            # A connection that lived long came back at once; one that keeps dropping backs off.
            lived = time.monotonic() - started
            delay = 0.0 if lived > MAX_BACKOFF_S else _next_delay(delay)

    async def _listen(self, connection: asyncpg.Connection) -> None:
        """Listen until the connection is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(self.channel, self._notified)
        self.connections += 1
        if self.connections > 1:
            log.info("key change notifications from %s restored", self.where)
        else:
            log.info("listening for key changes on %s", self.where)
        # Changes made while nothing listened were missed.
        self._changed()

        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), CHECK_INTERVAL_S)
            except TimeoutError:
                await connection.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        self._changed()


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT_S)
    except PG_ERRORS:
        connection.terminate()
