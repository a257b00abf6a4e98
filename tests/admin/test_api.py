"""The admin API over the wire: every endpoint, its answers and its errors."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.keys.values import well_formed
from tests.processes import ADMIN_TOKEN

NEW_KEY: dict[str, Any] = {
    "name": "ci-deploy",
    "permissions": {"get": True, "list": True},
    "admin": False,
    "notValidBefore": "2026-01-01T00:00:00Z",
    "notValidAfter": "2027-01-01T00:00:00+02:00",
    "allowedIps": ["10.0.0.0/8", "192.168.1.10-192.168.1.20", "2001:db8::1"],
    "description": "deploys from CI",
    "rateLimit": {"requests": 100, "perSeconds": 60},
}


async def create(admin: aiohttp.ClientSession, **fields: Any) -> dict[str, Any]:
    response = await admin.post("/admin/api/keys", json={**NEW_KEY, **fields})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    assert body["requestId"] == response.headers["X-Request-Id"]
    return body


async def test_create_answers_201_with_the_full_value(admin: aiohttp.ClientSession) -> None:
    """Create answers the key with its value in full and every field as stored."""
    key = await create(admin)

    value = key.pop("value")
    assert well_formed(value)
    assert key == {
        "id": key["id"],
        "name": "ci-deploy",
        "maskedValue": f"{value[:3]}****{value[-3:]}",
        "permissions": {
            "get": True,
            "list": True,
            "create": False,
            "update": False,
            "delete": False,
        },
        "admin": False,
        "notValidBefore": "2026-01-01T00:00:00Z",
        "notValidAfter": "2026-12-31T22:00:00Z",
        "allowedIps": ["10.0.0.0/8", "192.168.1.10-192.168.1.20", "2001:db8::1"],
        "description": "deploys from CI",
        "rateLimit": {"requests": 100, "perSeconds": 60},
        "createdAt": key["createdAt"],
        "updatedAt": key["createdAt"],
        "createdBy": "ops",
        "usageCount": 0,
        "deniedCount": 0,
        "lastUsedAt": None,
        "previousValidUntil": None,
    }


async def test_create_defaults_for_optional_fields(admin: aiohttp.ClientSession) -> None:
    """Only the name is required; permissions default to false and the window to open."""
    response = await admin.post("/admin/api/keys", json={"name": "bare"})
    key = await response.json()

    assert response.status == 201
    assert key["permissions"] == dict.fromkeys(("get", "list", "create", "update", "delete"), False)
    assert (key["admin"], key["notValidBefore"], key["notValidAfter"]) == (False, None, None)
    assert (key["allowedIps"], key["description"], key["rateLimit"]) == ([], "", None)


async def test_list_shows_keys_masked(admin: aiohttp.ClientSession) -> None:
    """List answers every key, masked, with no value anywhere in the body."""
    first = await create(admin, name="one")
    second = await create(admin, name="two")

    response = await admin.get("/admin/api/keys")
    text = await response.text()
    keys = (await response.json())["keys"]

    assert response.status == 200
    assert [k["name"] for k in keys] == ["one", "two"]
    assert all("value" not in k for k in keys)
    assert first["value"] not in text and second["value"] not in text


async def test_show_answers_the_key_masked(admin: aiohttp.ClientSession) -> None:
    """Show answers the same fields as create, without the value."""
    key = await create(admin)
    key.pop("value")

    response = await admin.get(f"/admin/api/keys/{key['id']}")

    assert response.status == 200
    assert await response.json() == key


async def test_patch_changes_only_the_given_fields(admin: aiohttp.ClientSession) -> None:
    """Patch changes what it names, merges permissions, and moves updatedAt."""
    key = await create(admin)

    response = await admin.patch(
        f"/admin/api/keys/{key['id']}",
        json={"permissions": {"delete": True}, "description": "now deletes too"},
    )
    updated = await response.json()

    assert response.status == 200
    assert updated["permissions"] == {
        "get": True,
        "list": True,
        "create": False,
        "update": False,
        "delete": True,
    }
    assert updated["description"] == "now deletes too"
    assert updated["name"] == key["name"]
    assert updated["updatedAt"] > key["updatedAt"]


async def test_delete_answers_204_and_then_404(admin: aiohttp.ClientSession) -> None:
    """A deleted key is gone from show and list."""
    key = await create(admin)

    deleted = await admin.delete(f"/admin/api/keys/{key['id']}")
    shown = await admin.get(f"/admin/api/keys/{key['id']}")
    listed = await (await admin.get("/admin/api/keys")).json()

    assert (deleted.status, await deleted.read()) == (204, b"")
    assert shown.status == 404
    assert listed == {"keys": []}


async def test_reveal_answers_the_value_every_time(admin: aiohttp.ClientSession) -> None:
    """Reveal is not a one-time operation: it answers the same value again and again."""
    key = await create(admin)

    answers = [await admin.post(f"/admin/api/keys/{key['id']}/reveal") for _ in range(3)]

    assert [r.status for r in answers] == [200, 200, 200]
    assert [await r.json() for r in answers] == [{"value": key["value"]}] * 3
    assert answers[0].headers["Cache-Control"] == "no-store"


async def test_download_is_an_attachment_holding_the_value(admin: aiohttp.ClientSession) -> None:
    """Download answers the value as a file named after the key."""
    key = await create(admin, name="ci deploy/prod")

    response = await admin.get(f"/admin/api/keys/{key['id']}/download")

    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="ci-deploy-prod.key"'
    assert await response.text() == key["value"] + "\n"


async def test_history_records_each_act_newest_first(admin: aiohttp.ClientSession) -> None:
    """History names who did what, with each changed field's old and new value."""
    key = await create(admin)
    path = f"/admin/api/keys/{key['id']}"
    await admin.patch(path, json={"name": "renamed", "admin": True})
    await admin.post(f"{path}/reveal")
    await admin.get(f"{path}/download")
    await admin.delete(path)

    response = await admin.get(f"{path}/history")
    events = (await response.json())["events"]

    assert response.status == 200
    assert [(e["action"], e["actor"]) for e in events] == [
        ("deleted", "ops"),
        ("downloaded", "ops"),
        ("revealed", "ops"),
        ("updated", "ops"),
        ("created", "ops"),
    ]
    assert events[3]["changes"] == [
        {"field": "name", "old": "ci-deploy", "new": "renamed"},
        {"field": "admin", "old": False, "new": True},
    ]
    assert {c["field"] for c in events[4]["changes"]} == set(NEW_KEY)
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)


