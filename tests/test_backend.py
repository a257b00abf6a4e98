"""The reference share backend, served on a free port and called over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.backend import start_backend
from tests.test_shares import DEFAULTS

KEY = "backend-test-key"
AUTH = {"Authorization": f"Bearer {KEY}", "X-Request-Id": "req-1"}


MISSING = "3f1c2d9e-8b7a-4c6d-9e0f-1a2b3c4d5e6f"


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[str]:
    runner, url = await start_backend(tmp_path / "shares.db", KEY)
    yield url
    await runner.cleanup()


@pytest.fixture
async def client(backend: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=backend, headers=AUTH) as session:
        yield session


@pytest.fixture
async def three(client: aiohttp.ClientSession) -> list[dict[str, Any]]:
    """Three shares that sort differently on every field the tests sort on."""
    bodies: list[dict[str, object]] = [
        {"contentId": "10", "name": "beta", "spaceKey": "DEV", "expiration": 3000},
        {"contentId": 20, "name": "alpha", "spaceKey": "OPS", "expiration": 1000},
        {"contentId": "30", "name": "gamma", "spaceKey": "ADM", "expiration": 2000},
    ]
    for body in bodies[0], bodies[2]:
        body["showComments"] = True
    return [await create(client, body) for body in bodies]


async def create(client: aiohttp.ClientSession, body: dict[str, object]) -> dict[str, Any]:
    async with client.post("/webapi/share", json=body) as response:
        assert response.status == 201
        share: dict[str, Any] = await response.json()
        return share


async def names(client: aiohttp.ClientSession, params: dict[str, str]) -> list[str]:
    async with client.get("/webapi/share", params=params) as response:
        assert response.status == 200
        return [share["name"] for share in await response.json()]


def without_identity(share: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in share.items() if k not in ("id", "uuid", "createdAt", "updatedAt")}


def error(code: str, message: str, field: str | None = None) -> dict[str, str]:
    body = {"error": code, "message": message, "requestId": "req-1"}
    return body | {"field": field} if field else body


async def test_create_applies_defaults(client: aiohttp.ClientSession) -> None:
    """CREATE with only contentId answers 201 with every default and the identity fields."""
    async with client.post("/webapi/share", json={"contentId": "2556174"}) as response:
        assert response.status == 201
        share = await response.json()
        assert response.headers["Location"] == f"/webapi/share/{share['uuid']}"

    assert without_identity(share) == {"contentId": "2556174", **DEFAULTS}
    assert uuid.UUID(share["uuid"]).version == 4
    assert isinstance(share["id"], int)
    assert isinstance(share["createdAt"], int)
    assert share["createdAt"] == share["updatedAt"]


async def test_create_keeps_given_fields(client: aiohttp.ClientSession) -> None:
    """CREATE stores every field given; an integer contentId is answered as a string."""
    body = {
        "contentId": 2556174,
        "contentType": "BLOGPOST",
        "spaceId": 213516917,
        "spaceKey": "DEV",
        "name": "Release notes",
        "description": "internal",
        "expiration": 1_900_000_000_000,
        "showComments": True,
        "showLabels": True,
        "selectedUsersConfig": {
            "allowed": True,
            "allowedNotification": False,
            "list": [{"email": "expl@expl2.com"}, {"email": "expl@expl.com"}],
        },
    }
    share = await create(client, body)
    assert without_identity(share) == {**DEFAULTS, **body, "contentId": "2556174"}


async def test_create_refuses_missing_content_id(client: aiohttp.ClientSession) -> None:
    """CREATE without contentId is a 400 naming it."""
    async with client.post("/webapi/share", json={"name": "x"}) as response:
        assert response.status == 400
        assert await response.json() == error("BAD_REQUEST", "contentId: is required", "contentId")


async def test_create_refuses_unknown_field(client: aiohttp.ClientSession) -> None:
    """CREATE with a field the contract does not know is a 400 naming it."""
    async with client.post("/webapi/share", json={"contentId": "1", "colour": 1}) as response:
        assert response.status == 400
        assert await response.json() == error(
            "BAD_REQUEST", "colour: is not a Share field", "colour"
        )


async def test_create_refuses_invalid_json(client: aiohttp.ClientSession) -> None:
    """A body that is not JSON is a 400."""
    headers = {"Content-Type": "application/json"}
    async with client.post("/webapi/share", data=b"{nope", headers=headers) as response:
        assert response.status == 400
        assert await response.json() == error("BAD_REQUEST", "body: is not valid JSON", "body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_create_refuses_other_media_types(
    client: aiohttp.ClientSession, content_type: str
) -> None:
    """A body that is not application/json is a 415."""
    headers = {"Content-Type": content_type}
    async with client.post("/webapi/share", data=b'{"contentId": "1"}', headers=headers) as resp:
        assert resp.status == 415
        assert await resp.json() == error(
            "UNSUPPORTED_MEDIA_TYPE", "the body must be application/json"
        )


async def test_get_answers_the_share(client: aiohttp.ClientSession) -> None:
    """GET answers the share as CREATE answered it."""
    created = await create(client, {"contentId": "1", "name": "Docs"})
    async with client.get(f"/webapi/share/{created['uuid']}") as response:
        assert response.status == 200
        assert await response.json() == created


async def test_get_unknown_is_404(client: aiohttp.ClientSession) -> None:
    """GET of a uuid no share has is a 404."""
    async with client.get(f"/webapi/share/{MISSING}") as response:
        assert response.status == 404
        assert await response.json() == error("NOT_FOUND", "no share has this uuid")


async def test_get_malformed_uuid_is_400(client: aiohttp.ClientSession) -> None:
    """GET of a uuid with characters no uuid has is a 400."""
    async with client.get("/webapi/share/a.b") as response:
        assert response.status == 400
        assert (await response.json())["field"] == "uuid"


async def test_list_answers_an_empty_array(client: aiohttp.ClientSession) -> None:
    """LIST with no shares answers []."""
    async with client.get("/webapi/share") as response:
        assert response.status == 200
        assert await response.json() == []


async def test_list_answers_whole_shares(
    client: aiohttp.ClientSession, three: list[dict[str, Any]]
) -> None:
    """LIST answers a plain array of shares, by id by default."""
    async with client.get("/webapi/share") as response:
        assert await response.json() == three


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("id", "asc", ["beta", "alpha", "gamma"]),
        ("id", "desc", ["gamma", "alpha", "beta"]),
        ("name", "asc", ["alpha", "beta", "gamma"]),
        ("name", "desc", ["gamma", "beta", "alpha"]),
        ("content_id", "asc", ["beta", "alpha", "gamma"]),
        ("content_id", "desc", ["gamma", "alpha", "beta"]),
        ("space_key", "asc", ["gamma", "beta", "alpha"]),
        ("space_key", "desc", ["alpha", "beta", "gamma"]),
        ("expiration", "asc", ["alpha", "gamma", "beta"]),
        ("expiration", "desc", ["beta", "gamma", "alpha"]),
        ("show_comments", "asc", ["alpha", "beta", "gamma"]),
        ("show_comments", "desc", ["beta", "gamma", "alpha"]),
        ("created_at", "asc", ["beta", "alpha", "gamma"]),
        ("content_type", "asc", ["beta", "alpha", "gamma"]),
    ],
)
async def test_list_sorts(
    client: aiohttp.ClientSession,
    three: list[dict[str, Any]],
    sort: str,
    order: str,
    expected: list[str],
) -> None:
    """LIST sorts on the snake_case field, either way, ties broken by id ascending."""
    assert await names(client, {"sort": sort, "sortOrder": order}) == expected


async def test_list_sorts_on_uuid(
    client: aiohttp.ClientSession, three: list[dict[str, Any]]
) -> None:
    """LIST sorts on uuid descending as the vendor's example call does."""
    expected = [share["name"] for share in sorted(three, key=lambda s: s["uuid"], reverse=True)]
    assert await names(client, {"sort": "uuid", "sortOrder": "desc"}) == expected


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        ("2", "0", ["beta", "alpha"]),
        ("2", "2", ["gamma"]),
        ("1", "1", ["alpha"]),
        ("100", "3", []),
    ],
)
async def test_list_pages(
    client: aiohttp.ClientSession,
    three: list[dict[str, Any]],
    limit: str,
    offset: str,
    expected: list[str],
) -> None:
    """LIST answers limit shares after skipping offset of them."""
    assert await names(client, {"limit": limit, "offset": offset}) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"contents": "10,30"}, ["beta", "gamma"]),
        ({"contents": "20"}, ["alpha"]),
        ({"contents": "10, 20, 99"}, ["beta", "alpha"]),
        ({"contents": "99"}, []),
        ({"spaceKeys": "DEV, OPS"}, ["beta", "alpha"]),
        ({"spaceKeys": "ADM"}, ["gamma"]),
        ({"contents": "10, 30", "spaceKeys": "OPS, ADM"}, ["gamma"]),
        ({"contents": "10", "spaceKeys": "OPS"}, []),
        ({"contents": "10,20,30", "sort": "name", "sortOrder": "desc"}, ["gamma", "beta", "alpha"]),
    ],
)
async def test_list_filters(
    client: aiohttp.ClientSession,
    three: list[dict[str, Any]],
    params: dict[str, str],
    expected: list[str],
) -> None:
    """contents and spaceKeys each narrow LIST; given both, a share must match both."""
    assert await names(client, params) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "issue_id"}, "sort"),
        ({"sortOrder": "sideways"}, "sortOrder"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
async def test_list_refuses_bad_parameters(
    client: aiohttp.ClientSession, params: dict[str, str], field: str
) -> None:
    """A bad LIST parameter is a 400 naming it."""
    async with client.get("/webapi/share", params=params) as response:
        assert response.status == 400
        assert (await response.json())["field"] == field


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_changes_given_fields_only(client: aiohttp.ClientSession, method: str) -> None:
    """PUT and PATCH both change the fields given and keep the others."""
    created = await create(client, {"contentId": "1", "spaceKey": "DEV", "showComments": True})
    changes = {"name": "Renamed", "showLabels": True, "selectedUsersConfig": {"allowed": True}}

    url = f"/webapi/share/{created['uuid']}"
    async with client.request(method, url, json=changes) as response:
        assert response.status == 200
        updated = await response.json()

    assert updated == {**created, **changes, "updatedAt": updated["updatedAt"]}
    assert updated["updatedAt"] >= created["updatedAt"]
    async with client.get(url) as response:
        assert await response.json() == updated


async def test_update_empty_name_falls_back_to_default(client: aiohttp.ClientSession) -> None:
    """An UPDATE that empties the name gives the share the default name again."""
    created = await create(client, {"contentId": "1", "name": "Docs"})
    async with client.patch(f"/webapi/share/{created['uuid']}", json={"name": None}) as response:
        assert (await response.json())["name"] == "External Share Link"


async def test_update_unknown_is_404(client: aiohttp.ClientSession) -> None:
    """UPDATE of a uuid no share has is a 404."""
    async with client.put(f"/webapi/share/{MISSING}", json={"name": "x"}) as response:
        assert response.status == 404
        assert await response.json() == error("NOT_FOUND", "no share has this uuid")


async def test_update_refuses_content_id(client: aiohttp.ClientSession) -> None:
    """UPDATE cannot move a share to other content."""
    created = await create(client, {"contentId": "1"})
    async with client.patch(f"/webapi/share/{created['uuid']}", json={"contentId": "2"}) as resp:
        assert resp.status == 400
        assert await resp.json() == error(
            "BAD_REQUEST", "contentId: cannot be changed; create a new share instead", "contentId"
        )


async def test_delete_answers_204_then_404(client: aiohttp.ClientSession) -> None:
    """DELETE answers 204 with no body; the share is then gone."""
    created = await create(client, {"contentId": "1"})
    url = f"/webapi/share/{created['uuid']}"

    async with client.delete(url) as response:
        assert response.status == 204
        assert await response.read() == b""
    async with client.get(url) as response:
        assert response.status == 404
    async with client.delete(url) as response:
        assert response.status == 404
        assert await response.json() == error("NOT_FOUND", "no share has this uuid")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-key", f"Basic {KEY}", f"Bearer {KEY}x", KEY],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/webapi/share"), ("GET", f"/webapi/share/{MISSING}"), ("POST", "/webapi/share")],
)
async def test_auth_refuses_missing_or_wrong_key(
    backend: str, authorization: str | None, method: str, path: str
) -> None:
    """Without the backend's bearer key every share call is a 401 asking for Bearer."""
    headers = {"X-Request-Id": "req-1"}
    if authorization is not None:
        headers["Authorization"] = authorization

    async with (
        aiohttp.ClientSession(base_url=backend) as session,
        session.request(method, path, headers=headers, json={"contentId": "1"}) as response,
    ):
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == error(
            "UNAUTHORIZED", "a valid 'Authorization: Bearer <key>' header is required"
        )


