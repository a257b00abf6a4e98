"""The YAML file: defaults, interpolation, every refusal, the example file and check-config."""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import netaddr
import pytest
import yaml

from gateway.config import (
    AdminSettings,
    AdminToken,
    ConfigError,
    Listen,
    LoggingSettings,
    MetricsSettings,
    RateLimitSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    UpdateRoute,
    UpstreamSettings,
    UsageSettings,
    load_settings,
    parse_settings,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
ENV = {
    "GATEWAY_ADMIN_TOKEN": "admin-token-0123456789",
    "GATEWAY_SECRET_KEY": "secret-key-0123456789",
    "EXTERNAL_SHARE_API_KEY": "upstream-key-0123456789",
}

# The defaults as DESIGN states them, spelled out rather than taken from the dataclasses.
DESIGN_DEFAULTS = Settings(
    server=ServerSettings(
        listen=Listen("127.0.0.1", 8080),
        trusted_proxies=netaddr.IPSet(),
        max_body_bytes=1_048_576,
        workers=1,
        read_timeout_s=30.0,
    ),
    admin=AdminSettings(listen=Listen("127.0.0.1", 8081), tokens=()),
    store=StoreSettings(url="sqlite://./share-gateway-data/gateway.db", secret_key=None),
    upstream=UpstreamSettings(
        url="embedded",
        api_key=None,
        timeout_s=10.0,
        connect_timeout_s=2.0,
        max_connections=100,
        retries=1,
        update=UpdateRoute(method="PUT", path="/webapi/share/{uuid}"),
    ),
    usage=UsageSettings(flush_interval_s=1.0),
    logging=LoggingSettings(level="info", format="json"),
    rate_limits=RateLimitSettings(store="local", redis_prefix="share-gateway"),
    metrics=MetricsSettings(per_key=False),
    source="(embedded default)",
)


def write(folder: Path, text: str) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    """The ConfigError that loading `path` raises."""
    with pytest.raises(ConfigError) as info:
        load_settings(path, {} if env is None else env)
    return info.value


def assert_names(error: ConfigError, path: Path, setting: str, found: str) -> None:
    """The message names the file, the setting, what was expected and what was found."""
    message = str(error)
    assert (error.source, error.setting) == (str(path), setting)
    assert message.startswith(f"{path}: {setting}: expected ")
    expected, _, found_part = message.partition(", found ")
    assert expected != f"{path}: {setting}: expected "
    assert found_part.startswith(found)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="no file"),
        pytest.param("", id="empty file"),
        pytest.param("{}\n", id="empty mapping"),
        pytest.param(
            "server:\nadmin:\nstore:\nupstream:\n  update:\nusage:\nlogging:\nmetrics:\n",
            id="empty sections",
        ),
        pytest.param("server:\n  listen: null\n  workers: ~\n", id="null settings"),
    ],
)
def test_settings_defaults_are_the_design_defaults(tmp_path: Path, text: str | None) -> None:
    """No file, an empty one or empty sections all give the defaults DESIGN names."""
    path = None if text is None else write(tmp_path, text)

    settings = load_settings(path, {})

    source = DESIGN_DEFAULTS.source if path is None else str(path)
    assert settings == dataclasses.replace(DESIGN_DEFAULTS, source=source)


def test_settings_dataclass_defaults_match_the_parser() -> None:
    """Settings() and an empty document agree, so code that builds Settings sees the defaults."""
    assert Settings() == DESIGN_DEFAULTS == parse_settings({}, "(embedded default)", {})


def test_settings_default_data_dir_is_the_local_folder() -> None:
    """The embedded default keeps its store and secrets in ./share-gateway-data."""
    assert DESIGN_DEFAULTS.store.sqlite_path == Path("share-gateway-data/gateway.db")
    assert DESIGN_DEFAULTS.store.data_dir == Path("share-gateway-data")
    assert DESIGN_DEFAULTS.upstream.embedded


