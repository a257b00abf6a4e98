"""A key's rateLimit through the admin API: set, changed, cleared, recorded and refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

LIMIT = {"requests": 100, "perSeconds": 60}


async def answer(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def test_rate_limit_set_changed_and_cleared_with_history(
    admin: aiohttp.ClientSession,
) -> None:
    """Create sets it, PATCH changes or clears it, show answers it, history keeps old and new."""
    created = await answer(
        await admin.post("/admin/api/keys", json={"name": "ci", "rateLimit": LIMIT}), 201
    )
    path = f"/admin/api/keys/{created['id']}"

    changed = await answer(
        await admin.patch(path, json={"rateLimit": {"requests": 5, "perSeconds": 1}})
    )
    untouched = await answer(await admin.patch(path, json={"description": "busy"}))
    cleared = await answer(await admin.patch(path, json={"rateLimit": None}))
    shown = await answer(await admin.get(path))
    events = (await answer(await admin.get(f"{path}/history")))["events"]

    assert created["rateLimit"] == LIMIT
    assert changed["rateLimit"] == {"requests": 5, "perSeconds": 1}
    assert untouched["rateLimit"] == {"requests": 5, "perSeconds": 1}
    assert cleared["rateLimit"] is None
    assert shown["rateLimit"] is None
    assert [e["changes"] for e in events if e["action"] == "updated"] == [
        [{"field": "rateLimit", "old": {"requests": 5, "perSeconds": 1}, "new": None}],
        [{"field": "description", "old": "", "new": "busy"}],
        [{"field": "rateLimit", "old": LIMIT, "new": {"requests": 5, "perSeconds": 1}}],
    ]
    assert {"field": "rateLimit", "old": None, "new": LIMIT} in events[-1]["changes"]


async def test_rate_limit_same_value_is_no_change(admin: aiohttp.ClientSession) -> None:
    """Setting the limit a key already has records nothing."""
    created = await answer(
        await admin.post("/admin/api/keys", json={"name": "ci", "rateLimit": LIMIT}), 201
    )
    path = f"/admin/api/keys/{created['id']}"

    await answer(await admin.patch(path, json={"rateLimit": dict(reversed(LIMIT.items()))}))
    events = (await answer(await admin.get(f"{path}/history")))["events"]

    assert [e["action"] for e in events] == ["created"]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"requests": 0, "perSeconds": 60}, "rateLimit.requests"),
        ({"requests": 10, "perSeconds": 86_401}, "rateLimit.perSeconds"),
        ({"requests": 10, "perSeconds": 60, "burst": 1}, "rateLimit.burst"),
        ({"requests": 10}, "rateLimit.perSeconds"),
        ("10/60", "rateLimit"),
    ],
)
async def test_rate_limit_refused_with_400_naming_the_field(
    admin: aiohttp.ClientSession, value: object, field: str
) -> None:
    """A bad rateLimit is a 400 whose `field` names the part at fault, on create and PATCH."""
    created = await answer(await admin.post("/admin/api/keys", json={"name": "ci"}), 201)

    on_create = await answer(
        await admin.post("/admin/api/keys", json={"name": "x", "rateLimit": value}), 400
    )
    on_patch = await answer(
        await admin.patch(f"/admin/api/keys/{created['id']}", json={"rateLimit": value}), 400
    )
    kept = await answer(await admin.get(f"/admin/api/keys/{created['id']}"))

    for refusal in (on_create, on_patch):
        assert (refusal["error"], refusal["field"]) == ("BAD_REQUEST", field)
        assert refusal["message"].startswith(f"{field}: ")
    assert kept["rateLimit"] is None
    keys = (await answer(await admin.get("/admin/api/keys")))["keys"]
    assert [k["name"] for k in keys] == ["ci"]
