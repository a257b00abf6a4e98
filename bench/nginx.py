"""The two nginx servers: the fixed upstream and the plain proxy that is the baseline."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from processes import Processes, free_port, wait_for_port

TEMPLATES = Path(__file__).resolve().parent / "templates"
SHARE_JSON = TEMPLATES / "share.json"
SHARED = "shared"

# Characters that cannot break out of a single-quoted nginx string or start a variable.
_UNSAFE_IN_QUOTES = re.compile(r"['\\$]")


@dataclass(frozen=True)
class Nginx:
    """One nginx master (and its single worker), listening on one port or several."""

    name: str
    folder: Path
    ports: dict[str, int]

    @property
    def url(self) -> str:
        """The first listener's URL."""
        return self.url_for(next(iter(self.ports)))

    def url_for(self, listener: str) -> str:
        return f"http://127.0.0.1:{self.ports[listener]}"

    def requests_by_listener(self) -> dict[str, int]:
        """Requests answered on each listener, from the access log, once nginx has flushed it.

        The log is buffered for a second: read it until it stops growing.
        """
        log = self.folder / "requests.log"
        counts: Counter[str] = Counter()
        while True:
            time.sleep(1.5)
            lines = log.read_text(encoding="ascii").split() if log.exists() else []
            latest = Counter(lines)
            if latest == counts:
                break
            counts = latest
        return {listener: counts[str(port)] for listener, port in self.ports.items()}


def share_body() -> str:
    """The fixed share JSON, on one line, checked to be JSON and safe to quote."""
    text = json.dumps(json.loads(SHARE_JSON.read_text(encoding="utf-8")), separators=(",", ":"))
    if _UNSAFE_IN_QUOTES.search(text):
        raise ValueError(f"{SHARE_JSON} holds a quote, backslash or $ that nginx would misread")
    return text


def _render(template: str, folder: Path, values: dict[str, str]) -> Path:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for name, value in {"DIR": str(folder), **values}.items():
        if _UNSAFE_IN_QUOTES.search(value):
            raise ValueError(f"{name} cannot go into an nginx config: {value!r}")
        text = text.replace(f"@{name}@", value)
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise ValueError(f"{template}: no value for {', '.join(leftover)}")
    path = folder / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


def _listen(ports: dict[str, int]) -> str:
    return "\n".join(f"        listen 127.0.0.1:{port} backlog=4096;" for port in ports.values())


def start_nginx(
    processes: Processes,
    binary: str,
    name: str,
    template: str,
    folder: Path,
    cpus: frozenset[int],
    listeners: list[str],
    values: dict[str, str],
) -> Nginx:
    """Render a template into its own folder and run nginx on it in the foreground."""
    folder.mkdir(parents=True)
    ports = {listener: free_port() for listener in listeners}
    config = _render(template, folder, {"LISTEN": _listen(ports), **values})
    # -e: nginx writes start-up errors before it reads the config's error_log.
    argv = [binary, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")]
    process = processes.start(argv, cpus=cpus, log=folder / "stdout.log")
    for port in ports.values():
        wait_for_port(port, process, timeout_s=10.0)
    return Nginx(name, folder, ports)


def start_upstream(
    processes: Processes,
    binary: str,
    folder: Path,
    cpus: frozenset[int],
    api_key: str,
    gateways: list[str],
) -> Nginx:
    """The fixed upstream: a shared listener, and one for each gateway to be counted apart."""
    values = {"API_KEY": api_key, "SHARE_JSON": share_body()}
    listeners = [SHARED, *gateways]
    return start_nginx(
        processes, binary, "upstream", "upstream.conf", folder, cpus, listeners, values
    )


def start_proxy(
    processes: Processes,
    binary: str,
    folder: Path,
    cpus: frozenset[int],
    upstream: Nginx,
    api_key: str,
) -> Nginx:
    """nginx proxy_pass in front of the fixed upstream, with a keepalive pool."""
    values = {"API_KEY": api_key, "UPSTREAM_PORT": str(upstream.ports[SHARED])}
    return start_nginx(processes, binary, "nginx", "proxy.conf", folder, cpus, [SHARED], values)
