"""The deploy recipes: their gateway configs load, and their files agree with each other.

Every gateway YAML under deploy/ is loaded with the gateway's own loader and
the environment its recipe provides. Docker, Compose, Kubernetes and systemd
do not run here, so what they would do with the other files is checked from
the files themselves; the Dockerfile's health check and the unit's reload
command are run against a real gateway process.
"""

from __future__ import annotations

import http.server
import json
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import netaddr
import pytest
import yaml

from gateway.app import SHUTDOWN_TIMEOUT_S
from gateway.cli import _parser
from gateway.config import ConfigError, Settings, load_settings, parse_settings
from tests import recipes
from tests.processes import GatewayProcess, free_port
from tests.recipes import DEPLOY, REPO, DockerIgnore, Instruction, PublishedPort

Start = Callable[..., GatewayProcess]

COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
SECRET_NAMES = ("GATEWAY_ADMIN_TOKEN", "GATEWAY_SECRET_KEY", "EXTERNAL_SHARE_API_KEY")
PLACEHOLDER = "CHANGE-ME"


def serve_config(argv: list[str]) -> Path:
    """The --config of a `share-gateway serve` command line, read by the real CLI parser."""
    words = argv[1:] if argv and argv[0].endswith("share-gateway") else argv
    args = _parser().parse_args(words)
    assert args.command == "serve"
    assert args.config is not None
    path: Path = args.config
    return path


# Docker


def instructions(keyword: str) -> list[Instruction]:
    return [i for i in recipes.dockerfile(DEPLOY / "Dockerfile") if i.keyword == keyword]


def image_config_source() -> Path:
    """The repository file the Dockerfile copies to where the command's --config points."""
    command = instructions("ENTRYPOINT")[-1].argv() + instructions("CMD")[-1].argv()
    target = str(serve_config(command))
    for copy in instructions("COPY"):
        sources, destination = recipes.copy_sources(copy)
        if destination == target:
            return REPO / sources[0]
    raise AssertionError(f"nothing is copied to {target}")


IMAGE_ENV = {"GATEWAY_ADMIN_TOKEN": "image-admin-token-0123456789"}


def image_settings(env: dict[str, str] | None = None) -> Settings:
    return load_settings(image_config_source(), IMAGE_ENV if env is None else env)


def test_dockerfile_stages_start_from_python_3_11_slim() -> None:
    args = dict(i.value.split("=", 1) for i in instructions("ARG") if "=" in i.value)
    images = [i.value.split()[0] for i in instructions("FROM")]

    resolved = [recipes.compose_interpolate(image, args) for image in images]

    assert len(resolved) == 2
    assert all(image == "python:3.11-slim" for image in resolved)


def test_dockerfile_runs_as_a_numeric_non_root_user_owning_the_data_folder() -> None:
    user = instructions("USER")[-1].value
    uid, _, gid = user.partition(":")
    setup = " ".join(i.value for i in instructions("RUN"))

    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0
    assert f"--uid {uid}" in setup
    assert f"install -d -o {uid} -g {gid} -m 0700 /var/lib/share-gateway" in setup
    assert image_settings().store.sqlite_path == Path("/var/lib/share-gateway/gateway.db")


def test_dockerfile_exposes_both_listeners_of_its_config() -> None:
    settings = image_settings()
    exposed = {int(port) for i in instructions("EXPOSE") for port in i.value.split()}

    assert exposed == {settings.server.listen.port, settings.admin.listen.port}
    # Published ports reach a container's own interfaces, not its loopback.
    assert settings.server.listen.host == "0.0.0.0"
    assert settings.admin.listen.host == "0.0.0.0"