async def test_auth_scheme_is_case_insensitive(backend: str) -> None:
    """The Bearer scheme is matched without regard to case, as HTTP has it."""
    headers = {"Authorization": f"bearer {KEY}"}
    async with (
        aiohttp.ClientSession(base_url=backend) as session,
        session.get("/webapi/share", headers=headers) as response,
    ):
        assert response.status == 200


async def test_healthz_needs_no_key(backend: str) -> None:
    """/healthz answers ok without a key."""
    async with aiohttp.ClientSession(base_url=backend) as session, session.get("/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_backend_keeps_shares_across_restart(tmp_path: Path) -> None:
    """Shares stay on the SQLite file when the backend stops and starts again."""
    db_path = tmp_path / "shares.db"
    runner, url = await start_backend(db_path, KEY)
    try:
        async with aiohttp.ClientSession(base_url=url, headers=AUTH) as session:
            created = await create(session, {"contentId": "1", "name": "Kept"})
    finally:
        await runner.cleanup()

    runner, url = await start_backend(db_path, KEY)
    try:
        async with aiohttp.ClientSession(base_url=url, headers=AUTH) as session:
            async with session.get(f"/webapi/share/{created['uuid']}") as response:
                assert await response.json() == created
            async with session.get("/webapi/share") as response:
                assert await response.json() == [created]
            assert (await create(session, {"contentId": "2"}))["id"] == created["id"] + 1
    finally:
        await runner.cleanup()