async def test_patch_with_no_change_records_nothing(admin: aiohttp.ClientSession) -> None:
    """Setting a field to the value it has is not a change and is not recorded."""
    key = await create(admin)

    await admin.patch(f"/admin/api/keys/{key['id']}", json={"name": key["name"]})
    events = (await (await admin.get(f"/admin/api/keys/{key['id']}/history")).json())["events"]

    assert [e["action"] for e in events] == ["created"]


async def test_usage_answers_hourly_buckets_for_a_week(admin: aiohttp.ClientSession) -> None:
    """Usage answers one bucket per hour for the last 7 days, zeros included."""
    key = await create(admin)

    response = await admin.get(f"/admin/api/keys/{key['id']}/usage")
    buckets = (await response.json())["buckets"]

    assert response.status == 200
    assert len(buckets) == 7 * 24
    assert {(b["allowed"], b["denied"]) for b in buckets} == {(0, 0)}
    assert buckets == sorted(buckets, key=lambda b: b["start"])


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/api/keys"),
        ("POST", "/admin/api/keys"),
        ("GET", "/admin/api/keys/some-id"),
        ("PATCH", "/admin/api/keys/some-id"),
        ("DELETE", "/admin/api/keys/some-id"),
        ("POST", "/admin/api/keys/some-id/reveal"),
        ("GET", "/admin/api/keys/some-id/download"),
        ("GET", "/admin/api/keys/some-id/history"),
        ("GET", "/admin/api/keys/some-id/usage"),
        ("GET", "/admin/api/no-such-route"),
    ],
)
async def test_every_endpoint_refuses_a_missing_or_wrong_token(
    gateway: Gateway, header: str | None, method: str, path: str
) -> None:
    """Without a valid admin token every admin endpoint answers 401 in the error body."""
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession() as session:
        response = await session.request(method, gateway.admin_url + path, headers=headers)
        body = await error_of(response)

    assert response.status == 401
    assert body["error"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/reveal"),
        ("GET", "/download"),
        ("GET", "/history"),
        ("GET", "/usage"),
    ],
)
async def test_unknown_id_answers_404(
    admin: aiohttp.ClientSession, method: str, suffix: str
) -> None:
    """An id that names no key answers 404 NOT_FOUND on every key endpoint."""
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
    response = await admin.request(method, f"/admin/api/keys/nope{suffix}", **kwargs)
    body = await error_of(response)

    assert response.status == 404
    assert body["error"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 41}, "name"),
        ({"description": "d" * 4001}, "description"),
        ({"permissions": {"share": True}}, "permissions.share"),
        ({"permissions": {"get": "yes"}}, "permissions.get"),
        ({"admin": 1}, "admin"),
        ({"notValidBefore": "yesterday"}, "notValidBefore"),
        ({"notValidAfter": "2025-01-01T00:00:00Z"}, "notValidAfter"),
        ({"allowedIps": ["10.0.0.300"]}, "allowedIps[0]"),
        ({"allowedIps": ["10.0.0.0/8", "10.0.0.9-10.0.0.1"]}, "allowedIps[1]"),
        ({"usageCount": 5}, "usageCount"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_field_answers_400_naming_it(
    admin: aiohttp.ClientSession, fields: dict[str, Any], field: str
) -> None:
    """Create and patch refuse a bad field with 400 naming the field."""
    created = await create(admin)

    on_create = await admin.post("/admin/api/keys", json={**NEW_KEY, **fields})
    on_patch = await admin.patch(f"/admin/api/keys/{created['id']}", json=fields)
    bodies = [await error_of(on_create), await error_of(on_patch)]

    assert [on_create.status, on_patch.status] == [400, 400]
    assert [(b["error"], b["field"]) for b in bodies] == [("BAD_REQUEST", field)] * 2
    assert all(b["message"].startswith(f"{field}: ") for b in bodies)


JSON = "application/json"


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "BAD_REQUEST"),
        (b"[1, 2]", "application/json", 400, "BAD_REQUEST"),
        (b"\xff\xfe", "application/json", 400, "BAD_REQUEST"),
        (b'{"name": "x"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        # Two values for one name: which one counts would depend on the parser.
        (b'{"name": "x", "name": "y"}', "application/json", 400, "BAD_REQUEST"),
        (
            b'{"name": "x", "permissions": {"get": true, "get": false}}',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        (
            b'{"name": "x", "rateLimit": {"requests": NaN, "perSeconds": 1}}',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
    ],
)
async def test_bad_body_answers_a_json_error(
    admin: aiohttp.ClientSession, data: bytes, content_type: str, status: int, code: str
) -> None:
    """A body that is not a JSON object is refused in the error body, never a 500."""
    response = await admin.post(
        "/admin/api/keys", data=data, headers={"Content-Type": content_type}
    )
    body = await error_of(response)

    assert (response.status, body["error"]) == (status, code)


async def test_create_without_name_answers_400(admin: aiohttp.ClientSession) -> None:
    """The name is required."""
    response = await admin.post("/admin/api/keys", json={"permissions": {"get": True}})
    body = await error_of(response)

    assert (response.status, body["field"]) == (400, "name")


async def test_health_and_readiness_answer_on_the_public_listener(
    public: aiohttp.ClientSession,
) -> None:
    """/healthz and /readyz answer 200 while the store is usable."""
    health = await public.get("/healthz")
    ready = await public.get("/readyz")

    assert (health.status, await health.json()) == (200, {"status": "ok"})
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})


async def test_readiness_answers_503_when_the_store_is_closed(
    gateway: Gateway, public: aiohttp.ClientSession
) -> None:
    """/readyz answers 503 with a JSON reason once the store cannot be used."""
    assert gateway.state is not None
    await gateway.state.store.close()

    response = await public.get("/readyz")
    body = await error_of(response)

    assert (response.status, body["error"]) == (503, "NOT_READY")
    await gateway.state.store.open()
