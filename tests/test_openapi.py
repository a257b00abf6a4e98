"""The OpenAPI document: valid, served, and true to the routes both listeners have."""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web
from openapi_spec_validator import validate

from gateway import openapi
from gateway.app import Gateway, admin_app, public_app
from gateway.keys import rules

METHODS = {"get", "post", "put", "patch", "delete"}


def routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every API route an app serves (static files aside)."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if path is None or route.method.lower() not in METHODS:
            continue
        found.add((route.method.lower(), re.sub(r"\{(\w+)\}", r"{\1}", path)))
    return found


def documented(prefixes: tuple[str, ...]) -> set[tuple[str, str]]:
    doc = openapi.document()
    return {
        (method, path)
        for path, item in doc["paths"].items()
        if path.startswith(prefixes)
        for method in item
        if method in METHODS
    }


def test_document_is_valid_openapi() -> None:
    """The document passes the OpenAPI 3 validator."""
    validate(openapi.document())


def test_document_matches_the_public_routes(gateway: Gateway) -> None:
    """Every public route is documented and every documented public path is served."""
    assert gateway.state is not None
    served = routes(public_app(gateway.state))

    assert served == documented(("/webapi", "/healthz", "/readyz"))


def test_document_matches_the_admin_api_routes(gateway: Gateway) -> None:
    """Every admin API route is documented and every documented admin path is served."""
    assert gateway.state is not None
    admin_paths = ("/admin", "/openapi.json", "/metrics")
    served = {r for r in routes(admin_app(gateway.state)) if r[1].startswith(admin_paths)}

    assert served == documented(admin_paths)


async def test_document_is_served_on_the_admin_listener(gateway: Gateway) -> None:
    """GET /openapi.json on the admin listener answers the document."""
    async with aiohttp.ClientSession() as session:
        response = await session.get(gateway.admin_url + "/openapi.json")
        body = await response.json()

    assert response.status == 200
    assert body == openapi.document()


def test_document_rate_limit_matches_the_rules() -> None:
    """rateLimit takes the rules' bounds; every share operation documents 429 and Retry-After."""
    doc = openapi.document()
    schema = doc["components"]["schemas"]["KeyUpdate"]["properties"]["rateLimit"]
    share_operations = [
        operation
        for path, item in doc["paths"].items()
        if path.startswith("/webapi")
        for method, operation in item.items()
        if method in METHODS
    ]

    assert schema["nullable"] is True
    assert schema["required"] == ["requests", "perSeconds"]
    assert schema["properties"]["requests"]["maximum"] == rules.RATE_REQUESTS_MAX
    assert schema["properties"]["perSeconds"]["maximum"] == rules.RATE_PER_SECONDS_MAX
    assert len(share_operations) == 6
    assert all("Retry-After" in op["responses"]["429"]["headers"] for op in share_operations)
