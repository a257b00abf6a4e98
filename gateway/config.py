"""The YAML file, read into typed, frozen settings; every mistake is a ConfigError."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import netaddr
import yaml

from gateway.proxy.address import AddressSet

DEFAULT_DATA_DIR = Path("share-gateway-data")
EMBEDDED = "embedded"
SQLITE_PREFIX = "sqlite://"

T = TypeVar("T")


class ConfigError(Exception):
    """A setting that cannot be used, named with its file, what was expected and found."""

    def __init__(self, source: str, setting: str, expected: str, found: object) -> None:
        self.source = source
        self.setting = setting
        super().__init__(f"{source}: {setting}: expected {expected}, found {found!r}")


@dataclass(frozen=True)
class Listen:
    """A host and port to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AdminToken:
    """A named admin token; the name is what the history records as the actor."""

    name: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class ServerSettings:
    listen: Listen = Listen("127.0.0.1", 8080)
    trusted_proxies: netaddr.IPSet = field(default_factory=netaddr.IPSet)
    max_body_bytes: int = 1_048_576
    workers: int = 1
    read_timeout_s: float = 30.0

    @cached_property
    def trusted_addresses(self) -> AddressSet:
        """trusted_proxies in the form the request path checks."""
        return AddressSet(self.trusted_proxies)


@dataclass(frozen=True)
class AdminSettings:
    listen: Listen = Listen("127.0.0.1", 8081)
    tokens: tuple[AdminToken, ...] = ()


def sqlite_path(url: str) -> Path | None:
    """The file a `sqlite://PATH` URL names, None for any other URL.

    What follows `sqlite://` is the path as written: `sqlite:///var/lib/x.db`
    is /var/lib/x.db and `sqlite://./data/x.db` is relative to the working
    folder. Four slashes, as some tools write absolute paths, also mean /.
    """
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url.removeprefix(SQLITE_PREFIX)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return Path(path)


@dataclass(frozen=True)
class StoreSettings:
    url: str = f"{SQLITE_PREFIX}./{DEFAULT_DATA_DIR}/gateway.db"
    secret_key: str | None = field(default=None, repr=False)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite store, None for any other."""
        return sqlite_path(self.url)

    @property
    def data_dir(self) -> Path:
        """Where generated secrets live: beside the SQLite file, or the default folder."""
        path = self.sqlite_path
        return path.parent if path is not None else DEFAULT_DATA_DIR


@dataclass(frozen=True)
class UpdateRoute:
    """How UPDATE is sent upstream; the vendor does not document it."""

    method: str = "PUT"
    path: str = "/webapi/share/{uuid}"


@dataclass(frozen=True)
class UpstreamSettings:
    url: str = EMBEDDED
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    connect_timeout_s: float = 2.0
    max_connections: int = 100
    retries: int = 1
    update: UpdateRoute = UpdateRoute()

    @property
    def embedded(self) -> bool:
        return self.url == EMBEDDED


@dataclass(frozen=True)
class UsageSettings:
    flush_interval_s: float = 1.0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "json"


LOCAL = "local"
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RateLimitSettings:
    """Where each key's rate limit window is kept: in this process, or in a shared Redis."""

    store: str = field(default=LOCAL, repr=False)
    redis_prefix: str = "share-gateway"

    @property
    def local(self) -> bool:
        return self.store == LOCAL


