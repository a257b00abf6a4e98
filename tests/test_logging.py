"""Log lines: JSON one a line, access lines that tie to the answer, no secret anywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway.log import JsonFormatter, TextFormatter
from tests.processes import ADMIN_TOKEN, GatewayProcess


async def test_every_line_is_json_and_access_lines_carry_the_request_id(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """Each log line is a JSON object; the access line holds the id the client got."""
    process = gateway_process()
    async with aiohttp.ClientSession() as session:
        created = await session.post(
            process.admin_url + "/admin/api/keys",
            json={"name": "logged", "permissions": {"create": True}},
            headers=process.admin_headers,
        )
        key: dict[str, Any] = await created.json()
        response = await session.post(
            process.public_url + "/webapi/share",
            json={"contentId": "7"},
            headers={"Authorization": f"Bearer {key['value']}"},
        )
        request_id = response.headers["X-Request-Id"]
    process.stop()

    lines = [json.loads(line) for line in process.logs().splitlines() if line.strip()]
    access = [line for line in lines if line.get("request_id") == request_id]

    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert len(access) == 1
    assert {name: access[0][name] for name in ("logger", "key_id", "key_name", "status")} == {
        "logger": "gateway.access",
        "key_id": key["id"],
        "key_name": "logged",
        "status": 201,
    }
    assert access[0]["operation"] == "CREATE"
    assert access[0]["client"] == "127.0.0.1"
    assert isinstance(access[0]["latency_ms"], float)
    assert key["value"] not in process.logs() and ADMIN_TOKEN not in process.logs()


def test_text_format_puts_extra_fields_after_the_message() -> None:
    """The text format is one line: time, level, logger, message, then key=value fields."""
    record = logging.makeLogRecord(
        {"name": "gateway.access", "levelname": "INFO", "msg": "GET /x 200", "status": 200}
    )

    line = TextFormatter().format(record)

    assert line.endswith("INFO gateway.access GET /x 200 status=200")


def test_json_format_keeps_extra_fields() -> None:
    """The JSON format carries extra fields beside the standard four."""
    record = logging.makeLogRecord(
        {"name": "gateway.auth", "levelname": "WARNING", "msg": "no %s", "args": ("key",)}
    )
    record.key_id = "abc"

    entry = json.loads(JsonFormatter().format(record))

    assert {k: entry[k] for k in ("level", "logger", "message", "key_id")} == {
        "level": "warning",
        "logger": "gateway.auth",
        "message": "no key",
        "key_id": "abc",
    }