def test_settings_read_every_setting(tmp_path: Path) -> None:
    """A file setting everything gives exactly those values, normalised."""
    path = write(
        tmp_path,
        """
server:
  listen: "[::1]:9080"
  trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.168.1.1]
  max_body_bytes: 2048
  workers: 4
  read_timeout_s: 12.5
admin:
  listen: 0.0.0.0:9081
  tokens:
    - {name: ops, token: ops-token-0123456789}
    - {name: ci, token: ci-token-0123456789ab}
store:
  url: postgresql://gw@db.internal/gateway
  secret_key: store-secret
upstream:
  url: https://share.example.com:8443/
  api_key: upstream-key
  timeout_s: 2.5
  connect_timeout_s: 0.5
  max_connections: 10
  retries: 0
  update: {method: patch, path: "/webapi/share/{uuid}/edit"}
usage:
  flush_interval_s: 0.25
logging:
  level: DEBUG
  format: Text
rate_limits:
  store: redis://:redis-password@cache.internal:6380/2
  redis_prefix: gw-eu-1
metrics:
  per_key: true
""",
    )

    settings = load_settings(path, {})

    assert settings == Settings(
        server=ServerSettings(
            listen=Listen("::1", 9080),
            trusted_proxies=netaddr.IPSet(["10.0.0.0/8", "2001:db8::/32", "192.168.1.1/32"]),
            max_body_bytes=2048,
            workers=4,
            read_timeout_s=12.5,
        ),
        admin=AdminSettings(
            listen=Listen("0.0.0.0", 9081),
            tokens=(
                AdminToken("ops", "ops-token-0123456789"),
                AdminToken("ci", "ci-token-0123456789ab"),
            ),
        ),
        store=StoreSettings(url="postgresql://gw@db.internal/gateway", secret_key="store-secret"),
        upstream=UpstreamSettings(
            url="https://share.example.com:8443",
            api_key="upstream-key",
            timeout_s=2.5,
            connect_timeout_s=0.5,
            max_connections=10,
            retries=0,
            update=UpdateRoute(method="PATCH", path="/webapi/share/{uuid}/edit"),
        ),
        usage=UsageSettings(flush_interval_s=0.25),
        logging=LoggingSettings(level="debug", format="text"),
        rate_limits=RateLimitSettings(
            store="redis://:redis-password@cache.internal:6380/2", redis_prefix="gw-eu-1"
        ),
        metrics=MetricsSettings(per_key=True),
        source=str(path),
    )


@pytest.mark.parametrize(
    ("method", "expected"),
    [("PUT", "PUT"), ("put", "PUT"), ("PATCH", "PATCH"), ("Patch", "PATCH"), ("POST", "POST")],
)
def test_settings_update_method_any_case(tmp_path: Path, method: str, expected: str) -> None:
    """upstream.update.method takes PUT, PATCH or POST in any case and keeps it upper case."""
    path = write(tmp_path, f"upstream:\n  update:\n    method: {method}\n")

    assert load_settings(path, {}).upstream.update == UpdateRoute(expected, "/webapi/share/{uuid}")


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:8080", Listen("127.0.0.1", 8080)),
        ("0.0.0.0:0", Listen("0.0.0.0", 0)),
        ("localhost:65535", Listen("localhost", 65535)),
        ("gateway.internal:80", Listen("gateway.internal", 80)),
        ("[::]:8080", Listen("::", 8080)),
        ("[2001:db8::1]:443", Listen("2001:db8::1", 443)),
    ],
)
def test_settings_listen_forms(tmp_path: Path, listen: str, expected: Listen) -> None:
    """server.listen takes IPv4, host names and bracketed IPv6, and prints back the same way."""
    path = write(tmp_path, f'server:\n  listen: "{listen}"\n')

    settings = load_settings(path, {})

    assert settings.server.listen == expected
    assert str(settings.server.listen) == listen


def _secret(settings: Settings) -> object:
    return settings.store.secret_key


