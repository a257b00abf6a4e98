"""A `share-gateway serve` process under test: its config, its keys, its memory, its usage."""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from answers import request_json
from processes import Processes, children, free_port, rss_kib, wait_for_port

ADMIN_TOKEN = "bench-admin-token-" + secrets.token_urlsafe(16)
ALLOWED_IPS = ["127.0.0.0/8", "10.0.0.0/8"]


def key_fields(permissions: dict[str, bool]) -> dict[str, Any]:
    """A key with every check on: permissions, a validity window and an IP allowlist."""
    now = datetime.now(UTC)
    return {
        "permissions": permissions,
        "allowedIps": ALLOWED_IPS,
        "notValidBefore": (now - timedelta(days=1)).isoformat(),
        "notValidAfter": (now + timedelta(days=30)).isoformat(),
    }


def share_gateway_command() -> list[str]:
    """The console script beside this interpreter, as ops would run it."""
    script = Path(sys.executable).with_name("share-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]


@dataclass
class GatewayProcess:
    """One gateway started from a YAML file in its own folder, single process unless told."""

    name: str
    folder: Path
    upstream: dict[str, Any]
    workers: int = 1
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    public_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # The key whose usageCount is checked; None: the sum over every key in the store.
    checked_key: str | None = None
    # Its listener at the fixed upstream, where what it forwarded is counted.
    upstream_listener: str | None = None
    # Requests answered 2xx through this gateway, which its usage counts must equal.
    sent_ok: int = 0
    # Every request this gateway has served, for the memory reading.
    served: int = 0
    # Requests wrk may have left unanswered when it stopped: its connections, summed
    # over its runs. The gateway counts those it received; wrk never sees their answers.
    in_flight_bound: int = 0
    runs: int = 0

    @property
    def config_path(self) -> Path:
        return self.folder / "gateway.yaml"

    @property
    def db_path(self) -> Path:
        return self.folder / "gateway.db"

    @property
    def log_path(self) -> Path:
        return self.folder / "gateway.log"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def config(self) -> dict[str, Any]:
        """Production-like settings: JSON logs at info, usage flushed every second."""
        return {
            "server": {"listen": f"127.0.0.1:{self.public_port}", "workers": self.workers},
            "admin": {
                "listen": f"127.0.0.1:{self.admin_port}",
                "tokens": [{"name": "bench", "token": ADMIN_TOKEN}],
            },
            "store": {"url": f"sqlite:///{self.db_path}", "secret_key": self.secret_key},
            "upstream": self.upstream,
            "usage": {"flush_interval_s": 1},
            "logging": {"format": "json", "level": "info"},
        }

    def write_config(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")

    def start(self, processes: Processes, cpus: frozenset[int]) -> None:
        """Serve from the config file, stderr (the JSON log) into a file, as in production."""
        self.write_config()
        argv = [*share_gateway_command(), "serve", "--config", str(self.config_path)]
        self.process = processes.start(argv, cpus=cpus, log=self.log_path, cwd=self.folder)
        wait_for_port(self.public_port, self.process, timeout_s=30.0)
        wait_for_port(self.admin_port, self.process, timeout_s=30.0)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                request_json(self.public_url + "/readyz", "GET", {})
                return
            except (RuntimeError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def admin(self, method: str, path: str, body: object = None) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return request_json(self.admin_url + path, method, headers, body)

    def create_key(self, name: str, permissions: dict[str, bool]) -> tuple[str, str]:
        """A key made through the admin API: its id and its value."""
        key = self.admin("POST", "/admin/api/keys", {"name": name, **key_fields(permissions)})
        return key["id"], key["value"]

    def call(self, method: str, path: str, value: str, body: object = None) -> Any:
        """One share request with a key; counted, since it passes every check."""
        answer = request_json(
            self.public_url + path, method, {"Authorization": f"Bearer {value}"}, body
        )
        self.sent_ok += 1
        self.served += 1
        return answer

    def worker_pids(self) -> list[int]:
        """The gateway process and any worker processes it started."""
        return [self.pid, *children(self.pid)]

    def rss_kib(self) -> int:
        """Resident memory of the gateway, its workers included."""
        return sum(rss_kib(pid) for pid in self.worker_pids())

    def stop(self, processes: Processes) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        return processes.stop(process)

    def key_usage(self, key_id: str) -> tuple[int, int]:
        """usageCount and deniedCount of one key, read back with the gateway's own CLI."""
        argv = [*share_gateway_command(), "keys", "--config", str(self.config_path)]
        done = subprocess.run(
            [*argv, "show", key_id, "--json"],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.folder,
        )
        shown = json.loads(done.stdout)
        return int(shown["usageCount"]), int(shown["deniedCount"])

    def total_usage(self) -> tuple[int, int]:
        """usageCount and deniedCount summed over every key, from the SQLite file."""
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            row = db.execute(
                "SELECT COALESCE(SUM(usage_count), 0), COALESCE(SUM(denied_count), 0)"
                " FROM key_usage"
            ).fetchone()
        return int(row[0]), int(row[1])
