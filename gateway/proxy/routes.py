"""The five share operations: handler -> checks -> operation -> upstream -> answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from aiohttp import web

from gateway import shares
from gateway.errors import ApiError, request_id
from gateway.keys.model import Key
from gateway.keys.service import utcnow
from gateway.log import ACCESS_CLIENT, ACCESS_KEY, ACCESS_OPERATION
from gateway.proxy.address import client_address, parse_ip
from gateway.proxy.checks import (
    authenticate,
    check_address,
    check_list_scope,
    check_permission,
    check_rate_limit,
    check_window,
)
from gateway.proxy.upstream import UpstreamAnswer, UpstreamError
from gateway.state import STATE, GatewayState
from gateway.strict_json import parse_body

SHARES = "/webapi/share"


@dataclass(frozen=True)
class Operation:
    """A share operation: its name, the permission it needs, and whether it is read-only."""

    name: str
    permission: str
    read_only: bool
    has_body: bool


GET = Operation("GET", "get", read_only=True, has_body=False)
LIST = Operation("LIST", "list", read_only=True, has_body=False)
CREATE = Operation("CREATE", "create", read_only=False, has_body=True)
UPDATE = Operation("UPDATE", "update", read_only=False, has_body=True)
DELETE = Operation("DELETE", "delete", read_only=False, has_body=False)


async def _read_json(request: web.Request, max_bytes: int) -> tuple[bytes, object]:
    """The raw body and its JSON; 415, 413 and 400 in that order.

    The media type and size are checked before the body is parsed: a body too
    large to read cannot be validated, and one that is not JSON need not be.
    """
    if request.content_type != "application/json":
        raise ApiError(
            415, "UNSUPPORTED_MEDIA_TYPE", "the body must be JSON (Content-Type: application/json)"
        )
    too_large = ApiError(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {max_bytes} bytes")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    return raw, parse_body(raw)


def _forwarded_for(request: web.Request, state: GatewayState) -> str:
    """The chain sent upstream: a trusted proxy's chain is kept, the TCP peer appended."""
    peer = request.remote or ""
    address = parse_ip(peer)
    chain = ""
    if address is not None and address in state.settings.server.trusted_addresses:
        chain = ", ".join(request.headers.getall("X-Forwarded-For", []))
    return f"{chain}, {peer}" if chain else peer


async def _handle(request: web.Request, operation: Operation) -> web.Response:
    state = request.app[STATE]
    request[ACCESS_OPERATION] = operation.name
    now = utcnow()
    key: Key | None = None
    try:
        key = await authenticate(request.headers.get("Authorization"), state.cache, now)
        request[ACCESS_KEY] = key
        answer = await _checked(request, state, operation, key, now)
    except UpstreamError:
        raise
    except ApiError as error:
        state.metrics.denied(error.code, key)
        if key is not None:
            state.usage.denied(key.id, now)
        raise
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


async def _checked(
    request: web.Request, state: GatewayState, operation: Operation, key: Key, now: datetime
) -> UpstreamAnswer:
    server = state.settings.server
    check_window(key, now)
    address = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", []), server.trusted_addresses
    )
    request[ACCESS_CLIENT] = str(address)
    check_address(key, address)
    check_permission(key, operation.permission)

    path, query, body = SHARES, "", None
    method = request.method
    if operation is LIST:
        check_list_scope(key, request.query)
        shares.parse_list_query(request.query)
        # The raw, still-encoded string: the decoded one turns %23 into a '#' that cuts the
        # URL short and %25 into a '%' that the upstream decodes a second time.
        query = request.rel_url.raw_query_string
    share_uuid = ""
    if "uuid" in request.match_info:
        share_uuid = quote(shares.validate_share_uuid(request.match_info["uuid"]), safe="")
        path = f"{SHARES}/{share_uuid}"
    if operation.has_body:
        body, document = await _read_json(request, server.max_body_bytes)
        if operation is CREATE:
            shares.validate_create(document)
        else:
            shares.validate_update(document)
            update = state.settings.upstream.update
            method, path = update.method, update.path.replace("{uuid}", share_uuid)

    await check_rate_limit(key, state.limiter)
    state.usage.allowed(key.id, now)
    headers = {
        "X-Request-Id": request_id(request),
        "X-Forwarded-For": _forwarded_for(request, state),
    }
    started = time.perf_counter()
    try:
        return await state.upstream.send(
            method, path, query=query, body=body, headers=headers, retry=operation.read_only
        )
    except UpstreamError as error:
        state.metrics.upstream_failed(operation.name, error.code)
        raise
    finally:
        # Answered or not: a timeout shows in the latency as the time it took to give up.
        state.metrics.upstream_took(operation.name, time.perf_counter() - started)


async def get_share(request: web.Request) -> web.Response:
    return await _handle(request, GET)


async def list_shares(request: web.Request) -> web.Response:
    return await _handle(request, LIST)


async def create_share(request: web.Request) -> web.Response:
    return await _handle(request, CREATE)


async def update_share(request: web.Request) -> web.Response:
    return await _handle(request, UPDATE)


async def delete_share(request: web.Request) -> web.Response:
    return await _handle(request, DELETE)


def add_share_routes(app: web.Application) -> None:
    """The public listener's share routes."""
    app.router.add_get(SHARES, list_shares, allow_head=False)
    app.router.add_post(SHARES, create_share)
    app.router.add_get(SHARES + "/{uuid}", get_share, allow_head=False)
    app.router.add_put(SHARES + "/{uuid}", update_share)
    app.router.add_patch(SHARES + "/{uuid}", update_share)
    app.router.add_delete(SHARES + "/{uuid}", delete_share)