@pytest.mark.parametrize(
    ("yaml_text", "env", "read", "expected"),
    [
        pytest.param(
            "store:\n  secret_key: ${KEY}\n",
            {"KEY": "from-env"},
            _secret,
            "from-env",
            id="variable",
        ),
        pytest.param(
            "store:\n  secret_key: ${KEY:-fallback}\n",
            {},
            _secret,
            "fallback",
            id="default when unset",
        ),
        pytest.param(
            "store:\n  secret_key: ${KEY:-fallback}\n",
            {"KEY": ""},
            _secret,
            "fallback",
            id="default when empty",
        ),
        pytest.param(
            "store:\n  secret_key: ${KEY:-fallback}\n",
            {"KEY": "from-env"},
            _secret,
            "from-env",
            id="variable over default",
        ),
        pytest.param(
            "store:\n  secret_key: ${KEY:-}\n", {}, _secret, None, id="empty default is no secret"
        ),
        pytest.param(
            "store:\n  secret_key: a-${ONE}-${TWO:-two}-z\n",
            {"ONE": "one"},
            _secret,
            "a-one-two-z",
            id="several in one value",
        ),
        pytest.param(
            "store:\n  secret_key: $KEY and {KEY}\n",
            {"KEY": "unused"},
            _secret,
            "$KEY and {KEY}",
            id="no braces is literal",
        ),
        pytest.param(
            'server:\n  listen: "127.0.0.1:${PORT:-9000}"\n',
            {},
            lambda s: s.server.listen,
            Listen("127.0.0.1", 9000),
            id="inside a listen address",
        ),
        pytest.param(
            "server:\n  workers: ${WORKERS}\n",
            {"WORKERS": "3"},
            lambda s: s.server.workers,
            3,
            id="a number",
        ),
        pytest.param(
            "upstream:\n  timeout_s: ${TIMEOUT:-2.5}\n",
            {},
            lambda s: s.upstream.timeout_s,
            2.5,
            id="a float default",
        ),
        pytest.param(
            "metrics:\n  per_key: ${PER_KEY}\n",
            {"PER_KEY": "True"},
            lambda s: s.metrics.per_key,
            True,
            id="a boolean",
        ),
        pytest.param(
            "server:\n  trusted_proxies: [ '${PROXY}' ]\n",
            {"PROXY": "10.1.0.0/16"},
            lambda s: s.server.trusted_proxies,
            netaddr.IPSet(["10.1.0.0/16"]),
            id="a list item",
        ),
        pytest.param(
            "admin:\n  tokens:\n    - {name: ops, token: '${TOKEN}'}\n",
            {"TOKEN": "token-from-the-env-0123"},
            lambda s: s.admin.tokens,
            (AdminToken("ops", "token-from-the-env-0123"),),
            id="an admin token",
        ),
    ],
)
def test_settings_interpolate_environment(
    tmp_path: Path,
    yaml_text: str,
    env: dict[str, str],
    read: typing.Callable[[Settings], object],
    expected: object,
) -> None:
    """${VAR} and ${VAR:-default} take their values from the environment given."""
    assert read(load_settings(write(tmp_path, yaml_text), env)) == expected


@pytest.mark.parametrize(
    ("yaml_text", "env", "setting", "found"),
    [
        ("store:\n  secret_key: ${KEY}\n", {}, "store.secret_key", "'KEY unset'"),
        ("store:\n  secret_key: ${KEY}\n", {"KEY": ""}, "store.secret_key", "'KEY empty'"),
        (
            "store:\n  secret_key: a-${ONE:-1}-${TWO}\n",
            {},
            "store.secret_key",
            "'TWO unset'",
        ),
        (
            "admin:\n  tokens:\n    - {name: ops, token: '${GATEWAY_ADMIN_TOKEN}'}\n",
            {},
            "admin.tokens[0].token",
            "'GATEWAY_ADMIN_TOKEN unset'",
        ),
        (
            "server:\n  trusted_proxies: [10.0.0.0/8, '${PROXY}']\n",
            {},
            "server.trusted_proxies[1]",
            "'PROXY unset'",
        ),
        ("server:\n  workers: ${WORKERS}\n", {}, "server.workers", "'WORKERS unset'"),
    ],
)
def test_settings_unset_variable_is_refused(
    tmp_path: Path, yaml_text: str, env: dict[str, str], setting: str, found: str
) -> None:
    """A variable with no default that is unset or empty names the setting and the variable."""
    path = write(tmp_path, yaml_text)

    error = refusal(path, env)

    assert_names(error, path, setting, found)
    variable = found.strip("'").split()[0]
    assert f"expected environment variable {variable} to be set" in str(error)


