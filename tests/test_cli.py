"""The share-gateway command, run as a user would, in its own process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.processes import SECRET_KEY, GatewayProcess, wait_for_port


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """share-gateway ARGS, from `folder`, capturing what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def ok(folder: Path, *args: str) -> str:
    result = run(folder, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        yaml.safe_dump(
            {"store": {"url": f"sqlite:///{tmp_path}/data/gateway.db", "secret_key": SECRET_KEY}}
        ),
        encoding="utf-8",
    )
    return path


def create(folder: Path, config: Path, *options: str) -> tuple[str, str]:
    """Create a key; answer its value and id."""
    value = ok(folder, "keys", "--config", str(config), "create", *options).strip()
    listed = json.loads(ok(folder, "keys", "--config", str(config), "list", "--json"))
    return value, listed["keys"][-1]["id"]


def test_keys_create_prints_only_the_value(tmp_path: Path, config: Path) -> None:
    """keys create prints the new value on stdout, and the id on stderr."""
    result = run(tmp_path, "keys", "--config", str(config), "create", "--name", "ci")

    assert result.returncode == 0
    assert result.stdout.startswith("cfe") and len(result.stdout.strip()) == 41
    assert "created key" in result.stderr


def test_keys_create_takes_every_field(tmp_path: Path, config: Path) -> None:
    """Every option of keys create lands in the key."""
    _, key_id = create(
        tmp_path,
        config,
        "--name",
        "deploy",
        "--allow",
        "get,list",
        "--admin",
        "--not-before",
        "2026-01-01T00:00:00Z",
        "--not-after",
        "2027-01-01T00:00:00Z",
        "--ip",
        "10.0.0.0/8",
        "--ip",
        "2001:db8::/32,192.0.2.1-192.0.2.9",
        "--description",
        "from the CLI",
        "--rate-limit",
        "100/60",
    )

    key = json.loads(ok(tmp_path, "keys", "--config", str(config), "show", key_id, "--json"))

    assert {name: key[name] for name in key if name not in ("id", "createdAt", "updatedAt")} == {
        "name": "deploy",
        "maskedValue": key["maskedValue"],
        "permissions": {
            "get": True,
            "list": True,
            "create": False,
            "update": False,
            "delete": False,
        },
        "admin": True,
        "notValidBefore": "2026-01-01T00:00:00Z",
        "notValidAfter": "2027-01-01T00:00:00Z",
        "allowedIps": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1-192.0.2.9"],
        "description": "from the CLI",
        "rateLimit": {"requests": 100, "perSeconds": 60},
        "createdBy": "cli",
        "usageCount": 0,
        "deniedCount": 0,
        "lastUsedAt": None,
        "previousValidUntil": None,
    }