@dataclass(frozen=True)
class MetricsSettings:
    # Key ids as a label multiply the series by the number of keys in use.
    per_key: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the gateway reads from its YAML file."""

    server: ServerSettings = ServerSettings()
    admin: AdminSettings = AdminSettings()
    store: StoreSettings = StoreSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    usage: UsageSettings = UsageSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    source: str = "(embedded default)"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNSET = object()


class _Reader:
    """Walks one section of the file, remembering the dotted path for error messages."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env

    def error(self, setting: str, expected: str, found: object) -> ConfigError:
        return ConfigError(self.source, setting, expected, found)

    def section(self, data: object, name: str, allowed: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            # The document itself has no setting name; say so rather than print an empty one.
            raise self.error(name or "(top level)", "a mapping", data)
        for key in data:
            if key not in allowed:
                where = f"{name}.{key}" if name else str(key)
                raise self.error(where, "one of " + ", ".join(sorted(allowed)), "unknown setting")
        return data

    def interpolate(self, setting: str, value: object) -> object:
        """Replace ${VAR} and ${VAR:-default}; a variable with neither is an error."""
        if not isinstance(value, str):
            return value

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env and self.env[name] != "":
                return self.env[name]
            if default is not None:
                return default
            # An empty variable counts as unset (a blank secret is a mistake), but say which.
            state = "empty" if name in self.env else "unset"
            raise self.error(setting, f"environment variable {name} to be set", f"{name} {state}")

        return _VAR.sub(sub, value)

    def get(
        self, data: dict[str, Any], name: str, key: str, parse: Callable[[str, Any], T], default: T
    ) -> T:
        if key not in data or data[key] is None:
            return default
        setting = f"{name}.{key}"
        return parse(setting, self.interpolate(setting, data[key]))

    def string(self, setting: str, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(setting, "a string", value)
        return str(value)

    def secret(self, setting: str, value: object) -> str | None:
        text = self.string(setting, value)
        return text or None

    def number(
        self, setting: str, value: object, *, integer: bool, minimum: float, expected: str = ""
    ) -> Any:
        expected = expected or f"{'an integer' if integer else 'a finite number'} >= {minimum:g}"
        if isinstance(value, bool):
            raise self.error(setting, expected, value)
        try:
            number = int(value) if integer else float(value)  # type: ignore[call-overload,arg-type]
        except (TypeError, ValueError, OverflowError):
            # OverflowError: int() of YAML's .inf.
            raise self.error(setting, expected, value) from None
        if integer and isinstance(value, float) and not value.is_integer():
            raise self.error(setting, expected, value)
        # A NaN or infinite timeout or interval would never fire: finite numbers only.
        if isinstance(number, float) and not math.isfinite(number):
            raise self.error(setting, expected, value)
        if number < minimum:
            raise self.error(setting, expected, value)
        return number

    def integer(self, minimum: int) -> Callable[[str, Any], int]:
        return lambda s, v: int(self.number(s, v, integer=True, minimum=minimum))

    def positive(self, setting: str, value: object) -> float:
        expected = "a finite number > 0"
        number = float(self.number(setting, value, integer=False, minimum=0, expected=expected))
        if number <= 0:
            raise self.error(setting, expected, value)
        return number

    def listen(self, setting: str, value: object) -> Listen:
        text = self.string(setting, value)
        # A host is a bracketed IPv6 address, an IPv4 address or a DNS name: nothing that
        # could only fail later, at bind time (spaces, stray punctuation).
        match = re.fullmatch(
            r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})",
            text,
        )
        if not match:
            raise self.error(setting, "host:port (IPv6 as [addr]:port)", text)
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if port > 65535:
            raise self.error(setting, "a port from 0 to 65535", text)
        if match.group(1):
            try:
                netaddr.IPAddress(host, version=6)
            except (netaddr.AddrFormatError, ValueError):
                raise self.error(setting, "an IPv6 address in brackets", text) from None
        elif re.fullmatch(r"[0-9.]+", host):
            # All digits and dots is meant as IPv4: 300.1.1.1 is a typo, not a host name.
            try:
                netaddr.IPAddress(host, version=4, flags=netaddr.INET_PTON)
            except (netaddr.AddrFormatError, ValueError):
                raise self.error(setting, "an IPv4 address such as 127.0.0.1", text) from None
        return Listen(host, port)

    def cidrs(self, setting: str, value: object) -> netaddr.IPSet:
        if not isinstance(value, list):
            raise self.error(setting, "a list of CIDR blocks", value)
        networks = []
        for index, item in enumerate(value):
            where = f"{setting}[{index}]"
            text = self.string(where, self.interpolate(where, item))
            try:
                network = netaddr.IPNetwork(text)
            except (netaddr.AddrFormatError, ValueError, TypeError):
                raise self.error(where, "an IP address or CIDR block", text) from None
            # SECURITY: 10.0.0.1/8 would trust the whole /8 to set X-Forwarded-For; a block
            # with host bits set is a typo for one address or one block, so it is refused.
            if network.ip != network.network:
                expected = f"a CIDR block without host bits (did you mean {network.cidr}?)"
                raise self.error(where, expected, text)
            networks.append(network)
        return netaddr.IPSet(networks)

    def url(self, setting: str, value: object) -> str:
        text = self.string(setting, value)
        if text == EMBEDDED:
            return text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(setting, "an http(s) URL or 'embedded'", text)
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise self.error(setting, "an http(s) URL with a valid port", text) from None
        return text.rstrip("/")

    def store_url(self, setting: str, value: object) -> str:
        text = self.string(setting, value)
        path = sqlite_path(text)
        if path is not None and not text.endswith("/") and path.name not in ("", ".", ".."):
            return text
        if urlsplit(text).scheme in ("postgresql", "postgres"):
            return text
        raise self.error(setting, "sqlite://PATH or postgresql://...", text)

    def rate_limit_store(self, setting: str, value: object) -> str:
        text = self.string(setting, value)
        if text.lower() == LOCAL:
            return LOCAL
        parts = urlsplit(text)
        # SECURITY: a Redis URL may carry a password; what is found never shows it.
        shown = redacted_url(text)
        expected = "'local' or a redis://HOST[:PORT][/DB] URL (or rediss://, unix:///PATH)"
        if parts.scheme not in REDIS_SCHEMES:
            raise self.error(setting, expected, shown)
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise self.error(setting, expected, shown) from None
        if parts.scheme == "unix":
            if not parts.path:
                raise self.error(setting, expected, shown)
        elif not parts.hostname or not re.fullmatch(r"/?[0-9]*", parts.path):
            raise self.error(setting, expected, shown)
        return text

    def redis_prefix(self, setting: str, value: object) -> str:
        text = self.string(setting, value)
        if not re.fullmatch(r"[A-Za-z0-9._:{}-]{1,64}", text):
            raise self.error(setting, "1 to 64 letters, digits or . _ : - { }", text)
        return text

    def boolean(self, setting: str, value: object) -> bool:
        # YAML reads true and false itself; a ${VAR} gives text, read the same way.
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.error(setting, "true or false", value)

    def choice(self, *options: str) -> Callable[[str, Any], str]:
        # Case-insensitive, answering the option's own spelling (PUT, info) whatever was written.
        spelled = {option.lower(): option for option in options}

        def parse(setting: str, value: object) -> str:
            text = self.string(setting, value).lower()
            if text not in spelled:
                raise self.error(setting, "one of " + ", ".join(options), value)
            return spelled[text]

        return parse


