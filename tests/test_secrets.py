"""A whole session, then a search of logs, answers and store files for any secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.processes import ADMIN_TOKEN, SECRET_KEY, GatewayProcess, free_port, wait_for_port

UPSTREAM_KEY = "upstream-key-that-must-stay-hidden-42"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[str]:
    """`share-gateway backend` in its own process, with a known bearer key."""
    folder = tmp_path / "backend"
    folder.mkdir()
    (folder / "key").write_text(UPSTREAM_KEY)
    port = free_port()
    log = (folder / "backend.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "backend",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            str(folder / "shares.db"),
            "--api-key-file",
            str(folder / "key"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    log.close()
    wait_for_port("127.0.0.1", port, process, 15)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


async def test_no_secret_in_logs_answers_or_store(
    gateway_process: Callable[..., GatewayProcess], backend: str
) -> None:
    """Create, use, reveal, download, rotate, delete and bad keys leak nothing anywhere."""
    process = gateway_process(
        {
            "upstream": {"url": backend, "api_key": UPSTREAM_KEY},
            "logging": {"level": "debug"},
        }
    )
    answers: list[bytes] = []
    values: list[str] = []

    async with aiohttp.ClientSession() as session:

        async def call(method: str, url: str, **kwargs: object) -> aiohttp.ClientResponse:
            response = await session.request(method, url, **kwargs)  # type: ignore[arg-type]
            answers.append(await response.read())
            answers.append(str(response.headers).encode())
            return response

        admin = process.admin_headers
        keys = process.admin_url + "/admin/api/keys"
        created = await (
            await session.post(
                keys, json={"name": "s", "permissions": {"create": True}}, headers=admin
            )
        ).json()
        values.append(created["value"])
        key_url = f"{keys}/{created['id']}"
        auth = {"Authorization": f"Bearer {created['value']}"}

        await call(
            "POST", process.public_url + "/webapi/share", json={"contentId": "1"}, headers=auth
        )
        await call("GET", process.public_url + "/webapi/share/nope", headers=auth)
        await call("POST", f"{key_url}/reveal", headers=admin)
        await call("GET", f"{key_url}/download", headers=admin)
        rotated = await (await session.post(f"{key_url}/rotate", headers=admin)).json()
        values.append(rotated["value"])
        for bad in (created["value"][:-1] + "x", "cfe" + "A" * 38, "garbage", ""):
            await call(
                "GET",
                process.public_url + "/webapi/share",
                headers={"Authorization": f"Bearer {bad}"},
            )
        await call("GET", keys, headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
        await call("DELETE", key_url, headers=admin)
        await call(
            "POST",
            process.public_url + "/webapi/share",
            json={"contentId": "1"},
            headers={"Authorization": f"Bearer {rotated['value']}"},
        )
    process.stop()

    logs = process.logs().encode()
    stored = b"".join(p.read_bytes() for p in process.folder.glob("gateway.db*"))
    relayed = b"".join(answers)
    assert b"gateway.access" in logs and len(stored) > 0
    for secret in [*values, ADMIN_TOKEN, UPSTREAM_KEY, SECRET_KEY]:
        assert secret.encode() not in logs, secret
        assert secret.encode() not in stored, secret
    for secret in [ADMIN_TOKEN, UPSTREAM_KEY, SECRET_KEY]:
        assert secret.encode() not in relayed, secret
    # The reveal and download answers carry the value by design; nothing else does.
    assert relayed.count(values[0].encode()) == 2
