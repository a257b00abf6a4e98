"""Fixtures for the request path: a recording upstream and gateways in front of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import test_settings
from tests.processes import ADMIN_TOKEN
from tests.proxy.wire import Proxy, StartProxy
from tests.upstreams import RecordingUpstream


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    """A recording upstream that answers 200 {"ok": true} until told otherwise."""
    with RecordingUpstream() as server:
        yield server


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[StartProxy]:
    """Start in-process gateways with the given config sections; all stop at the end."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(**sections: dict[str, Any]) -> Proxy:
            nonlocal count
            count += 1
            folder = tmp_path / f"gateway-{count}"
            folder.mkdir()
            gateway = Gateway(test_settings(folder, **sections))
            await gateway.start()
            stack.push_async_callback(gateway.stop)
            public = await stack.enter_async_context(
                aiohttp.ClientSession(base_url=gateway.public_url)
            )
            admin = await stack.enter_async_context(
                aiohttp.ClientSession(
                    base_url=gateway.admin_url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
            )
            return Proxy(public, admin, gateway)

        yield start


@pytest.fixture
async def proxy(start_proxy: StartProxy, upstream: RecordingUpstream) -> Proxy:
    """A gateway in front of the recording upstream, trusting no proxies."""
    return await start_proxy(upstream=upstream.config(timeout_s=5, connect_timeout_s=1))