# Each row: the file, the dotted setting the error must name, and what it must say was found.
BAD_FILES = [
    # unknown keys, at every level
    ("extra: 1\n", "extra", "'unknown setting'"),
    ("server:\n  port: 8080\n", "server.port", "'unknown setting'"),
    ("admin:\n  token: abc\n", "admin.token", "'unknown setting'"),
    ("admin:\n  tokens:\n    - {name: a, token: x, role: ops}\n", "admin.tokens[0].role", "'unk"),
    ("store:\n  path: /tmp/x.db\n", "store.path", "'unknown setting'"),
    ("upstream:\n  apikey: x\n", "upstream.apikey", "'unknown setting'"),
    ("upstream:\n  update:\n    verb: PUT\n", "upstream.update.verb", "'unknown setting'"),
    ("usage:\n  flush_every: 1\n", "usage.flush_every", "'unknown setting'"),
    ("logging:\n  colour: true\n", "logging.colour", "'unknown setting'"),
    ("rate_limits:\n  redis: redis://h\n", "rate_limits.redis", "'unknown setting'"),
    ("rate_limits: local\n", "rate_limits", "'local'"),
    # where rate limit windows are kept
    ("rate_limits:\n  store: memory\n", "rate_limits.store", "'memory'"),
    ("rate_limits:\n  store: ''\n", "rate_limits.store", "''"),
    ("rate_limits:\n  store: [local]\n", "rate_limits.store", "['local']"),
    ("rate_limits:\n  store: http://cache:6379\n", "rate_limits.store", "'http://cache:6379'"),
    ("rate_limits:\n  store: 'redis://'\n", "rate_limits.store", "'redis://'"),
    ("rate_limits:\n  store: 'redis://:6379/0'\n", "rate_limits.store", "'redis://:6379/0'"),
    ("rate_limits:\n  store: redis://cache:99999\n", "rate_limits.store", "'redis://cache:99"),
    ("rate_limits:\n  store: redis://cache/zero\n", "rate_limits.store", "'redis://cache/zero'"),
    ("rate_limits:\n  store: 'unix://'\n", "rate_limits.store", "'unix://'"),
    ("rate_limits:\n  store: cache:6379\n", "rate_limits.store", "'cache:6379'"),
    ("rate_limits:\n  redis_prefix: ''\n", "rate_limits.redis_prefix", "''"),
    ("rate_limits:\n  redis_prefix: a b\n", "rate_limits.redis_prefix", "'a b'"),
    ("rate_limits:\n  redis_prefix: " + "p" * 65 + "\n", "rate_limits.redis_prefix", "'ppp"),
    ("metrics:\n  by_key: true\n", "metrics.by_key", "'unknown setting'"),
    ("metrics: true\n", "metrics", "True"),
    # metrics.per_key is a boolean: true or false, nothing YAML or a variable reads otherwise
    ("metrics:\n  per_key: 1\n", "metrics.per_key", "1"),
    ("metrics:\n  per_key: 'on please'\n", "metrics.per_key", "'on please'"),
    ("metrics:\n  per_key: [true]\n", "metrics.per_key", "[True]"),
    ("metrics:\n  per_key: ${PER_KEY:-maybe}\n", "metrics.per_key", "'maybe'"),
    # sections that are not mappings
    ("server: [1, 2]\n", "server", "[1, 2]"),
    ("upstream:\n  update: PUT\n", "upstream.update", "'PUT'"),
    # listen addresses
    ("server:\n  listen: localhost\n", "server.listen", "'localhost'"),
    ("server:\n  listen: '8080'\n", "server.listen", "'8080'"),
    ("server:\n  listen: 8080\n", "server.listen", "'8080'"),
    ("server:\n  listen: ':8080'\n", "server.listen", "':8080'"),
    ("server:\n  listen: 127.0.0.1:70000\n", "server.listen", "'127.0.0.1:70000'"),
    ("server:\n  listen: 127.0.0.1:123456\n", "server.listen", "'127.0.0.1:123456'"),
    ("server:\n  listen: 127.0.0.1:-1\n", "server.listen", "'127.0.0.1:-1'"),
    ("server:\n  listen: 300.1.1.1:80\n", "server.listen", "'300.1.1.1:80'"),
    ("admin:\n  listen: '[::1]'\n", "admin.listen", "'[::1]'"),
    ("admin:\n  listen: '::1:8081'\n", "admin.listen", "'::1:8081'"),
    ("admin:\n  listen: '[::g]:8081'\n", "admin.listen", "'[::g]:8081'"),
    ("admin:\n  listen: 'not a host:80'\n", "admin.listen", "'not a host:80'"),
    ("admin:\n  listen: garbage\n", "admin.listen", "'garbage'"),
    ("admin:\n  listen: true\n", "admin.listen", "True"),
    # trusted proxies
    ("server:\n  trusted_proxies: 10.0.0.0/8\n", "server.trusted_proxies", "'10.0.0.0/8'"),
    ("server:\n  trusted_proxies: [10.0.0.0/33]\n", "server.trusted_proxies[0]", "'10.0.0.0/33'"),
    ("server:\n  trusted_proxies: ['::1/129']\n", "server.trusted_proxies[0]", "'::1/129'"),
    ("server:\n  trusted_proxies: [10.1]\n", "server.trusted_proxies[0]", "'10.1'"),
    ("server:\n  trusted_proxies: [proxy.lan]\n", "server.trusted_proxies[0]", "'proxy.lan'"),
    ("server:\n  trusted_proxies: [~]\n", "server.trusted_proxies[0]", "None"),
    (
        "server:\n  trusted_proxies: [10.0.0.0/8, 10.0.0.1/8]\n",
        "server.trusted_proxies[1]",
        "'10.0.0.1/8'",
    ),
    # URLs
    ("upstream:\n  url: ftp://share.example.com\n  api_key: k\n", "upstream.url", "'ftp://"),
    ("upstream:\n  url: 'https://'\n  api_key: k\n", "upstream.url", "'https://'"),
    ("upstream:\n  url: 'https://:443/x'\n  api_key: k\n", "upstream.url", "'https://:443/x'"),
    ("upstream:\n  url: share.example.com\n  api_key: k\n", "upstream.url", "'share.example"),
    ("upstream:\n  url: 'https://h:99999'\n  api_key: k\n", "upstream.url", "'https://h:99999'"),
    ("upstream:\n  url: 'https://h:abc'\n  api_key: k\n", "upstream.url", "'https://h:abc'"),
    ("upstream:\n  url: Embedded\n", "upstream.url", "'Embedded'"),
    ("store:\n  url: mysql://db/gateway\n", "store.url", "'mysql://db/gateway'"),
    ("store:\n  url: 'sqlite:///'\n", "store.url", "'sqlite:///'"),
    ("store:\n  url: 'sqlite://'\n", "store.url", "'sqlite://'"),
    ("store:\n  url: 'sqlite://data/'\n", "store.url", "'sqlite://data/'"),
    # numbers
    ("server:\n  max_body_bytes: -1\n", "server.max_body_bytes", "-1"),
    ("server:\n  max_body_bytes: 0\n", "server.max_body_bytes", "0"),
    ("server:\n  max_body_bytes: abc\n", "server.max_body_bytes", "'abc'"),
    ("server:\n  max_body_bytes: true\n", "server.max_body_bytes", "True"),
    ("server:\n  max_body_bytes: 1.5\n", "server.max_body_bytes", "1.5"),
    ("server:\n  max_body_bytes: 1MB\n", "server.max_body_bytes", "'1MB'"),
    ("server:\n  workers: 0\n", "server.workers", "0"),
    ("server:\n  workers: 2.5\n", "server.workers", "2.5"),
    ("server:\n  workers: .inf\n", "server.workers", "inf"),
    ("server:\n  workers: [2]\n", "server.workers", "[2]"),
    ("server:\n  read_timeout_s: 0\n", "server.read_timeout_s", "0"),
    ("server:\n  read_timeout_s: -1\n", "server.read_timeout_s", "-1"),
    ("server:\n  read_timeout_s: 30s\n", "server.read_timeout_s", "'30s'"),
    ("server:\n  read_timeout_s: .inf\n", "server.read_timeout_s", "inf"),
    ("server:\n  read_timeout_s: false\n", "server.read_timeout_s", "False"),
    ("upstream:\n  timeout_s: 0\n", "upstream.timeout_s", "0"),
    ("upstream:\n  timeout_s: -5\n", "upstream.timeout_s", "-5"),
    ("upstream:\n  timeout_s: abc\n", "upstream.timeout_s", "'abc'"),
    ("upstream:\n  timeout_s: false\n", "upstream.timeout_s", "False"),
    ("upstream:\n  timeout_s: .nan\n", "upstream.timeout_s", "nan"),
    ("upstream:\n  timeout_s: .inf\n", "upstream.timeout_s", "inf"),
    ("upstream:\n  connect_timeout_s: 0\n", "upstream.connect_timeout_s", "0"),
    ("upstream:\n  max_connections: 0\n", "upstream.max_connections", "0"),
    ("upstream:\n  max_connections: 1.5\n", "upstream.max_connections", "1.5"),
    ("upstream:\n  retries: -1\n", "upstream.retries", "-1"),
    ("upstream:\n  retries: yes\n", "upstream.retries", "True"),
    ("usage:\n  flush_interval_s: 0\n", "usage.flush_interval_s", "0"),
    ("usage:\n  flush_interval_s: 1s\n", "usage.flush_interval_s", "'1s'"),
    # choices and paths
    ("logging:\n  level: verbose\n", "logging.level", "'verbose'"),
    ("logging:\n  format: xml\n", "logging.format", "'xml'"),
    ("upstream:\n  update:\n    method: GET\n", "upstream.update.method", "'GET'"),
    ("upstream:\n  update:\n    path: webapi/share/{uuid}\n", "upstream.update.path", "'webapi"),
    ("upstream:\n  update:\n    path: /webapi/share/{id}\n", "upstream.update.path", "'/webapi"),
    # admin tokens
    ("admin:\n  tokens: ops\n", "admin.tokens", "'ops'"),
    ("admin:\n  tokens: [ops]\n", "admin.tokens[0]", "'ops'"),
    ("admin:\n  tokens:\n    - {name: ops}\n", "admin.tokens[0].token", "'nothing'"),
    ("admin:\n  tokens:\n    - {name: ops, token: ''}\n", "admin.tokens[0].token", "'nothing'"),
    ("admin:\n  tokens:\n    - {name: ops, token: short}\n", "admin.tokens[0].token", "'5 char"),
    ("admin:\n  tokens:\n    - {token: token-0123456789abc}\n", "admin.tokens[0].name", "''"),
    (
        "admin:\n  tokens:\n"
        "    - {name: ops, token: token-0123456789abc}\n"
        "    - {name: ops, token: token-0123456789xyz}\n",
        "admin.tokens[1].name",
        "'ops'",
    ),
    # secrets a deployment must give
    ("upstream:\n  url: https://share.example.com\n", "upstream.api_key", "'nothing'"),
    (
        "upstream:\n  url: https://share.example.com\n  api_key: ''\n",
        "upstream.api_key",
        "'nothing'",
    ),
    (
        "upstream:\n  url: https://share.example.com\n  api_key: ${KEY:-}\n",
        "upstream.api_key",
        "'nothing'",
    ),
    ("store:\n  url: postgresql://gw@db/gateway\n", "store.secret_key", "'nothing'"),
    (
        "store:\n  url: postgres://gw@db/gateway\n  secret_key: ''\n",
        "store.secret_key",
        "'nothing'",
    ),
]