def parse_settings(
    data: object,
    source: str,
    env: Mapping[str, str] | None = None,
    *,
    store_only: bool = False,
) -> Settings:
    """Turn the loaded YAML document into Settings, or raise ConfigError.

    With store_only, the admin tokens and the upstream key may be missing or
    name unset variables: the key commands read the store and nothing else,
    so they run without the service's other secrets in their environment.
    """
    r = _Reader(source, os.environ if env is None else env)
    top = r.section(
        data,
        "",
        {"server", "admin", "store", "upstream", "usage", "logging", "metrics", "rate_limits"},
    )

    s = r.section(top.get("server"), "server", set(vars(ServerSettings())))
    server = ServerSettings(
        listen=r.get(s, "server", "listen", r.listen, ServerSettings.listen),
        trusted_proxies=r.get(s, "server", "trusted_proxies", r.cidrs, netaddr.IPSet()),
        max_body_bytes=r.get(s, "server", "max_body_bytes", r.integer(1), 1_048_576),
        workers=r.get(s, "server", "workers", r.integer(1), 1),
        read_timeout_s=r.get(s, "server", "read_timeout_s", r.positive, 30.0),
    )

    a = r.section(top.get("admin"), "admin", {"listen", "tokens"})
    admin = AdminSettings(
        listen=r.get(a, "admin", "listen", r.listen, AdminSettings.listen),
        tokens=_lenient(store_only, (), lambda: _admin_tokens(r, a.get("tokens"))),
    )

    st = r.section(top.get("store"), "store", {"url", "secret_key"})
    store = StoreSettings(
        url=r.get(st, "store", "url", r.store_url, StoreSettings.url),
        secret_key=r.get(st, "store", "secret_key", r.secret, None),
    )

    u = r.section(top.get("upstream"), "upstream", set(vars(UpstreamSettings())))
    up = r.section(u.get("update"), "upstream.update", {"method", "path"})
    update = UpdateRoute(
        method=r.get(up, "upstream.update", "method", r.choice("PUT", "PATCH", "POST"), "PUT"),
        path=r.get(up, "upstream.update", "path", _update_path(r), UpdateRoute.path),
    )
    upstream = UpstreamSettings(
        url=r.get(u, "upstream", "url", r.url, EMBEDDED),
        api_key=_lenient(store_only, None, lambda: r.get(u, "upstream", "api_key", r.secret, None)),
        timeout_s=r.get(u, "upstream", "timeout_s", r.positive, 10.0),
        connect_timeout_s=r.get(u, "upstream", "connect_timeout_s", r.positive, 2.0),
        max_connections=r.get(u, "upstream", "max_connections", r.integer(1), 100),
        retries=r.get(u, "upstream", "retries", r.integer(0), 1),
        update=update,
    )
    if not upstream.embedded and upstream.api_key is None and not store_only:
        raise r.error("upstream.api_key", "the upstream's API key (a secret)", "nothing")

    us = r.section(top.get("usage"), "usage", {"flush_interval_s"})
    usage = UsageSettings(
        flush_interval_s=r.get(us, "usage", "flush_interval_s", r.positive, 1.0),
    )

    lg = r.section(top.get("logging"), "logging", {"level", "format"})
    logging_ = LoggingSettings(
        level=r.get(lg, "logging", "level", r.choice("debug", "info", "warning", "error"), "info"),
        format=r.get(lg, "logging", "format", r.choice("json", "text"), "json"),
    )

    m = r.section(top.get("metrics"), "metrics", {"per_key"})
    metrics = MetricsSettings(per_key=r.get(m, "metrics", "per_key", r.boolean, False))

    rl = r.section(top.get("rate_limits"), "rate_limits", {"store", "redis_prefix"})
    rate_limits = RateLimitSettings(
        store=r.get(rl, "rate_limits", "store", r.rate_limit_store, LOCAL),
        redis_prefix=r.get(
            rl, "rate_limits", "redis_prefix", r.redis_prefix, RateLimitSettings.redis_prefix
        ),
    )

    if store.sqlite_path is None and store.secret_key is None:
        raise r.error("store.secret_key", "a secret for a shared store", "nothing")
    return Settings(
        server,
        admin,
        store,
        upstream,
        usage,
        logging_,
        metrics,
        rate_limits=rate_limits,
        source=source,
    )


