"""Fixtures for the request path: a gateway in front of the recording upstream."""

from __future__ import annotations

import pytest

from tests.proxy.wire import Proxy, StartProxy
from tests.upstreams import RecordingUpstream


@pytest.fixture
async def proxy(start_proxy: StartProxy, upstream: RecordingUpstream) -> Proxy:
    """A gateway in front of the recording upstream, trusting no proxies."""
    return await start_proxy(upstream=upstream.config(timeout_s=5, connect_timeout_s=1))