@pytest.mark.parametrize(
    ("yaml_text", "setting", "found"), BAD_FILES, ids=[f"{row[1]}={row[2]}" for row in BAD_FILES]
)
def test_settings_bad_file_is_refused(
    tmp_path: Path, yaml_text: str, setting: str, found: str
) -> None:
    """Each mistake stops loading with the file, the dotted setting and what was found."""
    path = write(tmp_path, yaml_text)

    assert_names(refusal(path), path, setting, found)


def test_settings_error_never_shows_a_token(tmp_path: Path) -> None:
    """A refused admin token is described by its length, not printed."""
    path = write(tmp_path, "admin:\n  tokens:\n    - {name: ops, token: hunter2secret}\n")

    error = refusal(path)

    assert "hunter2secret" not in str(error)
    assert str(error) == (
        f"{path}: admin.tokens[0].token: expected a secret of at least 16 characters,"
        " found '13 characters'"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://:hunter2secret@cache:6380/0", "ftp://:***@cache:6380/0"),
        ("redis://user:hunter2secret@cache/x", "redis://user:***@cache/x"),
    ],
)
def test_settings_error_never_shows_a_redis_password(tmp_path: Path, url: str, shown: str) -> None:
    """A refused rate_limits.store URL is shown with its password replaced by ***."""
    path = write(tmp_path, f"rate_limits:\n  store: '{url}'\n")

    error = refusal(path)

    assert "hunter2secret" not in str(error)
    assert str(error).endswith(f"found {shown!r}")