def redacted_url(url: str) -> str:
    """A URL as messages and logs may show it: its password, if any, replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url.split("://", 1)[0] + "://..." if "://" in url else "..."
    return url.replace(f":{password}@", ":***@", 1) if password else url


def _lenient(lenient: bool, fallback: T, read: Callable[[], T]) -> T:
    try:
        return read()
    except ConfigError:
        if lenient:
            return fallback
        raise


def _admin_tokens(r: _Reader, value: object) -> tuple[AdminToken, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise r.error("admin.tokens", "a list of {name, token}", value)
    tokens: list[AdminToken] = []
    for index, item in enumerate(value):
        where = f"admin.tokens[{index}]"
        entry = r.section(item, where, {"name", "token"})
        name = r.get(entry, where, "name", r.string, "")
        token = r.get(entry, where, "token", r.secret, None)
        if not name:
            raise r.error(f"{where}.name", "a name for the token", name)
        if token is None or len(token) < 16:
            # SECURITY: the found part says what is wrong, never the token itself.
            found = "nothing" if token is None else f"{len(token)} characters"
            raise r.error(f"{where}.token", "a secret of at least 16 characters", found)
        if any(t.name == name for t in tokens):
            raise r.error(f"{where}.name", "a name no other token has", name)
        tokens.append(AdminToken(name, token))
    return tuple(tokens)


def _update_path(r: _Reader) -> Callable[[str, Any], str]:
    def parse(setting: str, value: object) -> str:
        text = r.string(setting, value)
        if not text.startswith("/") or "{uuid}" not in text:
            raise r.error(setting, "a path starting with / holding {uuid}", text)
        return text

    return parse


def load_settings(
    path: str | Path | None, env: Mapping[str, str] | None = None, *, store_only: bool = False
) -> Settings:
    """Read a YAML file into Settings; with no path, the embedded default."""
    if path is None:
        return parse_settings({}, Settings.source, env, store_only=store_only)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", "a readable YAML file", exc.strerror) from None
    except UnicodeDecodeError:
        raise ConfigError(source, "(file)", "UTF-8 text", "undecodable bytes") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise ConfigError(source, where, "valid YAML", getattr(exc, "problem", str(exc))) from None
    return parse_settings(data, source, env, store_only=store_only)
