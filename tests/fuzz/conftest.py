"""A real gateway process to fuzz, and a tally of the cases each fuzz test ran."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.processes import GatewayProcess
from tests.proxy.wire import ALL

CASES: Counter[str] = Counter()
"""Cases run per fuzz test, for the summary at the end of the run."""


@dataclass(frozen=True)
class FuzzTarget:
    """A running gateway on the embedded backend, with an all-permission admin key."""

    process: GatewayProcess
    key_id: str
    key_value: str

    @property
    def public_port(self) -> int:
        return self.process.public_port

    @property
    def admin_port(self) -> int:
        return self.process.admin_port

    @property
    def key_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_value}"}

    def admin_call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """One admin API call with the admin token; the status and the JSON answer."""
        return _call(self.admin_port, method, path, self.process.admin_headers, body)

    def share_call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """One share call with the all-permission key; the status and the JSON answer."""
        return _call(self.public_port, method, path, self.key_auth, body)

    def new_key(self) -> str:
        """A fresh key's id, for a case that should reach an existing key."""
        status, body = self.admin_call("POST", "/admin/api/keys", {"name": "fuzzed"})
        assert status == 201, body
        return str(body["id"])

    def new_share(self) -> str:
        """A fresh share's uuid, for a case that should reach an existing share."""
        status, body = self.share_call("POST", "/webapi/share", {"contentId": 1, "spaceKey": "F"})
        assert status == 201, body
        return str(body["uuid"])


def _call(
    port: int, method: str, path: str, headers: dict[str, str], body: object
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {**headers, "Content-Type": "application/json"} if data else headers
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        connection.close()


@pytest.fixture(scope="module")
def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    """One gateway process for a whole fuzz module: starting one per case would be the test.

    A module may set GATEWAY_OVERRIDES to config sections of its own.
    """
    overrides = getattr(request.module, "GATEWAY_OVERRIDES", None)
    process = GatewayProcess(tmp_path_factory.mktemp("fuzz"), overrides).start()
    try:
        status, body = _call(
            process.admin_port,
            "POST",
            "/admin/api/keys",
            process.admin_headers,
            {"name": "fuzz", "permissions": ALL, "admin": True},
        )
        assert status == 201, body
        yield FuzzTarget(process, body["id"], body["value"])
        # Nothing the fuzzing sent may have been an error of the gateway's own.
        lines = process.logs().splitlines()
        errors = [line for line in lines if '"level": "error"' in line or "Traceback" in line]
        assert errors == [], "\n".join(errors[:5])
    finally:
        process.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES:
        terminalreporter.section("fuzz cases run")
        for name, count in sorted(CASES.items()):
            terminalreporter.write_line(f"{name}: {count}")
        terminalreporter.write_line(f"total: {sum(CASES.values())}")
