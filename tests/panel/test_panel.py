"""The admin panel in a real browser, checked against the admin API it is built on."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Dialog, Request, expect

from gateway.admin.panel import CONTENT_SECURITY_POLICY
from gateway.app import Gateway
from tests.panel.conftest import Panel, api_json, create_key
from tests.processes import ADMIN_TOKEN

UNKNOWN_SHARE = "/webapi/share/0b9b3a52-3c36-4a8e-9d0e-6a1f43c1b2aa"
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def bodies_of(panel: Panel, method: str, suffix: str) -> list[Any]:
    """Collect the JSON bodies the page sends with `method` to URLs ending in `suffix`."""
    bodies: list[Any] = []

    def on_request(request: Request) -> None:
        if request.method == method and request.url.endswith(suffix):
            bodies.append(request.post_data_json)

    panel.page.on("request", on_request)
    return bodies


async def test_panel_page_carries_security_headers(gateway: Gateway) -> None:
    """The page and its assets come with a strict CSP; nothing outside the folder is served."""
    async with aiohttp.ClientSession(base_url=gateway.admin_url) as client:
        page = await client.get("/")
        script = await client.get("/static/panel.js")
        missing = [
            (await client.get(path)).status
            for path in ("/static/panel.py", "/static/..%2Fpanel.py", "/static/nope.js")
        ]

        assert page.status == 200
        assert page.content_type == "text/html"
        assert {name: page.headers.get(name) for name in SECURITY_HEADER_NAMES} == {
            "Content-Security-Policy": EXPECTED_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        assert CONTENT_SECURITY_POLICY == EXPECTED_CSP
        assert script.status == 200
        assert script.content_type == "text/javascript"
        assert script.headers["X-Content-Type-Options"] == "nosniff"
        assert missing == [404, 404, 404]


SECURITY_HEADER_NAMES = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cache-Control",
)


async def test_sign_in_keeps_token_in_tab_and_sends_it_as_bearer(panel: Panel) -> None:
    """Sign-in keeps the token in sessionStorage only and sends it in the Authorization header."""
    page = panel.page
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))

    response = await page.goto(panel.url + "/")
    assert response is not None
    assert response.headers["content-security-policy"] == EXPECTED_CSP
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="API Keys", exact=True)).to_be_visible()

    stored = await page.evaluate("[Object.values(sessionStorage), localStorage.length]")
    assert stored == [[ADMIN_TOKEN], 0]
    assert await page.context.cookies() == []
    api_calls = [(url, auth) for url, auth in sent if "/admin/api/" in url]
    assert api_calls and all(auth == f"Bearer {ADMIN_TOKEN}" for _, auth in api_calls)
    assert not any(ADMIN_TOKEN in url for url, _ in sent)
    assert ADMIN_TOKEN not in page.url

    await page.reload()
    await expect(page.get_by_role("heading", name="API Keys", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Admin token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_sign_in_with_wrong_token_shows_the_refusal(panel: Panel) -> None:
    """A token the API answers 401 to is refused with a clear message and not kept."""
    page = panel.page
    await page.goto(panel.url + "/")
    await page.get_by_label("Admin token").fill("not-the-admin-token")
    await page.get_by_role("button", name="Sign in").click()

    await expect(page.locator("#sign-in-error")).to_have_text(
        "The admin API refused this token: the admin token is not valid."
    )
    await expect(page.get_by_role("heading", name="API Keys", exact=True)).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0
    await panel.screenshot("sign-in-refused")


async def test_keys_table_shows_columns_and_status_by_browser_clock(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """Each key's row shows its fields; the status follows the browser's clock."""
    await create_key(admin, "open-ended", permissions={"get": True, "list": True}, admin=True)
    future = await create_key(admin, "starts-2099", notValidBefore="2099-01-01T00:00:00Z")
    await create_key(admin, "ended-2000", notValidAfter="2000-01-01T00:00:00Z")
    await panel.sign_in()
    page = panel.page
    table = page.locator("#keys-table")

    headers = await table.locator("thead th").all_text_contents()
    assert headers == ["Name", "Key", "Permissions", "Status", "Usage Count", "Last Usage Time"]
    rows = {
        name: await table.locator("tr", has_text=name).locator("td").all_inner_texts()
        for name in ("open-ended", "starts-2099", "ended-2000")
    }
    assert rows["open-ended"][2:] == ["get\nlist\nadmin", "active", "0", "Never"]
    assert rows["starts-2099"][1:4] == [future["maskedValue"], "none", "not yet valid"]
    assert rows["ended-2000"][3] == "expired"
    await panel.screenshot("keys-tab")

    await page.clock.set_fixed_time(datetime(2099, 6, 1, tzinfo=UTC))
    await page.reload()
    status = table.locator("tr", has_text="starts-2099").locator(".pill")
    await expect(status).to_have_text("active")


async def test_create_dialog_creates_key_with_every_field(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """The dialog sends every field (local times as UTC); the value shown copies and downloads."""
    await panel.sign_in()
    page = panel.page
    await page.get_by_role("button", name="Create New API Key").click()
    dialog = page.locator("#create-dialog")

    await expect(dialog.get_by_text("0/40", exact=True)).to_be_visible()
    await dialog.get_by_label("Key Name", exact=True).fill("ci-deploy")
    await expect(dialog.get_by_text("9/40", exact=True)).to_be_visible()
    for label in ("Get Shares", "List Shares", "Update Shares"):
        await dialog.get_by_label(label, exact=True).check()
    await dialog.get_by_label("Admin (may list all shares)").check()
    # Berlin is UTC+1 in January and UTC+2 in July.
    await dialog.get_by_label("Not valid before", exact=True).fill("2025-01-10T09:30")
    await dialog.get_by_label("Not valid after", exact=True).fill("2099-07-01T12:00")
    await dialog.get_by_label("Allowed IPs").fill(
        "10.0.0.0/8\n192.168.1.10-192.168.1.20, 2001:db8::1"
    )
    await dialog.get_by_label("Description").fill("deploys from CI")
    await dialog.get_by_label("Requests", exact=True).fill("100")
    await dialog.get_by_label("Window (seconds)", exact=True).fill("60")
    await expect(dialog.get_by_text("15/4000", exact=True)).to_be_visible()
    await panel.screenshot("create-dialog")
    await dialog.get_by_role("button", name="Create Key").click()

    secret = page.locator("#secret-dialog")
    await expect(secret).to_be_visible()
    shown = await secret.locator("#secret-value").inner_text()
    await panel.screenshot("key-created")
    await secret.get_by_role("button", name="Copy").click()
    copied = await page.evaluate("navigator.clipboard.readText()")
    async with page.expect_download() as downloading:
        await secret.get_by_role("button", name="Download").click()
    download = await downloading.value
    saved = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")

    keys = (await api_json(await admin.get("/admin/api/keys")))["keys"]
    assert [k["name"] for k in keys] == ["ci-deploy"]
    key = keys[0]
    assert key == {
        "id": key["id"],
        "name": "ci-deploy",
        "maskedValue": f"{shown[:3]}****{shown[-3:]}",
        "permissions": {
            "get": True,
            "list": True,
            "create": False,
            "update": True,
            "delete": False,
        },
        "admin": True,
        "notValidBefore": "2025-01-10T08:30:00Z",
        "notValidAfter": "2099-07-01T10:00:00Z",
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
    revealed = await api_json(await admin.post(f"/admin/api/keys/{key['id']}/reveal"))
    assert revealed == {"value": copied}
    assert (copied, saved, download.suggested_filename) == (shown, shown + "\n", "ci-deploy.key")

    await secret.get_by_role("button", name="Done").click()
    await expect(page.locator("#keys-table").get_by_role("link", name="ci-deploy")).to_be_visible()


async def test_create_dialog_shows_invalid_ip_message_inline(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """An allowlist entry the API refuses shows the API's own message under the field."""
    refusal = await api_json(
        await admin.post(
            "/admin/api/keys", json={"name": "bad-ip", "allowedIps": ["10.0.0.1", "not-an-ip"]}
        ),
        400,
    )
    assert refusal["field"] == "allowedIps[1]"
    await panel.sign_in()
    page = panel.page
    await page.get_by_role("button", name="Create New API Key").click()
    dialog = page.locator("#create-dialog")
    await dialog.get_by_label("Key Name", exact=True).fill("bad-ip")
    await dialog.get_by_label("Allowed IPs").fill("10.0.0.1\nnot-an-ip")
    await dialog.get_by_role("button", name="Create Key").click()

    ips = dialog.get_by_label("Allowed IPs")
    await expect(dialog.get_by_text(refusal["message"], exact=True)).to_be_visible()
    await expect(ips).to_have_attribute("aria-invalid", "true")
    await expect(ips).to_have_accessible_description(re.compile(re.escape(refusal["message"])))
    await expect(ips).to_be_focused()
    await expect(dialog).to_be_visible()
    assert (await api_json(await admin.get("/admin/api/keys")))["keys"] == []


