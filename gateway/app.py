"""Builds the public and admin applications, starts what they share, and runs them."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from gateway import openapi
from gateway.admin.api import add_admin_routes, admin_auth_middleware
from gateway.admin.metrics import add_metrics_route
from gateway.admin.panel import add_panel_routes
from gateway.config import AdminToken, ConfigError, Listen, Settings, load_settings
from gateway.errors import ApiError, error_middleware
from gateway.keys.cache import KeyCache
from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault, read_or_create_secret, read_or_create_token
from gateway.limits import open_limiter
from gateway.listeners import GuardedAppRunner
from gateway.log import SERVER_LOG, access_middleware
from gateway.log import configure as configure_logging
from gateway.metrics import GatewayMetrics, count_requests
from gateway.proxy.routes import add_share_routes
from gateway.proxy.upstream import UpstreamClient
from gateway.state import STATE, GatewayState
from gateway.store import Store, StoreError, StoreStartError, open_store
from gateway.usage import UsageCounter
from gateway.workers import Supervisor, metrics_dir, worker_number

log = logging.getLogger(SERVER_LOG)

T = TypeVar("T")

# How long SIGTERM waits for requests in flight before closing their connections.
SHUTDOWN_TIMEOUT_S = 30.0


def secret_key(settings: Settings) -> str:
    """store.secret_key, or one generated beside the SQLite file."""
    if settings.store.secret_key is not None:
        return settings.store.secret_key
    return _in_data_dir(
        settings, lambda: read_or_create_secret(settings.store.data_dir / "secret.key")
    )


def _in_data_dir(settings: Settings, make: Callable[[], T]) -> T:
    """Run a write into the data folder; a folder that cannot be used names itself."""
    try:
        return make()
    except OSError as exc:
        folder = settings.store.data_dir.resolve()
        raise StoreStartError(f"cannot use data folder {folder}: {exc.strerror}") from None


def with_admin_tokens(settings: Settings) -> Settings:
    """With no admin token configured, one is generated into the data folder."""
    if settings.admin.tokens:
        return settings
    path = settings.store.data_dir / "admin-token"
    token, created = _in_data_dir(settings, lambda: read_or_create_token(path))
    # SECURITY: the log names the file that holds the token, never the token.
    log.warning("no admin token configured; %s %s", "generated" if created else "using", path)
    return replace(settings, admin=replace(settings.admin, tokens=(AdminToken("admin", token),)))


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STATE].store.ping()
    except StoreError as exc:
        raise ApiError(503, "NOT_READY", f"the store is not usable: {exc}") from None
    return web.json_response({"status": "ready"})


def public_app(state: GatewayState) -> web.Application:
    """The listener clients call: the share routes and the health checks."""
    app = web.Application(
        # Outermost, so that each answer is counted with the status the client got.
        middlewares=[count_requests(state.metrics), access_middleware, error_middleware],
        client_max_size=state.settings.server.max_body_bytes,
    )
    app[STATE] = state
    add_share_routes(app)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readyz, allow_head=False)
    return app


def admin_app(state: GatewayState) -> web.Application:
    """The listener ops use: the admin API and the panel."""
    app = web.Application(
        middlewares=[access_middleware, error_middleware, admin_auth_middleware],
        client_max_size=1024 * 1024,
    )
    app[STATE] = state
    add_admin_routes(app)
    add_panel_routes(app)
    add_metrics_route(app)
    app.router.add_get("/openapi.json", openapi_json, allow_head=False)
    return app


class ListenError(Exception):
    """A listener could not be opened: the address is taken, not local, or not allowed."""


class Gateway:
    """One gateway process: store, cache, usage, upstream, both listeners."""

    def __init__(self, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        # Workers share their listeners' ports; the kernel spreads connections over them.
        self.reuse_port = reuse_port
        self.state: GatewayState | None = None
        self._runners: list[web.AppRunner] = []
        self._backend: web.AppRunner | None = None
        # The embedded backend's address and key, which a reload does not change.
        self._embedded: tuple[str, str] | None = None
        # Upstream clients replaced by a reload, closed once their requests had time to end.
        self._retired: list[UpstreamClient] = []
        self._retiring: set[asyncio.TimerHandle] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.public_url = ""
        self.admin_url = ""

    async def start(self) -> None:
        settings = with_admin_tokens(self.settings)
        vault = KeyVault(secret_key(settings))
        store: Store = open_store(settings.store.url)
        await store.open()

        try:
            base_url, api_key = await self._upstream(settings)
            upstream = UpstreamClient(settings.upstream, base_url, api_key)
            await upstream.open()
            metrics = GatewayMetrics(
                per_key=settings.metrics.per_key, multiprocess_dir=metrics_dir()
            )
            cache = KeyCache(
                store, vault, hit_tally=metrics.cache_hits, miss_tally=metrics.cache_misses
            )
            usage = UsageCounter(store, settings.usage.flush_interval_s, metrics.flush)
            limiter = open_limiter(settings.rate_limits, metrics.rate_limit_fallbacks)
            await limiter.open()
            self.state = GatewayState(
                settings,
                store,
                KeyService(store, vault),
                cache,
                usage,
                upstream,
                metrics,
                limiter=limiter,
            )
            cache.start()
            usage.start()
            public, admin = public_app(self.state), admin_app(self.state)
            self.public_url = await self._serve(public, settings.server.listen, "server.listen")
            self.admin_url = await self._serve(admin, settings.admin.listen, "admin.listen")
        except BaseException:
            await self.stop()
            await store.close()
            raise
        log.info("serving shares on %s, admin on %s", self.public_url, self.admin_url)
        if settings.admin.listen.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "the admin listener is reachable beyond this host: %s", settings.admin.listen
            )

    async def _upstream(self, settings: Settings) -> tuple[str, str]:
        if not settings.upstream.embedded:
            assert settings.upstream.api_key is not None
            return settings.upstream.url, settings.upstream.api_key
        from gateway.backend import start_backend

        # The embedded backend's key lives only in this process: the gateway is its one client.
        api_key = secrets.token_urlsafe(32)
        db_path = settings.store.data_dir / "shares.db"
        self._backend, base_url = await start_backend(db_path, api_key)
        self._embedded = (base_url, api_key)
        log.info("embedded reference backend on %s (%s)", base_url, db_path)
        return base_url, api_key

    async def _serve(self, app: web.Application, listen: Listen, setting: str) -> str:
        runner = GuardedAppRunner(
            app,
            read_timeout_s=self.settings.server.read_timeout_s,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(
            runner, listen.host, listen.port, backlog=1024, reuse_port=self.reuse_port or None
        )
        try:
            await site.start()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ListenError(f"{setting}: cannot listen on {listen}: {reason}") from None
        host, port = runner.addresses[0][:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def reload(self, new: Settings) -> list[str]:
        """Apply what can change while running; answer the settings that need a restart.

        The settings that need a restart keep their old values. Requests in
        flight keep the upstream client they started with; it is closed once
        they have had the upstream timeout to finish.
        """
        state = self.state
        if state is None:
            return []
        old = state.settings
        new = with_admin_tokens(new)
        kept = [
            name
            for name, before, after in (
                ("server.listen", old.server.listen, new.server.listen),
                ("server.workers", old.server.workers, new.server.workers),
                ("server.max_body_bytes", old.server.max_body_bytes, new.server.max_body_bytes),
                ("server.read_timeout_s", old.server.read_timeout_s, new.server.read_timeout_s),
                ("admin.listen", old.admin.listen, new.admin.listen),
                ("store.url", old.store.url, new.store.url),
                ("store.secret_key", old.store.secret_key, new.store.secret_key),
                ("upstream.url", old.upstream.embedded, new.upstream.embedded),
                ("metrics.per_key", old.metrics.per_key, new.metrics.per_key),
                ("rate_limits.store", old.rate_limits.store, new.rate_limits.store),
                (
                    "rate_limits.redis_prefix",
                    old.rate_limits.redis_prefix,
                    new.rate_limits.redis_prefix,
                ),
            )
            if before != after
        ]
        applied = replace(
            new,
            server=replace(old.server, trusted_proxies=new.server.trusted_proxies),
            admin=replace(old.admin, tokens=new.admin.tokens),
            store=old.store,
            upstream=old.upstream if "upstream.url" in kept else new.upstream,
            metrics=old.metrics,
            rate_limits=old.rate_limits,
        )

        if applied.upstream != old.upstream:
            await self._replace_upstream(state, applied)
        state.usage.interval_s = applied.usage.flush_interval_s
        configure_logging(applied.logging.level, applied.logging.format)
        state.settings = applied
        return kept

    async def _replace_upstream(self, state: GatewayState, settings: Settings) -> None:
        base_url, api_key = self._embedded or (
            settings.upstream.url,
            settings.upstream.api_key or "",
        )
        client = UpstreamClient(settings.upstream, base_url, api_key)
        await client.open()
        retired, state.upstream = state.upstream, client
        self._retired.append(retired)
        grace = state.settings.upstream.timeout_s + 1
        loop = asyncio.get_running_loop()
        self._retiring.add(loop.call_later(grace, lambda: self._retire(retired)))

    def _retire(self, client: UpstreamClient) -> None:
        task = asyncio.ensure_future(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        """Finish requests in flight, then write the last usage counts and close."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []
        for handle in self._retiring:
            handle.cancel()
        self._retiring.clear()
        for client in self._retired:
            await client.close()
        self._retired.clear()
        if self.state is not None:
            state, self.state = self.state, None
            await state.usage.stop()
            await state.cache.stop()
            await state.upstream.close()
            await state.limiter.close()
            await state.store.close()
        if self._backend is not None:
            await self._backend.cleanup()
            self._backend = None


async def reload_from(gateway: Gateway, path: Path | None) -> None:
    """SIGHUP: read the file again; a file that does not load changes nothing."""
    try:
        new = load_settings(path)
    except ConfigError as exc:
        log.error("reload refused, the running settings stay: %s", exc)
        return
    kept = await gateway.reload(new)
    if kept:
        log.warning("reloaded; these need a restart and keep their old values: %s", ", ".join(kept))
    else:
        log.info("reloaded %s", path or "the embedded default")


async def serve(settings: Settings, path: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down without losing a count; SIGHUP reloads.

    With server.workers above one, this process only supervises the workers.
    """
    number = worker_number()
    if number is None and settings.server.workers > 1:
        await Supervisor(settings.server.workers, path).run()
        return
    gateway = Gateway(settings, reuse_port=number is not None)
    await gateway.start()
    stopping = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    def on_hangup() -> None:
        task = asyncio.ensure_future(reload_from(gateway, path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await stopping.wait()
        log.info("shutting down: finishing requests in flight")
    finally:
        await gateway.stop()
        log.info("stopped")