def test_settings_embedded_upstream_needs_no_key(tmp_path: Path) -> None:
    """With upstream embedded and a SQLite store, no secret at all is required."""
    path = write(tmp_path, "upstream:\n  url: embedded\nstore:\n  url: sqlite://data/g.db\n")

    settings = load_settings(path, {})

    assert (settings.upstream.api_key, settings.store.secret_key) == (None, None)
    assert settings.store.data_dir == Path("data")


def _bad_path(tmp_path: Path, kind: str) -> Path:
    """A path whose reading fails in the way `kind` names."""
    path = tmp_path / "gateway.yaml"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
        return path
    contents = {
        "invalid yaml": b"server:\n  listen: [127.0.0.1:8080\n",
        "tab indent": b"server:\n\tlisten: 127.0.0.1:8080\n",
        "not utf-8": b"server:\n  listen: \xff\xfe\n",
        "top level list": b"- server\n- admin\n",
        "top level scalar": b"just text\n",
    }
    path.write_bytes(contents[kind])
    return path


@pytest.mark.parametrize(
    ("kind", "setting", "expected", "found"),
    [
        ("missing", "(file)", "a readable YAML file", "'No such file or directory'"),
        ("directory", "(file)", "a readable YAML file", "'Is a directory'"),
        ("invalid yaml", "line 3", "valid YAML", "\"expected ',' or ']'"),
        ("tab indent", "line 2", "valid YAML", "\"found character '\\\\t'"),
        ("not utf-8", "(file)", "UTF-8 text", "'undecodable bytes'"),
        ("top level list", "(top level)", "a mapping", "['server', 'admin']"),
        ("top level scalar", "(top level)", "a mapping", "'just text'"),
    ],
)
def test_settings_unreadable_file_is_refused(
    tmp_path: Path, kind: str, setting: str, expected: str, found: str
) -> None:
    """A file that cannot be read or is not a YAML mapping names the file and the problem."""
    path = _bad_path(tmp_path, kind)

    error = refusal(path)

    assert_names(error, path, setting, found)
    assert str(error).startswith(f"{path}: {setting}: expected {expected}, found ")


