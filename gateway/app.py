"""Builds the public and admin applications, starts what they share, and runs them."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import replace

from aiohttp import web

from gateway.admin.api import add_admin_routes, admin_auth_middleware
from gateway.admin.panel import add_panel_routes
from gateway.config import AdminToken, Listen, Settings
from gateway.errors import ApiError, error_middleware
from gateway.keys.cache import KeyCache
from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault, read_or_create_secret, read_or_create_token
from gateway.log import SERVER_LOG, access_middleware
from gateway.proxy.routes import add_share_routes
from gateway.proxy.upstream import UpstreamClient
from gateway.state import STATE, GatewayState
from gateway.store import Store, StoreError, open_store
from gateway.usage import UsageCounter

log = logging.getLogger(SERVER_LOG)

# How long SIGTERM waits for requests in flight before closing their connections.
SHUTDOWN_TIMEOUT_S = 30.0


def secret_key(settings: Settings) -> str:
    """store.secret_key, or one generated beside the SQLite file."""
    if settings.store.secret_key is not None:
        return settings.store.secret_key
    return read_or_create_secret(settings.store.data_dir / "secret.key")


def with_admin_tokens(settings: Settings) -> Settings:
    """With no admin token configured, one is generated into the data folder."""
    if settings.admin.tokens:
        return settings
    path = settings.store.data_dir / "admin-token"
    token, created = read_or_create_token(path)
    # SECURITY: the log names the file that holds the token, never the token.
    log.warning("no admin token configured; %s %s", "generated" if created else "using", path)
    return replace(settings, admin=replace(settings.admin, tokens=(AdminToken("admin", token),)))


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
        middlewares=[access_middleware, error_middleware],
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
    return app


class Gateway:
    """One gateway process: store, cache, usage, upstream, both listeners."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: GatewayState | None = None
        self._runners: list[web.AppRunner] = []
        self._backend: web.AppRunner | None = None
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
            cache = KeyCache(store, vault)
            usage = UsageCounter(store, settings.usage.flush_interval_s)
            self.state = GatewayState(
                settings, store, KeyService(store, vault), cache, usage, upstream
            )
            cache.start()
            usage.start()
            self.public_url = await self._serve(public_app(self.state), settings.server.listen)
            self.admin_url = await self._serve(admin_app(self.state), settings.admin.listen)
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
        log.info("embedded reference backend on %s (%s)", base_url, db_path)
        return base_url, api_key

    async def _serve(self, app: web.Application, listen: Listen) -> str:
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, listen.host, listen.port, backlog=1024)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def stop(self) -> None:
        """Finish requests in flight, then write the last usage counts and close."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []
        if self.state is not None:
            state, self.state = self.state, None
            await state.usage.stop()
            await state.cache.stop()
            await state.upstream.close()
            await state.store.close()
        if self._backend is not None:
            await self._backend.cleanup()
            self._backend = None


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down without losing a count."""
    gateway = Gateway(settings)
    await gateway.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
        log.info("shutting down: finishing requests in flight")
    finally:
        await gateway.stop()
        log.info("stopped")