def test_keys_update_reveal_download_history_delete(tmp_path: Path, config: Path) -> None:
    """The key life cycle from the CLI, recorded with the actor `cli`."""
    value, key_id = create(tmp_path, config, "--name", "ci", "--allow", "get")
    cfg = ("keys", "--config", str(config))

    updated = json.loads(ok(tmp_path, *cfg, "update", key_id, "--allow", "get,delete"))
    revealed = ok(tmp_path, *cfg, "reveal", key_id).strip()
    ok(tmp_path, *cfg, "download", key_id, "--output", str(tmp_path / "ci.key"))
    ok(tmp_path, *cfg, "delete", key_id)
    events = json.loads(ok(tmp_path, *cfg, "history", key_id))["events"]

    assert updated["permissions"]["delete"] is True
    assert revealed == value
    assert (tmp_path / "ci.key").read_text() == value + "\n"
    assert (tmp_path / "ci.key").stat().st_mode & 0o777 == 0o600
    assert [(e["action"], e["actor"]) for e in events] == [
        ("deleted", "cli"),
        ("downloaded", "cli"),
        ("revealed", "cli"),
        ("updated", "cli"),
        ("created", "cli"),
    ]
    assert events[3]["changes"] == [
        {
            "field": "permissions",
            "old": {"get": True, "list": False, "create": False, "update": False, "delete": False},
            "new": {"get": True, "list": False, "create": False, "update": False, "delete": True},
        }
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("create", "--name", ""), 1, "name: must be 1 to 40 characters"),
        (("create", "--name", "x", "--allow", "get,share"), 1, "permissions.share"),
        (("create", "--name", "x", "--ip", "10.0.0.300"), 1, "allowedIps[0]"),
        (("create", "--name", "x", "--not-before", "soon"), 1, "notValidBefore"),
        (("create", "--name", "x", "--rate-limit", "100"), 1, "rateLimit: must be REQUESTS/"),
        (("create", "--name", "x", "--rate-limit", "0/60"), 1, "rateLimit.requests: must be"),
        (("create", "--name", "x", "--rate-limit", "5/86401"), 1, "rateLimit.perSeconds: must"),
        (("show", "no-such-id"), 1, "no key with id 'no-such-id'"),
        (("delete", "no-such-id"), 1, "no key with id 'no-such-id'"),
        (("frobnicate",), 2, "invalid choice"),
    ],
)
def test_keys_errors_exit_non_zero_without_traceback(
    tmp_path: Path, config: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    """A refused command prints one clear line and exits with its code."""
    result = run(tmp_path, "keys", "--config", str(config), *args)

    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_without_config_use_the_embedded_default_folder(tmp_path: Path) -> None:
    """With no config the CLI keeps keys in ./share-gateway-data, owner-only secrets."""
    value = ok(tmp_path, "keys", "create", "--name", "local").strip()
    listed = json.loads(ok(tmp_path, "keys", "list", "--json"))

    data = tmp_path / "share-gateway-data"
    assert [k["maskedValue"] for k in listed["keys"]] == [f"{value[:3]}****{value[-3:]}"]
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700


def test_keys_list_prints_a_table(tmp_path: Path, config: Path) -> None:
    """keys list without --json prints a header and a row per key."""
    value, key_id = create(tmp_path, config, "--name", "ci", "--allow", "get,list")

    lines = ok(tmp_path, "keys", "--config", str(config), "list").splitlines()

    masked = f"{value[:3]}****{value[-3:]}"
    assert lines[0].split() == [
        *("ID", "NAME", "KEY", "PERMISSIONS", "RATE", "LIMIT", "USAGE", "LAST", "USED")
    ]
    assert lines[1].split() == [key_id, "ci", masked, "get,list", "-", "0", "-"]


async def test_serve_with_no_config_is_usable_from_the_cli(tmp_path: Path) -> None:
    """The quickstart: serve with no config, a CLI key, then the admin API shows it."""
    process = GatewayProcess(tmp_path)
    process.config = {}
    # The embedded default listens on fixed ports; run it through the same
    # code path but on free ports by giving only the listen addresses.
    process.config = {
        "server": {"listen": f"127.0.0.1:{process.public_port}"},
        "admin": {"listen": f"127.0.0.1:{process.admin_port}"},
    }
    process.start()
    try:
        value = ok(tmp_path, "keys", "create", "--name", "quick", "--allow", "get").strip()
        token = (tmp_path / "share-gateway-data" / "admin-token").read_text().strip()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            response = await session.get(process.admin_url + "/admin/api/keys")
            listed: dict[str, Any] = await response.json()
    finally:
        process.stop()

    assert response.status == 200
    assert [k["name"] for k in listed["keys"]] == ["quick"]
    assert value not in process.logs() and token not in process.logs()
    assert "share-gateway-data/admin-token" in process.logs()


def test_keys_rotate_prints_the_new_value(tmp_path: Path, config: Path) -> None:
    """keys rotate prints a new value that reveal then answers, and records `rotated`."""
    value, key_id = create(tmp_path, config, "--name", "ci")
    cfg = ("keys", "--config", str(config))

    rotated = ok(tmp_path, *cfg, "rotate", key_id, "--grace", "60").strip()
    revealed = ok(tmp_path, *cfg, "reveal", key_id).strip()
    events = json.loads(ok(tmp_path, *cfg, "history", key_id))["events"]

    assert rotated != value and rotated.startswith("cfe")
    assert revealed == rotated
    assert [e["action"] for e in events] == ["revealed", "rotated", "created"]


def test_keys_rate_limit_is_set_shown_and_cleared(tmp_path: Path, config: Path) -> None:
    """--rate-limit N/S sets a limit, list and show print it, '' clears it; history has both."""
    _, key_id = create(tmp_path, config, "--name", "ci", "--rate-limit", " 100 / 60 ")
    cfg = ("keys", "--config", str(config))

    listed = ok(tmp_path, *cfg, "list").splitlines()
    updated = json.loads(ok(tmp_path, *cfg, "update", key_id, "--rate-limit", "5/1"))
    shown = dict(line.split(None, 1) for line in ok(tmp_path, *cfg, "show", key_id).splitlines())
    cleared = json.loads(ok(tmp_path, *cfg, "update", key_id, "--rate-limit", ""))
    listed_json = json.loads(ok(tmp_path, *cfg, "list", "--json"))["keys"]
    events = json.loads(ok(tmp_path, *cfg, "history", key_id))["events"]

    assert listed[1].split()[4] == "100/60s"
    assert updated["rateLimit"] == {"requests": 5, "perSeconds": 1}
    assert shown["rateLimit"] == "5 requests per 1 s"
    assert cleared["rateLimit"] is None
    assert listed_json[0]["rateLimit"] is None
    assert [e["changes"] for e in events[:2]] == [
        [{"field": "rateLimit", "old": {"requests": 5, "perSeconds": 1}, "new": None}],
        [
            {
                "field": "rateLimit",
                "old": {"requests": 100, "perSeconds": 60},
                "new": {"requests": 5, "perSeconds": 1},
            }
        ],
    ]


def test_keys_show_prints_fields_for_people(tmp_path: Path, config: Path) -> None:
    """keys show without --json prints one aligned line per field."""
    _, key_id = create(tmp_path, config, "--name", "ci", "--allow", "get,list", "--ip", "::1")

    lines = ok(tmp_path, "keys", "--config", str(config), "show", key_id).splitlines()
    fields = dict(line.split(None, 1) for line in lines)

    assert fields["name"] == "ci"
    assert fields["permissions"] == "get,list"
    assert fields["allowedIps"] == "::1"
    assert fields["notValidAfter"] == "-"


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("serve",),
        ("check-config",),
        ("backend",),
        ("backup",),
        ("keys",),
        ("keys", "create"),
        ("keys", "rotate"),
    ],
)
def test_help_is_available_on_every_command(tmp_path: Path, command: tuple[str, ...]) -> None:
    """--help answers usage text and exit code 0 on every command."""
    result = run(tmp_path, *command, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: share-gateway")
    assert "example" in result.stdout


def test_keys_run_without_the_services_other_secrets(tmp_path: Path) -> None:
    """Key commands need only the store: unset admin and upstream secrets do not stop them."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "admin:\n  tokens:\n    - {name: ops, token: '${UNSET_ADMIN_TOKEN}'}\n"
        "upstream:\n  url: https://confluence.example.com\n  api_key: '${UNSET_UPSTREAM_KEY}'\n"
        f"store:\n  url: sqlite://{tmp_path}/data/gateway.db\n",
        encoding="utf-8",
    )

    listed = run(tmp_path, "keys", "--config", str(config), "list", "--json")
    checked = run(tmp_path, "check-config", str(config))

    assert (listed.returncode, json.loads(listed.stdout)) == (0, {"keys": []})
    assert checked.returncode == 2
    assert "UNSET_ADMIN_TOKEN" in checked.stderr


@pytest.mark.parametrize("setting", ["server", "admin"])
def test_serve_on_a_taken_port_names_the_setting(tmp_path: Path, setting: str) -> None:
    """A listen address already in use stops start-up with exit 2 and no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listens = {"server": "127.0.0.1:0", "admin": "127.0.0.1:0"}
        listens[setting] = f"127.0.0.1:{port}"
        path = tmp_path / "gateway.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "server": {"listen": listens["server"]},
                    "admin": {"listen": listens["admin"]},
                    "store": {"url": f"sqlite:///{tmp_path}/data/gateway.db"},
                }
            ),
            encoding="utf-8",
        )
        result = run(tmp_path, "serve", "--config", str(path))

    assert result.returncode == 2
    assert f"error: {setting}.listen: cannot listen on 127.0.0.1:{port}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_backend_alone_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """`share-gateway backend` answers with its own key and exits 0 on SIGTERM."""
    port = GatewayProcess(tmp_path).public_port
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "backend", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port("127.0.0.1", port, process, 15)
        key = (tmp_path / "share-gateway-data" / "backend-key").read_text().strip()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "GET", "/webapi/share?limit=1", headers={"Authorization": f"Bearer {key}"}
        )
        listed = json.loads(connection.getresponse().read())
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)

    assert listed == []
    assert process.returncode == 0, errors.decode()[-500:]
    assert b"Traceback" not in errors