def test_example_loads_with_its_variables() -> None:
    """config.example.yaml loads with the gateway's loader: defaults plus the deployment's part."""
    settings = load_settings(EXAMPLE, ENV)

    assert settings == dataclasses.replace(
        DESIGN_DEFAULTS,
        admin=AdminSettings(
            listen=Listen("127.0.0.1", 8081),
            tokens=(AdminToken("ops", ENV["GATEWAY_ADMIN_TOKEN"]),),
        ),
        store=StoreSettings(
            url="sqlite://./share-gateway-data/gateway.db",
            secret_key=ENV["GATEWAY_SECRET_KEY"],
        ),
        upstream=dataclasses.replace(
            DESIGN_DEFAULTS.upstream,
            url="https://confluence.external-share.com",
            api_key=ENV["EXTERNAL_SHARE_API_KEY"],
        ),
        source=str(EXAMPLE),
    )


@pytest.mark.parametrize("variable", sorted(ENV))
def test_example_needs_each_variable(variable: str) -> None:
    """Without one of its secrets, the example is refused naming that variable."""
    env = {name: value for name, value in ENV.items() if name != variable}

    error = refusal(EXAMPLE, env)

    assert f"expected environment variable {variable} to be set" in str(error)
    assert str(error).endswith(f"found '{variable} unset'")


def _sections() -> dict[str, type]:
    """The sections of Settings, by name, as their dataclasses ('source' is no setting)."""
    hints = typing.get_type_hints(Settings)
    return {
        field.name: hints[field.name]
        for field in dataclasses.fields(Settings)
        if isinstance(hints[field.name], type) and dataclasses.is_dataclass(hints[field.name])
    }


