"""The reference External Share Web API: the five share operations on a ShareStore.

It answers what the vendor's API page describes, and where the page is silent
it makes a choice a client would expect and says so in the handler's docstring.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway.backend.store import ShareStore
from gateway.errors import ApiError, Handler, bad_request, error_middleware
from gateway.log import BACKEND_LOG
from gateway.shares import parse_list_query, validate_create, validate_share_uuid, validate_update

logger = logging.getLogger(BACKEND_LOG)

STORE = web.AppKey("store", ShareStore)
API_KEY = web.AppKey("api_key", bytes)

_PUBLIC_PATHS = frozenset({"/healthz"})


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "UNAUTHORIZED",
        "a valid 'Authorization: Bearer <key>' header is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


@web.middleware
async def bearer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every request but the health check without the backend's bearer key."""
    if request.path in _PUBLIC_PATHS:
        return await handler(request)

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    offered = token.strip().encode("utf-8", "surrogateescape")
    # SECURITY: compare_digest takes as long for a near miss as for a far one.
    if scheme.lower() != "bearer" or not hmac.compare_digest(offered, request.app[API_KEY]):
        logger.info("refused %s %s: missing or wrong bearer key", request.method, request.path)
        raise _unauthorized()
    return await handler(request)


async def _json_body(request: web.Request) -> object:
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/json")
    try:
        return await request.json()
    except ValueError as exc:  # also UnicodeDecodeError, for bytes that are not text
        raise bad_request("body", "is not valid JSON") from exc


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "no share has this uuid")


async def get_share(request: web.Request) -> web.Response:
    """GET: one share by uuid."""
    share_uuid = validate_share_uuid(request.match_info["uuid"])
    share = await request.app[STORE].get(share_uuid)
    if share is None:
        raise _not_found()
    return web.json_response(share)


async def list_shares(request: web.Request) -> web.Response:
    """LIST: a plain JSON array of shares, since the vendor does not publish a wrapper."""
    query = parse_list_query(request.query)
    return web.json_response(await request.app[STORE].list(query))


async def create_share(request: web.Request) -> web.Response:
    """CREATE: 201 Created with the new share and its Location, as the vendor names none."""
    fields = validate_create(await _json_body(request))
    share = await request.app[STORE].create(fields)
    location = f"/webapi/share/{share['uuid']}"
    return web.json_response(share, status=201, headers={"Location": location})


async def update_share(request: web.Request) -> web.Response:
    """UPDATE by PUT or PATCH alike: the fields given change and the others stay.

    Both methods mean the same here because the gateway's config picks which one it
    sends upstream, and the vendor documents neither.
    """
    share_uuid = validate_share_uuid(request.match_info["uuid"])
    fields = validate_update(await _json_body(request))
    share = await request.app[STORE].update(share_uuid, fields)
    if share is None:
        raise _not_found()
    return web.json_response(share)


async def delete_share(request: web.Request) -> web.Response:
    """DELETE: 204 with no body."""
    share_uuid = validate_share_uuid(request.match_info["uuid"])
    if not await request.app[STORE].delete(share_uuid):
        raise _not_found()
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    """200 while the process runs; needs no key."""
    return web.json_response({"status": "ok"})


async def _store_lifetime(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    yield
    await app[STORE].close()


def build_backend_app(db_path: Path, api_key: str) -> web.Application:
    """The backend application on its own SQLite file, guarded by api_key."""
    if not api_key:
        raise ValueError("the reference backend needs a non-empty api key")

    app = web.Application(middlewares=[error_middleware, bearer_middleware])
    app[STORE] = ShareStore(db_path)
    app[API_KEY] = api_key.encode("utf-8", "surrogateescape")
    app.cleanup_ctx.append(_store_lifetime)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/webapi/share", list_shares)
    app.router.add_post("/webapi/share", create_share)
    app.router.add_get("/webapi/share/{uuid}", get_share)
    app.router.add_put("/webapi/share/{uuid}", update_share)
    app.router.add_patch("/webapi/share/{uuid}", update_share)
    app.router.add_delete("/webapi/share/{uuid}", delete_share)
    return app


async def start_backend(
    db_path: Path, api_key: str, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve the backend on host:port (0 picks a free port); the runner and its base URL."""
    runner = web.AppRunner(build_backend_app(db_path, api_key))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise

    # runner.addresses reads the bound sockets, which know the port the OS chose.
    bound_port = runner.addresses[0][1]
    netloc = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"
    return runner, f"http://{netloc}"


async def run_backend(db_path: Path, api_key: str, host: str, port: int) -> None:
    """Serve the backend until SIGTERM or SIGINT (or cancellation), then close it."""
    runner, url = await start_backend(db_path, api_key, host, port)
    logger.info("reference share backend serving on %s, shares in %s", url, db_path)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        logger.info("reference share backend stopped")