async def test_key_detail_reveals_value_as_often_as_asked(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """Reveal shows the full value, Hide masks it again, and each reveal is a history event."""
    key = await create_key(admin, "reveal-me", permissions={"get": True})
    await panel.sign_in()
    await panel.open_key(key["id"])
    page = panel.page
    value = page.locator("#key-value")

    await expect(value).to_have_text(key["maskedValue"])
    await page.get_by_role("button", name="Reveal", exact=True).click()
    await expect(value).to_have_text(key["value"])
    await page.get_by_role("button", name="Hide", exact=True).click()
    await expect(value).to_have_text(key["maskedValue"])
    await page.get_by_role("button", name="Reveal", exact=True).click()
    await expect(value).to_have_text(key["value"])

    history = await api_json(await admin.get(f"/admin/api/keys/{key['id']}/history"))
    assert [event["action"] for event in history["events"]] == ["revealed", "revealed", "created"]


async def test_key_detail_saves_only_changed_fields(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """Save sends a PATCH of the changed fields alone, and the API keeps them."""
    key = await create_key(
        admin,
        "edit-me",
        permissions={"get": True},
        notValidAfter="2099-01-10T17:00:00Z",
        allowedIps=["10.0.0.0/8"],
    )
    await panel.sign_in()
    patches = bodies_of(panel, "PATCH", f"/admin/api/keys/{key['id']}")
    await panel.open_key(key["id"])
    form = panel.page.locator("#edit-form")

    await expect(form.get_by_label("Not valid after", exact=True)).to_have_value("2099-01-10T18:00")
    await form.get_by_label("Get Shares", exact=True).uncheck()
    await form.get_by_label("Delete Shares", exact=True).check()
    await form.get_by_label("Not valid before", exact=True).fill("2025-03-01T08:00")
    await form.get_by_label("Not valid after", exact=True).fill("2099-08-01T20:15")
    await expect(panel.page.get_by_text("Unsaved changes")).to_be_visible()
    await form.get_by_role("button", name="Save").click()
    await expect(panel.page.get_by_text("Saved edit-me")).to_be_visible()

    assert patches == [
        {
            "permissions": {"get": False, "delete": True},
            "notValidBefore": "2025-03-01T07:00:00Z",
            "notValidAfter": "2099-08-01T18:15:00Z",
        }
    ]
    stored = await api_json(await admin.get(f"/admin/api/keys/{key['id']}"))
    assert stored["permissions"] == {
        "get": False,
        "list": False,
        "create": False,
        "update": False,
        "delete": True,
    }
    assert (stored["notValidBefore"], stored["notValidAfter"], stored["allowedIps"]) == (
        "2025-03-01T07:00:00Z",
        "2099-08-01T18:15:00Z",
        ["10.0.0.0/8"],
    )
    await expect(panel.page.locator("#edit-dirty")).to_have_text("")


async def test_history_view_lists_changes_old_to_new(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """The history dialog shows who changed what and when, newest first, old value to new."""
    key = await create_key(
        admin, "audited", permissions={"get": True}, notValidAfter="2099-01-10T17:00:00Z"
    )
    change = {"permissions": {"list": True}, "notValidAfter": "2099-07-01T10:00:00Z"}
    await api_json(await admin.patch(f"/admin/api/keys/{key['id']}", json=change))
    events = (await api_json(await admin.get(f"/admin/api/keys/{key['id']}/history")))["events"]
    await panel.sign_in()
    await panel.open_key(key["id"])
    page = panel.page
    await page.get_by_role("button", name="View Configuration History").click()

    dialog = page.get_by_role("dialog", name="Configuration History")
    shown = dialog.locator(".event")
    await expect(shown).to_have_count(2)
    newest = shown.nth(0)
    await expect(newest.locator(".pill-action")).to_have_text("Updated")
    await expect(newest.locator(".event-actor")).to_have_text("by ops")
    await expect(newest.locator(".event-head time")).to_have_attribute("datetime", events[0]["at"])
    rows = {
        field: await newest.locator("tbody tr", has_text=field).locator("td").all_inner_texts()
        for field in ("Permissions", "Not valid after")
    }
    assert rows == {
        "Permissions": ["get", "→", "get, list"],
        "Not valid after": ["10 Jan 2099, 18:00", "→", "1 Jul 2099, 12:00"],
    }
    await expect(shown.nth(1).locator(".pill-action")).to_have_text("Created")
    await panel.screenshot("history")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()


async def test_usage_chart_reflects_allowed_and_denied_requests(
    panel: Panel, admin: aiohttp.ClientSession, public: aiohttp.ClientSession
) -> None:
    """After traffic, the chart's summary and bars match the API's hourly buckets."""
    key = await create_key(admin, "busy", permissions={"get": True})
    auth = {"Authorization": f"Bearer {key['value']}"}
    statuses = [(await public.get(UNKNOWN_SHARE, headers=auth)).status for _ in range(3)]
    statuses += [(await public.delete(UNKNOWN_SHARE, headers=auth)).status for _ in range(2)]
    assert statuses == [404, 404, 404, 403, 403]
    buckets = (await api_json(await admin.get(f"/admin/api/keys/{key['id']}/usage")))["buckets"]
    allowed = sum(bucket["allowed"] for bucket in buckets)
    denied = sum(bucket["denied"] for bucket in buckets)
    assert (len(buckets), allowed, denied) == (168, 3, 2)

    await panel.sign_in()
    await panel.open_key(key["id"])
    page = panel.page
    summary = f"{allowed} allowed, {denied} denied in the last 7 days"
    await expect(page.locator("#usage-totals")).to_have_text(summary)
    chart = page.get_by_role("img", name=summary)
    await expect(chart).to_be_visible()
    busy_hours = sum(1 for bucket in buckets if bucket["allowed"])
    await expect(chart.locator("rect.bar-allowed")).to_have_count(busy_hours)
    await expect(chart.locator("rect.bar-denied")).to_have_count(
        sum(1 for bucket in buckets if bucket["denied"])
    )
    heights = await chart.locator("rect.bar-allowed, rect.bar-denied").evaluate_all(
        "bars => bars.map(bar => bar.getBBox().height)"
    )
    assert all(height > 0 for height in heights)
    await expect(page.get_by_text("Allowed", exact=True)).to_be_visible()
    await expect(page.get_by_text("Denied", exact=True)).to_be_visible()
    await expect(page.locator("#fact-usage")).to_have_text("3")
    await expect(page.locator("#fact-denied")).to_have_text("2")
    await panel.screenshot("usage-chart", full_page=True)


async def test_rotate_shows_new_value_and_keeps_old_for_grace(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """Rotate sends the chosen grace period and shows the new value once, like creation."""
    key = await create_key(admin, "rotating", permissions={"get": True})
    await panel.sign_in()
    rotations = bodies_of(panel, "POST", f"/admin/api/keys/{key['id']}/rotate")
    await panel.open_key(key["id"])
    page = panel.page

    await page.get_by_role("button", name="Rotate", exact=True).click()
    dialog = page.get_by_role("dialog", name="Rotate key")
    await dialog.get_by_label("Previous value keeps working for").select_option(label="1 hour")
    await dialog.get_by_role("button", name="Rotate", exact=True).click()
    secret = page.locator("#secret-dialog")
    await expect(secret).to_be_visible()
    new_value = await secret.locator("#secret-value").inner_text()
    await expect(secret).to_contain_text("The previous value keeps working until")

    assert rotations == [{"gracePeriodSeconds": 3600}]
    assert new_value != key["value"]
    revealed = await api_json(await admin.post(f"/admin/api/keys/{key['id']}/reveal"))
    assert revealed == {"value": new_value}
    stored = await api_json(await admin.get(f"/admin/api/keys/{key['id']}"))
    until = datetime.fromisoformat(stored["previousValidUntil"])
    assert abs(until - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)
    await secret.get_by_role("button", name="Done").click()
    await expect(page.locator("#key-value")).to_have_text(stored["maskedValue"])


async def test_delete_asks_for_confirmation_first(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """Delete opens a confirmation dialog; Escape keeps the key, confirming deletes it."""
    key = await create_key(admin, "doomed")
    await panel.sign_in()
    await panel.open_key(key["id"])
    page = panel.page

    await page.get_by_role("button", name="Delete", exact=True).click()
    confirm = page.get_by_role("alertdialog", name="Delete key?")
    await expect(confirm).to_contain_text("doomed stops working at once")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(confirm).to_be_hidden()
    assert (await admin.get(f"/admin/api/keys/{key['id']}")).status == 200

    await page.get_by_role("button", name="Delete", exact=True).click()
    await confirm.get_by_role("button", name="Delete Key").click()
    await expect(page).to_have_url(re.compile(r"#/keys$"))
    await expect(page.locator("#keys-table").get_by_role("link", name="doomed")).to_have_count(0)
    gone = await api_json(await admin.get(f"/admin/api/keys/{key['id']}"), 404)
    assert gone["error"] == "NOT_FOUND"


async def test_key_names_render_as_text(panel: Panel, admin: aiohttp.ClientSession) -> None:
    """A name and description that look like HTML show as text and run nothing."""
    name = "<img src=x onerror=alert(1)>"
    key = await create_key(admin, name, description="<script>alert(2)</script>")
    opened: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        opened.append(dialog.message)

    panel.page.on("dialog", on_dialog)
    await panel.sign_in()
    page = panel.page

    await expect(page.locator("#keys-table").get_by_role("link", name=name)).to_have_text(name)
    await panel.open_key(key["id"])
    await expect(page.locator("#key-title")).to_have_text(name)
    await page.get_by_role("button", name="View Configuration History").click()
    await expect(page.locator("#history-list")).to_contain_text(name)
    assert await page.locator("main img, dialog img, main script, dialog script").count() == 0
    assert opened == []


async def test_dialogs_work_from_the_keyboard(panel: Panel) -> None:
    """The create dialog opens with Enter, keeps Tab inside, and Escape returns focus."""
    await panel.sign_in()
    page = panel.page
    create = page.get_by_role("button", name="Create New API Key")
    await create.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create New API Key")
    await expect(dialog.get_by_label("Key Name", exact=True)).to_be_focused()

    inside = []
    for _ in range(30):
        await page.keyboard.press("Tab")
        inside.append(await page.evaluate("document.activeElement.closest('dialog') !== null"))
    assert all(inside)
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(create).to_be_focused()


async def test_panel_fits_a_narrow_window(panel: Panel, admin: aiohttp.ClientSession) -> None:
    """At 400 px the page does not scroll sideways; the keys table scrolls in its card."""
    for name in ("ci-deploy", "nightly-backup", "reporting"):
        await create_key(admin, name, permissions={"get": True, "list": True})
    await panel.page.set_viewport_size({"width": 400, "height": 800})
    await panel.sign_in()
    page = panel.page

    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.querySelector('.table-scroll')"
        ".scrollWidth, document.querySelector('.table-scroll').clientWidth]"
    )
    assert widths[0] <= 400
    assert widths[1] > widths[2]
    await expect(page.get_by_role("button", name="Create New API Key")).to_be_in_viewport()
    await panel.screenshot("keys-tab-narrow")

    key_id = await page.locator("#keys-table tbody tr").first.get_attribute("data-key-id")
    assert key_id is not None
    await panel.open_key(key_id)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 400
    await panel.screenshot("key-detail-narrow", full_page=True)


async def test_panel_runs_without_console_errors(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """Signing in, creating a key and opening its views logs no console error."""
    await panel.sign_in()
    page = panel.page
    await page.get_by_role("button", name="Create New API Key").click()
    dialog = page.locator("#create-dialog")
    await dialog.get_by_label("Key Name", exact=True).fill("quiet")
    await dialog.get_by_role("button", name="Create Key").click()
    await page.locator("#secret-dialog").get_by_role("button", name="Done").click()
    await page.locator("#keys-table").get_by_role("link", name="quiet").click()
    await expect(page.locator("#usage-chart svg")).to_be_visible()
    await page.get_by_role("button", name="View Configuration History").click()
    await expect(page.locator("#history-list .event")).to_have_count(1)
    await page.keyboard.press("Escape")
    await page.get_by_role("link", name="Using keys").click()
    await expect(page.get_by_role("heading", name="Using keys")).to_be_visible()

    assert panel.console_errors == []


async def test_rate_limit_is_shown_edited_and_cleared_in_the_panel(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """The table and the detail show a key's limit; Save sends the new one, or null, alone."""
    key = await create_key(
        admin, "limited", permissions={"get": True}, rateLimit={"requests": 100, "perSeconds": 60}
    )
    await panel.sign_in()
    page = panel.page
    chip = page.locator("#keys-table tr", has_text="limited").locator(".chip-limit")
    await expect(chip).to_have_text("100/60s")
    await expect(chip).to_have_attribute("title", "Rate limit: at most 100 requests per 60 s")
    await panel.screenshot("keys-tab-rate-limit")

    patches = bodies_of(panel, "PATCH", f"/admin/api/keys/{key['id']}")
    await panel.open_key(key["id"])
    form = page.locator("#edit-form")
    requests, window = (
        form.get_by_label("Requests", exact=True),
        form.get_by_label("Window (seconds)", exact=True),
    )
    await expect(requests).to_have_value("100")
    await expect(window).to_have_value("60")
    await requests.fill("5")
    await window.fill("1")
    await form.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved limited")).to_be_visible()
    changed = await api_json(await admin.get(f"/admin/api/keys/{key['id']}"))

    await requests.fill("")
    await window.fill("")
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator("#edit-dirty")).to_have_text("")
    cleared = await api_json(await admin.get(f"/admin/api/keys/{key['id']}"))

    assert patches == [{"rateLimit": {"requests": 5, "perSeconds": 1}}, {"rateLimit": None}]
    assert changed["rateLimit"] == {"requests": 5, "perSeconds": 1}
    assert cleared["rateLimit"] is None
    await page.get_by_role("button", name="View Configuration History").click()
    rows = page.locator("#history-list tbody tr[data-field='rateLimit']")
    await expect(rows.nth(0).locator("td")).to_have_text(["5 requests per 1 s", "→", "none"])
    await expect(rows.nth(1).locator("td")).to_have_text(
        ["100 requests per 60 s", "→", "5 requests per 1 s"]
    )


async def test_create_dialog_shows_a_refused_rate_limit_inline(
    panel: Panel, admin: aiohttp.ClientSession
) -> None:
    """A window the API refuses shows its message under the rate limit, on the field at fault."""
    await panel.sign_in()
    page = panel.page
    await page.get_by_role("button", name="Create New API Key").click()
    dialog = page.locator("#create-dialog")
    await dialog.get_by_label("Key Name", exact=True).fill("too-long-window")
    await dialog.get_by_label("Requests", exact=True).fill("10")
    await dialog.get_by_label("Window (seconds)", exact=True).fill("86401")
    await dialog.get_by_role("button", name="Create Key").click()

    window = dialog.get_by_label("Window (seconds)", exact=True)
    message = "rateLimit.perSeconds: must be an integer from 1 to 86400, found 86401"
    await expect(dialog.get_by_text(message, exact=True)).to_be_visible()
    await expect(window).to_have_attribute("aria-invalid", "true")
    await expect(window).to_be_focused()
    assert (await api_json(await admin.get("/admin/api/keys")))["keys"] == []
