"""Rotation: a new value, the old one working through its grace period, one key's usage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.admin.test_api import error_of


async def make_key(admin: aiohttp.ClientSession) -> dict[str, Any]:
    response = await admin.post(
        "/admin/api/keys", json={"name": "rotating", "permissions": {"create": True}}
    )
    key: dict[str, Any] = await response.json()
    return key


async def create_share(public: aiohttp.ClientSession, value: str) -> int:
    response = await public.post(
        "/webapi/share", json={"contentId": "1"}, headers={"Authorization": f"Bearer {value}"}
    )
    return response.status


async def test_rotate_answers_a_new_value_and_the_grace_end(admin: aiohttp.ClientSession) -> None:
    """Rotate answers a new value, a new mask, and when the old value stops working."""
    key = await make_key(admin)

    response = await admin.post(
        f"/admin/api/keys/{key['id']}/rotate", json={"gracePeriodSeconds": 3600}
    )
    rotated = await response.json()
    revealed = await (await admin.post(f"/admin/api/keys/{key['id']}/reveal")).json()

    assert response.status == 200
    assert rotated["value"] != key["value"]
    assert rotated["maskedValue"] == f"{rotated['value'][:3]}****{rotated['value'][-3:]}"
    assert rotated["previousValidUntil"] > rotated["updatedAt"]
    assert revealed == {"value": rotated["value"]}


async def test_both_values_work_during_the_grace_period_only_new_after(
    admin: aiohttp.ClientSession, public: aiohttp.ClientSession
) -> None:
    """The old value works until the grace period ends; the new one keeps working."""
    key = await make_key(admin)
    response = await admin.post(
        f"/admin/api/keys/{key['id']}/rotate", json={"gracePeriodSeconds": 1}
    )
    new_value = (await response.json())["value"]

    during = [await create_share(public, key["value"]), await create_share(public, new_value)]
    # Wait out the one-second grace period, asking again until the old value fails.
    deadline = time.monotonic() + 5
    for _ in range(100):
        if await create_share(public, key["value"]) == 401 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    after = [await create_share(public, key["value"]), await create_share(public, new_value)]

    assert during == [201, 201]
    assert after == [401, 201]


async def test_usage_of_both_values_counts_on_the_one_key(
    admin: aiohttp.ClientSession, public: aiohttp.ClientSession
) -> None:
    """Requests with the old and the new value add to the same key's usage count."""
    key = await make_key(admin)
    response = await admin.post(f"/admin/api/keys/{key['id']}/rotate", json={})
    new_value = (await response.json())["value"]

    statuses = [await create_share(public, v) for v in [key["value"]] * 3 + [new_value] * 2]
    shown = await (await admin.get(f"/admin/api/keys/{key['id']}")).json()

    assert statuses == [201] * 5
    assert shown["usageCount"] == 5


async def test_rotate_with_no_grace_ends_the_old_value_at_once(
    admin: aiohttp.ClientSession, public: aiohttp.ClientSession
) -> None:
    """A grace period of 0 makes the old value fail on the next request."""
    key = await make_key(admin)
    await admin.post(f"/admin/api/keys/{key['id']}/rotate", json={"gracePeriodSeconds": 0})

    response = await public.post(
        "/webapi/share",
        json={"contentId": "1"},
        headers={"Authorization": f"Bearer {key['value']}"},
    )
    body = await error_of(response)

    assert (response.status, body["error"]) == (401, "UNAUTHORIZED")


async def test_rotate_is_recorded_in_the_history(admin: aiohttp.ClientSession) -> None:
    """The history records `rotated` with the old and new mask."""
    key = await make_key(admin)
    rotated = await (await admin.post(f"/admin/api/keys/{key['id']}/rotate")).json()

    events = (await (await admin.get(f"/admin/api/keys/{key['id']}/history")).json())["events"]

    assert (events[0]["action"], events[0]["actor"]) == ("rotated", "ops")
    assert events[0]["changes"] == [
        {"field": "maskedValue", "old": key["maskedValue"], "new": rotated["maskedValue"]},
        {"field": "previousValidUntil", "old": None, "new": rotated["previousValidUntil"]},
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gracePeriodSeconds": -1}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": 31 * 86400}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": "1h"}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": True}, "gracePeriodSeconds"),
        ({"grace": 10}, "grace"),
        ([], "body"),
    ],
)
async def test_rotate_refuses_a_bad_grace_period(
    admin: aiohttp.ClientSession, body: object, field: str
) -> None:
    """A grace period that is not 0 to 30 days in seconds is a 400 naming it."""
    key = await make_key(admin)

    response = await admin.post(f"/admin/api/keys/{key['id']}/rotate", json=body)
    error = await error_of(response)
    shown = await (await admin.get(f"/admin/api/keys/{key['id']}")).json()

    assert (response.status, error["field"]) == (400, field)
    assert shown["maskedValue"] == key["maskedValue"]
