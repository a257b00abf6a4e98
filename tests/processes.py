"""Real gateway and upstream processes on free ports, for tests where the wire matters."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ADMIN_TOKEN = "test-admin-token-0123456789"
SECRET_KEY = "test-secret-key-0123456789abcdef"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {host}:{port} within {timeout} s")


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


class GatewayProcess:
    """`share-gateway serve` in its own process, with a config file of the test's making."""

    def __init__(self, folder: Path, overrides: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self.public_port = free_port()
        self.admin_port = free_port()
        self.config: dict[str, Any] = deep_merge(
            {
                "server": {"listen": f"127.0.0.1:{self.public_port}"},
                "admin": {
                    "listen": f"127.0.0.1:{self.admin_port}",
                    "tokens": [{"name": "ops", "token": ADMIN_TOKEN}],
                },
                "store": {"url": f"sqlite:///{folder}/gateway.db", "secret_key": SECRET_KEY},
                "usage": {"flush_interval_s": 0.2},
                "logging": {"level": "info", "format": "json"},
            },
            overrides or {},
        )
        self.config_path = folder / "gateway.yaml"
        self.log_path = folder / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 15.0) -> GatewayProcess:
        """Start and wait for both listeners; new ports if another process took one first.

        free_port's port is free when asked, but with many tests running, an outgoing
        connection can take it before the gateway binds it.
        """
        for attempt in range(3):
            try:
                return self._start(timeout)
            except RuntimeError as exc:
                taken = "address already in use" in self.logs().lower()
                if not taken or attempt == 2:
                    raise RuntimeError(f"{exc}; its log ends:\n{self.logs()[-2000:]}") from None
                self._new_ports()
        raise AssertionError("unreachable")

    def _new_ports(self) -> None:
        old_public, old_admin = self.public_port, self.admin_port
        self.public_port, self.admin_port = free_port(), free_port()
        server, admin = self.config["server"], self.config["admin"]
        if server.get("listen") == f"127.0.0.1:{old_public}":
            server["listen"] = f"127.0.0.1:{self.public_port}"
        if admin.get("listen") == f"127.0.0.1:{old_admin}":
            admin["listen"] = f"127.0.0.1:{self.admin_port}"
        self.log_path.write_bytes(b"")

    def _start(self, timeout: float) -> GatewayProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        wait_for_port("127.0.0.1", self.public_port, self.process, timeout)
        wait_for_port("127.0.0.1", self.admin_port, self.process, timeout)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send a signal and wait for the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
