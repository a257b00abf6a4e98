"""The admin API: key management over HTTP, on the admin listener."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.admin.auth import admin_name
from gateway.errors import ApiError, Handler
from gateway.keys.model import Key, iso
from gateway.state import STATE, GatewayState
from gateway.strict_json import parse_body

API = "/admin/api"
ACTOR = web.RequestKey("admin_actor", str)


@web.middleware
async def admin_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /admin/api request needs an admin token; the token's name is the actor."""
    if request.path.startswith(API + "/") or request.path == API:
        tokens = request.app[STATE].settings.admin.tokens
        request[ACTOR] = admin_name(request.headers.get("Authorization"), tokens)
    return await handler(request)


def _key_json(state: GatewayState, key: Key) -> dict[str, Any]:
    """The key with this process's unwritten usage added, so figures are exact here."""
    body = key.to_json()
    pending = state.usage.pending(key.id)
    if pending is not None:
        body["usageCount"] += pending.allowed
        body["deniedCount"] += pending.denied
        last: datetime | None = pending.last_used_at
        if last is not None and (key.last_used_at is None or last > key.last_used_at):
            body["lastUsedAt"] = iso(last)
    return body


async def _body(request: web.Request) -> object:
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/json")
    return parse_body(await request.read())


def _changed(request: web.Request) -> None:
    # This process's cache learns at once; other processes see the store's change counter.
    request.app[STATE].cache.invalidate()


async def list_keys(request: web.Request) -> web.Response:
    state = request.app[STATE]
    keys = await state.keys.list_keys()
    return web.json_response({"keys": [_key_json(state, key) for key in keys]})


async def create_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key, value = await state.keys.create(await _body(request), request[ACTOR])
    _changed(request)
    return web.json_response({**_key_json(state, key), "value": value}, status=201)


async def show_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = await state.keys.get(request.match_info["id"])
    return web.json_response(_key_json(state, key))


async def update_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _body(request)
    key = await state.keys.update(request.match_info["id"], body, request[ACTOR])
    _changed(request)
    return web.json_response(_key_json(state, key))


async def delete_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await state.keys.delete(request.match_info["id"], request[ACTOR])
    _changed(request)
    return web.Response(status=204)


async def reveal_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    value = await state.keys.reveal(request.match_info["id"], request[ACTOR])
    return web.json_response({"value": value}, headers={"Cache-Control": "no-store"})


async def download_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key, value = await state.keys.download(request.match_info["id"], request[ACTOR])
    filename = "".join(c if c.isalnum() or c in "-_" else "-" for c in key.name) or "key"
    return web.Response(
        text=value + "\n",
        content_type="text/plain",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.key"',
            "Cache-Control": "no-store",
        },
    )


async def rotate_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _body(request) if request.body_exists else None
    key, value = await state.keys.rotate(request.match_info["id"], body, request[ACTOR])
    _changed(request)
    return web.json_response(
        {**_key_json(state, key), "value": value}, headers={"Cache-Control": "no-store"}
    )


async def key_history(request: web.Request) -> web.Response:
    state = request.app[STATE]
    events = await state.keys.history(request.match_info["id"])
    return web.json_response({"events": [event.to_json() for event in events]})


async def key_usage(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key_id = request.match_info["id"]
    buckets = [bucket.to_json() for bucket in await state.keys.usage(key_id)]
    # Counts not yet flushed belong to the current hour.
    pending = state.usage.pending(key_id)
    if pending is not None and pending.hours and buckets:
        for hour, (allowed, denied) in pending.hours.items():
            for bucket in buckets:
                if bucket["start"] == iso(hour):
                    bucket["allowed"] += allowed
                    bucket["denied"] += denied
    return web.json_response({"buckets": buckets})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get(f"{API}/keys", list_keys, allow_head=False)
    app.router.add_post(f"{API}/keys", create_key)
    app.router.add_get(f"{API}/keys/{{id}}", show_key, allow_head=False)
    app.router.add_patch(f"{API}/keys/{{id}}", update_key)
    app.router.add_delete(f"{API}/keys/{{id}}", delete_key)
    app.router.add_post(f"{API}/keys/{{id}}/reveal", reveal_key)
    app.router.add_get(f"{API}/keys/{{id}}/download", download_key, allow_head=False)
    app.router.add_post(f"{API}/keys/{{id}}/rotate", rotate_key)
    app.router.add_get(f"{API}/keys/{{id}}/history", key_history, allow_head=False)
    app.router.add_get(f"{API}/keys/{{id}}/usage", key_usage, allow_head=False)