def _settings_missing(cls: type, data: object, where: str, checked: list[str]) -> list[str]:
    """Dotted names of `cls`'s settings absent from `data`, recursing into nested sections."""
    hints = typing.get_type_hints(cls)
    missing: list[str] = []
    for field in dataclasses.fields(cls):
        name = f"{where}.{field.name}"
        checked.append(name)
        if not isinstance(data, dict) or field.name not in data:
            missing.append(name)
            continue
        kind, value = hints[field.name], data[field.name]
        entry = (typing.get_args(kind) or [None])[0]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and kind is not Listen:
            missing += _settings_missing(kind, value, name, checked)
        elif typing.get_origin(kind) is tuple and isinstance(entry, type):
            # A list of entries such as admin.tokens: its first entry shows every field.
            item = value[0] if isinstance(value, list) and value else None
            if dataclasses.is_dataclass(entry):
                missing += _settings_missing(entry, item, f"{name}[0]", checked)
    return missing


def test_example_documents_every_setting() -> None:
    """Every field of every Settings section, nested ones too, appears in the example."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    checked: list[str] = []

    missing = [
        name
        for section, cls in _sections().items()
        for name in _settings_missing(cls, data.get(section), section, checked)
    ]

    assert missing == []
    assert list(_sections()) == [
        *("server", "admin", "store", "upstream", "usage", "logging", "metrics", "rate_limits")
    ]
    assert {"admin.tokens[0].token", "upstream.update.method", "logging.format"} <= set(checked)


def _comment_above(lines: list[str], section: str, name: str) -> str:
    """The comment lines just above `section.name` in the example, joined; '' if none."""
    top = lines.index(f"{section}:")
    body = list(itertools.takewhile(lambda line: not line[:1].strip(), lines[top + 1 :]))
    at = [i for i, line in enumerate(body) if re.match(rf"  {name}:( |$)", line)]
    if not at:
        return ""
    above = list(
        itertools.takewhile(lambda line: line.lstrip().startswith("#"), body[at[0] - 1 :: -1])
    )
    return " ".join(line.strip(" #") for line in reversed(above))


def test_example_comments_every_setting() -> None:
    """Each setting has a comment just above it that says whether SIGHUP applies it."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()

    undocumented = [
        f"{section}.{field.name}"
        for section, cls in _sections().items()
        for field in dataclasses.fields(cls)
        if not re.search(r"\b(Reload|Restart)\b", _comment_above(lines, section, field.name))
    ]

    assert undocumented == []
    assert "Restart" in _comment_above(lines, "admin", "listen")
    assert "Reload" in _comment_above(lines, "admin", "tokens")


def _check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """python -m gateway check-config PATH, in its own process."""
    clean = {name: value for name, value in os.environ.items() if name not in ENV}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        check=False,
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("unknown key", "{path}: server.port: expected "),
        ("bad listen", "{path}: server.listen: expected "),
        ("unset variable", "{path}: store.secret_key: expected environment variable KEY"),
        ("invalid yaml", "{path}: line 2: expected valid YAML, found "),
        ("missing", "{path}: (file): expected a readable YAML file, found "),
        ("example without its variables", "{path}: admin.tokens[0].token: expected "),
    ],
)
def test_check_config_refuses_a_bad_file(tmp_path: Path, kind: str, message: str) -> None:
    """check-config exits non-zero with the message on stderr and no traceback."""
    contents = {
        "unknown key": "server:\n  port: 8080\n",
        "bad listen": "server:\n  listen: 127.0.0.1:70000\n",
        "unset variable": "store:\n  secret_key: ${KEY}\n",
        "invalid yaml": "server:\n\tlisten: 127.0.0.1:8080\n",
    }
    path = EXAMPLE if kind == "example without its variables" else tmp_path / "gateway.yaml"
    if kind in contents:
        path.write_text(contents[kind], encoding="utf-8")

    result = _check_config(path, {})

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: " + message.format(path=path))
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("example", [False, True])
def test_check_config_accepts_a_good_file(tmp_path: Path, example: bool) -> None:
    """check-config exits 0 and prints OK for a good file, the example included."""
    path = EXAMPLE if example else tmp_path / "gateway.yaml"
    if not example:
        path.write_text("server:\n  listen: 127.0.0.1:9000\n", encoding="utf-8")

    result = _check_config(path, ENV if example else {})

    assert (result.returncode, result.stdout, result.stderr) == (0, f"{path}: OK\n", "")
