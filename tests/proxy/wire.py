"""A gateway under test on free ports, and the ways tests talk to it over the wire."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.app import Gateway
from gateway.state import GatewayState

SHARES = "/webapi/share"
ALL = dict.fromkeys(("get", "list", "create", "update", "delete"), True)
"""Every permission, as the admin API takes them."""


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@dataclass(frozen=True)
class NewKey:
    """A key just created through the admin API: its id and its value in full."""

    id: str
    value: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.value)


@dataclass(frozen=True)
class Clients:
    """A client for each listener of a running gateway, in this process or another."""

    public: aiohttp.ClientSession
    admin: aiohttp.ClientSession

    async def create_key(self, **fields: Any) -> NewKey:
        """A key made through the admin API; `name` defaults to "test"."""
        async with self.admin.post("/admin/api/keys", json={"name": "test", **fields}) as r:
            body = await r.json()
            assert r.status == 201, body
            return NewKey(body["id"], body["value"])

    async def key(self, key_id: str) -> dict[str, Any]:
        """The key as GET /admin/api/keys/{id} shows it."""
        async with self.admin.get(f"/admin/api/keys/{key_id}") as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 200, body
            return body

    async def patch_key(self, key_id: str, **fields: Any) -> None:
        async with self.admin.patch(f"/admin/api/keys/{key_id}", json=fields) as r:
            assert r.status == 200, await r.text()

    async def delete_key(self, key_id: str) -> None:
        async with self.admin.delete(f"/admin/api/keys/{key_id}") as r:
            assert r.status == 204, await r.text()


@dataclass(frozen=True)
class Proxy(Clients):
    """A gateway running in this process, with a client for each of its listeners."""

    gateway: Gateway

    @property
    def state(self) -> GatewayState:
        assert self.gateway.state is not None, "the gateway is not running"
        return self.gateway.state


StartProxy = Callable[..., Awaitable[Proxy]]
"""The start_proxy fixture: config sections in, a running Proxy out."""


async def error_of(response: aiohttp.ClientResponse) -> tuple[int, str, str | None]:
    """Status, error code and field of an error answer, once its body has the right shape.

    The body must be exactly {"error", "message", "requestId"} plus an optional "field",
    with requestId the same as the X-Request-Id header.
    """
    body = await response.json()
    assert isinstance(body, dict), body
    message = body.pop("message", None)
    assert isinstance(message, str) and message, body
    assert body.pop("requestId", None) == response.headers["X-Request-Id"], body
    field = body.pop("field", None)
    assert set(body) == {"error"}, body
    return response.status, body["error"], field
