"""Readers for the deploy recipes' own formats, so that tests can check them without their tools.

No Docker engine, Compose, kubelet or systemd runs the tests: these readers
take from each file what those tools would, as their documentation defines
it, for the parts the recipes use.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of its line."""

    keyword: str
    value: str

    def argv(self) -> list[str]:
        """The JSON (exec) form as a list, or the shell form split as sh would."""
        if self.value.startswith("["):
            words: list[str] = json.loads(self.value)
            return words
        return shlex.split(self.value)


def dockerfile(path: Path) -> list[Instruction]:
    """The instructions, with continuation lines joined and comment lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        # Comment lines end nowhere, even inside a continued instruction.
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, value = whole.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
    return instructions


def copy_sources(instruction: Instruction) -> tuple[list[str], str]:
    """The sources and destination of a COPY from the build context."""
    words = [word for word in shlex.split(instruction.value) if not word.startswith("--")]
    return words[:-1], words[-1]


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern: Go's filepath.Match, plus ** for any number of folders."""
    text = posixpath.normpath(pattern.strip().lstrip("/"))
    regex = ""
    index = 0
    while index < len(text):
        if text.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif text.startswith("**", index):
            regex += ".*"
            index += 2
        elif text[index] == "*":
            regex += "[^/]*"
            index += 1
        elif text[index] == "?":
            regex += "[^/]"
            index += 1
        else:
            regex += re.escape(text[index])
            index += 1
    return re.compile(regex)


class DockerIgnore:
    """The rules of a .dockerignore: the last pattern matching a path or a parent of it wins."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            self.rules.append((keep, _ignore_regex(line.removeprefix("!"))))

    def excludes(self, path: str) -> bool:
        """Whether the file at `path` (relative to the context) is left out of the build."""
        parts = path.split("/")
        candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
        excluded = False
        for keep, regex in self.rules:
            if any(regex.fullmatch(candidate) for candidate in candidates):
                excluded = not keep
        return excluded


_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose_interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        empty_is_unset = operator is not None and operator.startswith(":")
        missing = value is None or (empty_is_unset and value == "")
        if not missing:
            assert value is not None
            return value
        if operator in (":-", "-"):
            return argument
        if operator in (":?", "?"):
            raise KeyError(f"{name}: {argument}")
        return ""

    return _COMPOSE_VAR.sub(sub, text)


def compose_variables(text: str) -> set[str]:
    """The names of the variables a compose file interpolates."""
    return {match.group(1) for match in _COMPOSE_VAR.finditer(text) if match.group(1)}


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (a .env file or a systemd EnvironmentFile); # starts a comment line."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        assert separator, f"{path}: not KEY=VALUE: {line!r}"
        values[name.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class PublishedPort:
    """A compose short-syntax port: [HOST_IP:][HOST_PORT:]CONTAINER_PORT."""

    host_ip: str
    host_port: str
    container_port: int

    @classmethod
    def parse(cls, text: str) -> PublishedPort:
        parts = str(text).split(":")
        if len(parts) == 3:
            return cls(parts[0], parts[1], int(parts[2]))
        if len(parts) == 2:
            return cls("0.0.0.0", parts[0], int(parts[1]))
        return cls("0.0.0.0", "", int(parts[0]))


def duration_s(text: str) -> float:
    """A compose duration such as 40s, 1m30s or 1500ms, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


@dataclass(frozen=True)
class NginxConfig:
    """What the load balancer's config says about where it listens and forwards."""

    text: str

    def upstream_servers(self, name: str) -> list[tuple[str, int]]:
        block = re.search(r"upstream\s+" + re.escape(name) + r"\s*\{(.*?)\}", self.text, re.S)
        assert block, f"no upstream {name}"
        servers = re.findall(r"^\s*server\s+([^\s:;]+):(\d+)", block.group(1), re.M)
        return [(host, int(port)) for host, port in servers]

    def directives(self, name: str) -> list[str]:
        """The arguments of every `name ...;` directive, comments left out."""
        lines = [line.split("#", 1)[0] for line in self.text.splitlines()]
        body = "\n".join(lines)
        return [m.strip() for m in re.findall(r"(?:^|[{;\s])" + name + r"\s+([^;]*);", body)]

    def named_return(self, name: str) -> tuple[int, str]:
        """The status and body of the `return` in `location @name`."""
        pattern = r"location\s+@" + re.escape(name) + r"\s*\{[^}']*return\s+(\d{3})\s+'([^']*)';"
        match = re.search(pattern, self.text)
        assert match, f"no return in location @{name}"
        return int(match.group(1)), match.group(2)


def size_bytes(text: str) -> int:
    """An nginx size: 1048576, 512k or 2m."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", text)
    assert match, f"not a size: {text!r}"
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * factor


def systemd_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """The unit's sections, each setting's values in order (settings may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: setting outside a section: {line!r}"
        name, _, value = line.partition("=")
        current.setdefault(name.strip(), []).append(value.strip())
    return sections
