"""The admin panel in headless Chromium, driven by Playwright, against an in-process gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from gateway.app import Gateway
from tests.processes import ADMIN_TOKEN

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# A zone an hour or two east of UTC, so that a missed local-to-UTC conversion shows.
TIMEZONE = "Europe/Berlin"
DESKTOP = ViewportSize(width=1280, height=800)


@dataclass
class Panel:
    """A browser tab on the admin panel, with what its console reported."""

    page: Page
    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def sign_in(self, token: str = ADMIN_TOKEN) -> None:
        """Open the panel and sign in; returns once the keys table is shown."""
        await self.page.goto(self.url + "/")
        await self.page.get_by_label("Admin token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.get_by_role("heading", name="API Keys", exact=True)).to_be_visible()

    async def open_key(self, key_id: str) -> None:
        """Show a key's detail view, waiting until its usage chart is drawn."""
        await self.page.goto(f"{self.url}/#/keys/{key_id}")
        await expect(self.page.locator("#usage-chart svg")).to_be_visible()

    async def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.mouse.move(0, 0)  # no hover effects in the picture
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def chromium() -> Path:
    """The system's Chromium; a missing browser fails the test rather than skipping it."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Headless Chromium, driven by Playwright without its own browser downloads."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@pytest.fixture
async def panel(browser: Browser, gateway: Gateway) -> AsyncIterator[Panel]:
    """A fresh browser context on the gateway's admin listener, signed out."""
    context = await browser.new_context(
        viewport=DESKTOP,
        timezone_id=TIMEZONE,
        locale="en-GB",
        permissions=["clipboard-read", "clipboard-write"],
        accept_downloads=True,
    )
    page = await context.new_page()
    opened = Panel(page, gateway.admin_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            opened.console_errors.append(message.text)

    def on_page_error(error: Error) -> None:
        opened.page_errors.append(str(error))

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    yield opened
    await context.close()
    assert opened.page_errors == []


async def create_key(client: aiohttp.ClientSession, name: str, **fields: Any) -> dict[str, Any]:
    """A key made through the admin API, with its value."""
    response = await client.post("/admin/api/keys", json={"name": name, **fields})
    assert response.status == 201, await response.text()
    key: dict[str, Any] = await response.json()
    return key


async def api_json(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    """The JSON body of an admin API answer, after checking its status."""
    assert response.status == status, await response.text()
    return await response.json()
