"""Running it for months: reload on SIGHUP and backups taken while it serves."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.processes import GatewayProcess


async def create_key(process: GatewayProcess, **fields: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=process.admin_headers) as session:
        response = await session.post(
            process.admin_url + "/admin/api/keys", json={"name": "k", **fields}
        )
        assert response.status == 201, await response.text()
        key: dict[str, Any] = await response.json()
        return key


async def create_share(process: GatewayProcess, value: str, forwarded_for: str) -> int:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            process.public_url + "/webapi/share",
            json={"contentId": "1"},
            headers={"Authorization": f"Bearer {value}", "X-Forwarded-For": forwarded_for},
        )
        return response.status


def rewrite(process: GatewayProcess, text: str | None = None, **changes: Any) -> None:
    """Write a new config file for the process, then send it SIGHUP."""
    if text is None:
        for section, values in changes.items():
            process.config[section] = {**process.config.get(section, {}), **values}
        text = yaml.safe_dump(process.config)
    process.config_path.write_text(text, encoding="utf-8")
    assert process.process is not None
    process.process.send_signal(signal.SIGHUP)


def wait_for_log(process: GatewayProcess, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = process.logs()
        if needle in logs:
            return logs
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never logged:\n{process.logs()}")


async def test_sighup_applies_a_new_trusted_proxy_list(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """After SIGHUP, X-Forwarded-For from the newly trusted peer is believed; same process."""
    process = gateway_process()
    assert process.process is not None
    pid = process.process.pid
    key = await create_key(process, permissions={"create": True}, allowedIps=["203.0.113.5"])

    before = await create_share(process, key["value"], "203.0.113.5")
    rewrite(process, server={"trusted_proxies": ["127.0.0.1/32"]})
    wait_for_log(process, '"reloaded ')
    after = await create_share(process, key["value"], "203.0.113.5")

    assert (before, after) == (403, 201)
    assert process.process.pid == pid and process.process.poll() is None


async def test_sighup_with_an_invalid_file_changes_nothing(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """A file that does not load is refused with the reason logged; the old settings stay."""
    process = gateway_process({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
    key = await create_key(process, permissions={"create": True}, allowedIps=["203.0.113.5"])

    rewrite(process, text="server:\n  trusted_proxies: [not-a-cidr]\n")
    logs = wait_for_log(process, "reload refused")
    status = await create_share(process, key["value"], "203.0.113.5")

    assert "server.trusted_proxies[0]" in logs
    assert status == 201
    assert process.process is not None and process.process.poll() is None


async def test_sighup_names_settings_that_need_a_restart(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """A changed listen address is named in a warning and the old one keeps serving."""
    process = gateway_process()
    key = await create_key(process, permissions={"create": True})

    rewrite(process, server={"listen": "127.0.0.1:1"})
    logs = wait_for_log(process, "need a restart")
    line = next(json.loads(x) for x in logs.splitlines() if "need a restart" in x)

    assert line["level"] == "warning"
    assert line["message"].endswith("server.listen")
    assert await create_share(process, key["value"], "") == 201


async def test_sighup_swaps_admin_tokens(gateway_process: Callable[..., GatewayProcess]) -> None:
    """A reloaded token list lets the new token in and keeps the removed one out."""
    process = gateway_process()
    new_token = "rotated-admin-token-0123456789"

    rewrite(process, admin={"tokens": [{"name": "ops2", "token": new_token}]})
    wait_for_log(process, '"reloaded ')
    async with aiohttp.ClientSession() as session:
        url = process.admin_url + "/admin/api/keys"
        old = await session.get(url, headers=process.admin_headers)
        new = await session.get(url, headers={"Authorization": f"Bearer {new_token}"})

    assert (old.status, new.status) == (401, 200)
    assert new_token not in process.logs()


async def test_backup_under_load_restores_to_a_working_store(
    gateway_process: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """A backup taken while requests flow opens as a store with every key, value and event."""
    process = gateway_process()
    keys = [await create_key(process, name=f"k{n}", permissions={"create": True}) for n in range(5)]
    backup = tmp_path / "backup.db"

    async def traffic() -> None:
        for _ in range(40):
            await create_share(process, keys[0]["value"], "")

    load = asyncio.create_task(traffic())
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "gateway",
            "backup",
            str(backup),
            "--config",
            str(process.config_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    await load
    process.stop()

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(backup, restored / "gateway.db")
    again = GatewayProcess(restored, {"store": {"url": f"sqlite:///{restored}/gateway.db"}})
    again.start()
    try:
        async with aiohttp.ClientSession(headers=again.admin_headers) as session:
            listed = await (await session.get(again.admin_url + "/admin/api/keys")).json()
            reveal = await session.post(again.admin_url + f"/admin/api/keys/{keys[4]['id']}/reveal")
            revealed = await reveal.json()
        status = await create_share(again, keys[4]["value"], "")
    finally:
        again.stop()

    assert result.returncode == 0, result.stderr
    assert [k["name"] for k in listed["keys"]] == [f"k{n}" for n in range(5)]
    assert revealed == {"value": keys[4]["value"]}
    assert status == 201
    assert not (tmp_path / "backup.db-wal").exists()


def test_backup_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing target is refused with exit code 3 and no traceback."""
    store = tmp_path / "data" / "gateway.db"
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{store}"}}))
    subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "--config", str(config), "list"], check=True
    )
    target = tmp_path / "exists.db"
    target.write_text("keep me")

    result = subprocess.run(
        [sys.executable, "-m", "gateway", "backup", str(target), "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 3
    assert "exists" in result.stderr and "Traceback" not in result.stderr
    assert target.read_text() == "keep me"