def test_dockerfile_installs_the_wheels_it_builds_without_the_index() -> None:
    runs = [i.value for i in instructions("RUN")]

    assert any("pip wheel" in run and "--wheel-dir /wheels ." in run for run in runs)
    assert any("--no-index --find-links /wheels confluence-share-gateway" in run for run in runs)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            IMAGE_ENV,
            {"store": "sqlite:///var/lib/share-gateway/gateway.db", "upstream": "embedded"},
        ),
        (
            {
                **IMAGE_ENV,
                "GATEWAY_STORE_URL": "postgresql://gw:pw@db.internal/share_gateway",
                "GATEWAY_SECRET_KEY": "image-secret-key-0123456789",
                "UPSTREAM_URL": "https://confluence.external-share.com",
                "EXTERNAL_SHARE_API_KEY": "upstream-key",
            },
            {
                "store": "postgresql://gw:pw@db.internal/share_gateway",
                "upstream": "https://confluence.external-share.com",
            },
        ),
    ],
)
def test_image_config_loads_with_the_environment_it_documents(
    env: dict[str, str], expected: dict[str, str]
) -> None:
    settings = image_settings(env)

    assert {"store": settings.store.url, "upstream": settings.upstream.url} == expected
    assert [t.token for t in settings.admin.tokens] == [env["GATEWAY_ADMIN_TOKEN"]]


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({}, "admin.tokens[0].token"),
        ({**IMAGE_ENV, "UPSTREAM_URL": "https://upstream.example"}, "upstream.api_key"),
        ({**IMAGE_ENV, "GATEWAY_STORE_URL": "postgresql://gw@db/share"}, "store.secret_key"),
    ],
)
def test_image_config_refuses_a_missing_secret_naming_it(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as error:
        image_settings(env)

    assert error.value.setting == setting


def test_dockerfile_bakes_in_no_secret() -> None:
    declared = " ".join(i.value for i in instructions("ENV") + instructions("ARG"))

    assert not [name for name in SECRET_NAMES if name in declared]
    assert "token" not in declared.lower()


def healthcheck_argv(port: int) -> list[str]:
    """The HEALTHCHECK command as written, asking `port` instead of the image's port."""
    _, _, command = instructions("HEALTHCHECK")[-1].value.partition("CMD ")
    argv = Instruction("CMD", command.strip()).argv()
    image_port = image_settings().server.listen.port
    address = f"127.0.0.1:{image_port}/healthz"
    assert argv[0] == "python"
    assert address in argv[-1], f"the health check does not ask {address}"
    # The slim image's python is the one that runs it; any Python 3 has urllib.
    return [sys.executable, *argv[1:-1], argv[-1].replace(address, f"127.0.0.1:{port}/healthz")]


def run_healthcheck(port: int) -> int:
    return subprocess.run(healthcheck_argv(port), capture_output=True, timeout=30).returncode


def test_dockerfile_healthcheck_passes_while_the_gateway_runs_and_fails_once_stopped(
    gateway_process: Start,
) -> None:
    gateway = gateway_process()

    running = run_healthcheck(gateway.public_port)
    gateway.stop()
    stopped = run_healthcheck(gateway.public_port)

    assert running == 0
    assert stopped != 0


@pytest.fixture
def failing_healthz() -> Iterator[int]:
    """A real HTTP server on a free port whose /healthz answers 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_dockerfile_healthcheck_fails_on_an_answer_other_than_200(failing_healthz: int) -> None:
    assert run_healthcheck(failing_healthz) != 0


def test_dockerignore_keeps_what_the_image_copies_and_leaves_out_local_files() -> None:
    ignore = DockerIgnore(REPO / ".dockerignore")
    copied = [src for i in instructions("COPY") for src in recipes.copy_sources(i)[0]]
    files = [
        str(path.relative_to(REPO))
        for source in copied
        for path in ([REPO / source] if (REPO / source).is_file() else (REPO / source).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]

    assert any(f.startswith("gateway/admin/static/") for f in files)
    assert [f for f in files if ignore.excludes(f)] == []
    for local in (
        ".venv/bin/python",
        ".git/HEAD",
        "deploy/compose/.env",
        "deploy/kubernetes/secret.yaml",
        "share-gateway-data/secret.key",
        "test-artifacts/run.log",
        "tests/test_deploy.py",
        "gateway/__pycache__/app.cpython-311.pyc",
    ):
        assert ignore.excludes(local), local


PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q"]


def build_stage_copies() -> list[Instruction]:
    """The COPY lines of the first stage, the one that runs `pip wheel`."""
    stage = -1
    copies: list[Instruction] = []
    for instruction in recipes.dockerfile(DEPLOY / "Dockerfile"):
        stage += instruction.keyword == "FROM"
        if stage == 0 and instruction.keyword == "COPY":
            copies.append(instruction)
    return copies


def test_docker_build_context_builds_a_wheel_with_the_panel_and_the_command(
    tmp_path: Path,
) -> None:
    """The build stage's `pip wheel .`, on exactly the files its COPY lines get."""
    ignore = DockerIgnore(REPO / ".dockerignore")
    context = tmp_path / "src"
    for copy in build_stage_copies():
        for source in recipes.copy_sources(copy)[0]:
            root = REPO / source
            for path in [root] if root.is_file() else sorted(root.rglob("*")):
                relative = str(path.relative_to(REPO))
                if path.is_file() and not ignore.excludes(relative):
                    (context / relative).parent.mkdir(parents=True, exist_ok=True)
                    (context / relative).write_bytes(path.read_bytes())

    subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        check=True,
        capture_output=True,
        timeout=110,
    )

    (wheel,) = (tmp_path / "wheels").glob("confluence_share_gateway-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "gateway/cli.py" in names
    assert any(n.startswith("gateway/admin/static/") for n in names)
    assert "share-gateway = gateway.cli:main" in scripts


# Compose


def compose_text() -> str:
    return (COMPOSE / "compose.yaml").read_text(encoding="utf-8")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(compose_text())
    return data


def env_example() -> dict[str, str]:
    return recipes.env_file(COMPOSE / ".env.example")


def gateway_services() -> dict[str, dict[str, Any]]:
    """The services that run `share-gateway serve` (the image's entry point)."""
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {name: s for name, s in services.items() if s.get("command", [None])[0] == "serve"}


def test_compose_file_follows_the_compose_specification() -> None:
    """Checked against the Compose Specification's JSON schema (as check-jsonschema ships it)."""
    schema = ["--builtin-schema", "vendor.compose-spec"]
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(COMPOSE / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def compose_gateway_settings(service: dict[str, Any]) -> Settings:
    """The service's config file, found through its volumes, loaded with its environment."""
    env = {
        name: recipes.compose_interpolate(str(value), env_example())
        for name, value in service["environment"].items()
    }
    target = str(serve_config(service["command"]))
    mounts = [str(v).split(":") for v in service["volumes"]]
    (source,) = [host for host, container, *_ in mounts if container == target]
    return load_settings(COMPOSE / source, env)


def test_compose_runs_two_gateways_whose_config_loads_with_the_env_example() -> None:
    gateways = gateway_services()

    loaded = {name: compose_gateway_settings(s) for name, s in gateways.items()}

    assert sorted(loaded) == ["gateway-1", "gateway-2"]
    for settings in loaded.values():
        assert urlsplit(settings.store.url).scheme == "postgresql"
        assert settings.store.secret_key == env_example()["GATEWAY_SECRET_KEY"]


def test_compose_variables_come_from_the_env_example_holding_placeholders_only() -> None:
    example = env_example()
    secrets = {n: v for n, v in example.items() if n.endswith(("TOKEN", "KEY", "PASSWORD"))}

    assert compose_variables_missing(example) == set()
    assert sorted(secrets) == sorted([*SECRET_NAMES, "POSTGRES_PASSWORD"])
    assert all(value.startswith(PLACEHOLDER) for value in secrets.values())
    for service in compose()["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if name in secrets:
                assert str(value).startswith(f"${{{name}:?"), f"{name} is written in"


def compose_variables_missing(example: dict[str, str]) -> set[str]:
    return recipes.compose_variables(compose_text()) - set(example)


def test_compose_gateways_wait_for_a_healthy_postgres_their_url_names() -> None:
    postgres = compose()["services"]["postgres"]
    env = {
        n: recipes.compose_interpolate(str(v), env_example())
        for n, v in postgres["environment"].items()
    }

    assert postgres["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"][1:])
    assert "ports" not in postgres
    for name, service in gateway_services().items():
        url = urlsplit(compose_gateway_settings(service).store.url)
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == env["POSTGRES_USER"]
        assert url.password == env["POSTGRES_PASSWORD"]
        assert url.path == f"/{env['POSTGRES_DB']}"


def nginx() -> recipes.NginxConfig:
    service = compose()["services"]["nginx"]
    (mount,) = [v for v in service["volumes"] if ":/etc/nginx/nginx.conf" in v]
    return recipes.NginxConfig((COMPOSE / mount.split(":")[0]).read_text(encoding="utf-8"))


def test_compose_nginx_forwards_to_every_gateways_public_listener_only() -> None:
    expected = {
        (name, compose_gateway_settings(s).server.listen.port)
        for name, s in gateway_services().items()
    }
    (proxy_pass,) = nginx().directives("proxy_pass")
    upstream = proxy_pass.removeprefix("http://")

    assert set(nginx().upstream_servers(upstream)) == expected
    assert len(nginx().upstream_servers(upstream)) == len(expected)


def test_compose_nginx_publishes_the_port_it_listens_on() -> None:
    (listen,) = nginx().directives("listen")
    published = [PublishedPort.parse(p) for p in compose()["services"]["nginx"]["ports"]]

    assert [p.container_port for p in published] == [int(listen)]


def test_compose_nginx_appends_the_client_to_x_forwarded_for() -> None:
    headers = nginx().directives("proxy_set_header")

    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in headers


def test_compose_nginx_lets_the_gateway_answer_oversized_bodies() -> None:
    (limit,) = nginx().directives("client_max_body_size")
    largest = max(
        compose_gateway_settings(s).server.max_body_bytes for s in gateway_services().values()
    )

    assert recipes.size_bytes(limit) > largest


@pytest.mark.parametrize(
    ("status", "code"),
    [(413, "PAYLOAD_TOO_LARGE"), (502, "UPSTREAM_UNAVAILABLE"), (504, "UPSTREAM_TIMEOUT")],
)
def test_compose_nginx_answers_its_own_refusals_in_the_error_shape(status: int, code: str) -> None:
    pages = dict(page.split() for page in nginx().directives("error_page"))

    returned, body = nginx().named_return(pages[str(status)].removeprefix("@"))
    answer = json.loads(body.replace("$request_id", "0" * 32).replace("\\n", ""))

    assert returned == status
    assert answer == {"error": code, "message": answer["message"], "requestId": "0" * 32}
    assert answer["message"]


def test_compose_gateways_trust_only_nginx_for_x_forwarded_for() -> None:
    services = compose()["services"]
    nginx_address = services["nginx"]["networks"]["fleet"]["ipv4_address"]
    ipam = compose()["networks"]["fleet"]["ipam"]["config"][0]

    assert netaddr.IPAddress(nginx_address) in netaddr.IPNetwork(ipam["subnet"])
    # Outside the range Docker hands out, so no other container can be given it.
    assert netaddr.IPAddress(nginx_address) not in netaddr.IPNetwork(ipam["ip_range"])
    for name, service in gateway_services().items():
        trusted = compose_gateway_settings(service).server.trusted_proxies
        assert trusted == netaddr.IPSet([nginx_address]), name


def test_compose_publishes_admin_listeners_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        admin_ports = (
            {compose_gateway_settings(service).admin.listen.port}
            if name in gateway_services()
            else set()
        )
        for port in map(PublishedPort.parse, service.get("ports", [])):
            if port.container_port in admin_ports:
                assert port.host_ip == "127.0.0.1", name
            else:
                assert name == "nginx", f"{name} publishes {port}"


def test_compose_stop_grace_period_outlasts_the_drain() -> None:
    for name, service in gateway_services().items():
        assert recipes.duration_s(service["stop_grace_period"]) > SHUTDOWN_TIMEOUT_S, name


# Kubernetes


def manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return documents


def manifest(kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_kubernetes_manifests_follow_the_api_schemas(version: str) -> None:
    """Strict: an unknown field fails too. 1.29 is the first with native sidecars on by default."""
    files = [str(path) for path in sorted(KUBERNETES.glob("*.yaml"))]

    checked = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed for resource") == len(manifests())


def pod() -> dict[str, Any]:
    (deployment,) = [m for m in manifests() if m["kind"] == "Deployment"]
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def sidecar() -> dict[str, Any]:
    gateways: list[dict[str, Any]] = [
        c for c in pod()["initContainers"] if c["name"] == "share-gateway"
    ]
    (gateway,) = gateways
    return gateway


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, Secret references read from the example Secrets."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = manifest("Secret", ref["name"])["stringData"][ref["key"]]
    return env


def sidecar_settings() -> Settings:
    """The ConfigMap file the sidecar's --config names, loaded with the sidecar's environment."""
    config = serve_config(sidecar()["args"])
    (mount,) = [m for m in sidecar()["volumeMounts"] if Path(m["mountPath"]) == config.parent]
    (volume,) = [v for v in pod()["volumes"] if v["name"] == mount["name"]]
    configmap = manifest("ConfigMap", volume["configMap"]["name"])
    text = configmap["data"][config.name]
    return parse_settings(
        yaml.safe_load(text), f"ConfigMap {config.name}", container_env(sidecar())
    )


def test_kubernetes_sidecar_config_loads_with_the_secret_env_on_postgres() -> None:
    settings = sidecar_settings()

    assert urlsplit(settings.store.url).scheme == "postgresql"
    assert settings.store.secret_key == container_env(sidecar())["GATEWAY_SECRET_KEY"]
    assert [t.token for t in settings.admin.tokens] == [
        manifest("Secret", "share-gateway")["stringData"]["admin-token"]
    ]


def probe_port(probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (numbered,) = [p["containerPort"] for p in sidecar()["ports"] if p["name"] == port]
    return int(numbered)


@pytest.mark.parametrize(
    ("probe", "path"),
    [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")],
)
def test_kubernetes_probes_ask_the_configmap_public_listener(probe: str, path: str) -> None:
    settings = sidecar_settings()

    assert sidecar()[probe]["httpGet"]["path"] == path
    assert probe_port(sidecar()[probe]) == settings.server.listen.port
    # The kubelet probes the pod's address, so the listener must be on all interfaces.
    assert settings.server.listen.host == "0.0.0.0"


def test_kubernetes_admin_listener_stays_on_the_pods_loopback() -> None:
    settings = sidecar_settings()
    declared = {
        p["containerPort"] for c in [sidecar(), *pod()["containers"]] for p in c.get("ports", [])
    }

    assert settings.admin.listen.host == "127.0.0.1"
    assert settings.admin.listen.port not in declared


def test_kubernetes_app_calls_the_sidecars_public_listener() -> None:
    (app,) = pod()["containers"]
    url = urlsplit(container_env(app)["SHARE_API_URL"])

    assert (url.hostname, url.port) == ("127.0.0.1", sidecar_settings().server.listen.port)


def test_kubernetes_secrets_hold_placeholders_only() -> None:
    secrets = [m for m in manifests() if m["kind"] == "Secret"]
    values = [v for s in secrets for v in s["stringData"].values()]

    assert values and all(PLACEHOLDER in value for value in values)
    assert "EXAMPLE ONLY" in (KUBERNETES / "secret.example.yaml").read_text(encoding="utf-8")
    assert "secret.yaml" in (KUBERNETES / ".gitignore").read_text(encoding="utf-8").split()


def test_kubernetes_pod_runs_as_the_image_user_without_privileges() -> None:
    uid, _, gid = instructions("USER")[-1].value.partition(":")
    context = pod()["securityContext"]

    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))
    assert sidecar()["restartPolicy"] == "Always"
    for container in [sidecar(), *pod()["containers"]]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]


def test_kubernetes_containers_have_requests_and_limits() -> None:
    for container in [sidecar(), *pod()["containers"]]:
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, (container["name"], kind)


def test_kubernetes_grace_period_outlasts_the_drain() -> None:
    assert pod()["terminationGracePeriodSeconds"] > SHUTDOWN_TIMEOUT_S


# systemd


def unit() -> dict[str, dict[str, list[str]]]:
    return recipes.systemd_unit(SYSTEMD / "share-gateway.service")


def service(name: str) -> str:
    (value,) = unit()["Service"][name]
    return value


def systemd_settings(env: dict[str, str], *, store_only: bool = False) -> Settings:
    return load_settings(SYSTEMD / "gateway.yaml", env, store_only=store_only)


def test_systemd_config_loads_with_the_environment_file_example() -> None:
    env = recipes.env_file(SYSTEMD / "share-gateway.env.example")

    settings = systemd_settings(env)

    assert sorted(env) == ["EXTERNAL_SHARE_API_KEY", "GATEWAY_ADMIN_TOKEN"]
    assert all(value.startswith(PLACEHOLDER) for value in env.values())
    assert settings.upstream.api_key == env["EXTERNAL_SHARE_API_KEY"]


def test_systemd_config_serves_key_commands_without_the_environment_file() -> None:
    """`keys ...` run as the service user has no EnvironmentFile, and needs none."""
    settings = systemd_settings({}, store_only=True)

    assert settings.store.secret_key is None
    assert settings.store.sqlite_path is not None


def test_systemd_exec_start_is_a_real_serve_command_on_the_installed_files() -> None:
    argv = shlex.split(service("ExecStart"))
    environment_file = Path(service("EnvironmentFile"))

    assert argv[0] == "/opt/share-gateway/bin/share-gateway"
    assert serve_config(argv) == Path("/etc/share-gateway/gateway.yaml")
    assert environment_file == Path("/etc/share-gateway/share-gateway.env")
    assert (SYSTEMD / f"{environment_file.name}.example").is_file()
    assert (SYSTEMD / serve_config(argv).name).is_file()


def test_systemd_store_lives_in_the_state_directory() -> None:
    state = Path("/var/lib") / service("StateDirectory")
    settings = systemd_settings(recipes.env_file(SYSTEMD / "share-gateway.env.example"))

    assert settings.store.sqlite_path is not None
    assert settings.store.sqlite_path.parent == state
    assert Path(service("WorkingDirectory")) == state


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("User", "share-gateway"),
        ("Group", "share-gateway"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
        ("KillSignal", "SIGTERM"),
        ("KillMode", "mixed"),
    ],
)
def test_systemd_unit_sets(setting: str, value: str) -> None:
    assert service(setting) == value


def test_systemd_stop_timeout_outlasts_the_drain() -> None:
    assert float(service("TimeoutStopSec")) > SHUTDOWN_TIMEOUT_S


def test_systemd_exec_reload_makes_a_running_gateway_reload(gateway_process: Start) -> None:
    gateway = gateway_process()
    assert gateway.process is not None
    argv = shlex.split(service("ExecReload"))
    assert "$MAINPID" in argv

    subprocess.run(
        [str(gateway.process.pid) if word == "$MAINPID" else word for word in argv],
        check=True,
        timeout=10,
    )

    deadline = time.monotonic() + 10
    while "reloaded" not in gateway.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reloaded" in gateway.logs()
    assert gateway.process.poll() is None
