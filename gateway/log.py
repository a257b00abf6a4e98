"""Every logger the gateway writes to, the JSON and text formats, and access lines.

Nothing here, nor anywhere else, may log a key value, an admin token or the
upstream key: loggers get key ids and names only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import orjson
from aiohttp import web

ACCESS_LOG = "gateway.access"
AUTH_LOG = "gateway.auth"
UPSTREAM_LOG = "gateway.upstream"
STORE_LOG = "gateway.store"
USAGE_LOG = "gateway.usage"
ADMIN_LOG = "gateway.admin"
ERROR_LOG = "gateway.error"
BACKEND_LOG = "gateway.backend"
SERVER_LOG = "gateway.server"
LIMITS_LOG = "gateway.limits"

# Set by Formatter.format itself, so not extra fields either.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and any extra fields."""

    def __init__(self) -> None:
        super().__init__()
        # Access lines come thousands a second: the date and time to the second are
        # formatted once a second, not once a line.
        self._second = -1
        self._stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RESERVED and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except orjson.JSONEncodeError:
            # A path or header that was not UTF-8 arrives with surrogate escapes, which
            # orjson refuses; the standard encoder writes them as \u escapes instead.
            return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A line for people: time, level, logger, message, then extra fields as k=v."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{name}={value}"
            for name, value in vars(record).items()
            if name not in _RESERVED and not name.startswith("_")
        ]
        return f"{line} {' '.join(extras)}" if extras else line


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines of one event loop turn in one write.

    Under load a turn of the loop answers many requests; one write for all their
    access lines instead of one each saves a system call a request. Lines are
    written at the end of the turn that logged them, so nothing waits longer than
    that; lines logged outside the event loop's thread are written at once.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._lines.append(line)
            self.flush()
            return
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            if self._lines:
                text = "\n".join(self._lines) + "\n"
                self._lines.clear()
                self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # stderr closed or gone: there is nowhere left to report it.
            pass
        finally:
            self.release()


def configure(level: str = "info", fmt: str = "json") -> None:
    """Send the gateway's loggers to stderr in the chosen format."""
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("gateway")
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # Nothing the formats write needs the caller's file and line, thread or process
    # names; the logging HOWTO's own advice for hot paths is to stop collecting them.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # aiohttp's own access log would repeat ours without the key fields.
    logging.getLogger("aiohttp.access").disabled = True


def set_level(level: str) -> None:
    """Change the gateway's log level in place."""
    logging.getLogger("gateway").setLevel(level.upper())


# What the request path leaves on the request for the access line.
ACCESS_KEY = web.RequestKey("access_key", object)
ACCESS_OPERATION = web.RequestKey("access_operation", str)
ACCESS_CLIENT = web.RequestKey("access_client", str)


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """One access line a request, written after the answer is ready."""
    started = time.perf_counter()
    response = await handler(request)
    logger = logging.getLogger(ACCESS_LOG)
    if logger.isEnabledFor(logging.INFO):
        key = request.get(ACCESS_KEY)
        logger.info(
            "%s %s %d",
            request.method,
            request.path,
            response.status,
            extra={
                "request_id": response.headers.get("X-Request-Id", ""),
                "key_id": getattr(key, "id", None),
                "key_name": getattr(key, "name", None),
                "operation": request.get(ACCESS_OPERATION),
                "status": response.status,
                "client": request.get(ACCESS_CLIENT, request.remote),
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
    return response
