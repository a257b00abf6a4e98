"""The admin panel: static files served from the admin listener at /.

The panel is a page and a few assets; everything it shows or changes goes
through the admin API from the browser, with the admin token the operator
types in. The server side only hands out files, under a strict CSP.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.errors import Handler

STATIC = Path(__file__).with_name("static")
PAGE = "index.html"

# SECURITY: scripts, styles and fetches from this origin only; no inline code, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _assets() -> dict[str, Path]:
    """The files that may be served, by name: the static folder's own files, nothing else."""
    return {
        path.name: path
        for path in sorted(STATIC.iterdir())
        if path.is_file() and not path.is_symlink() and path.suffix in CONTENT_TYPES
    }


def _file(path: Path, cache_control: str) -> web.FileResponse:
    headers = {
        **SECURITY_HEADERS,
        "Content-Type": CONTENT_TYPES[path.suffix],
        "Cache-Control": cache_control,
    }
    return web.FileResponse(path, headers=headers)


async def page(request: web.Request) -> web.FileResponse:
    """The panel's one page."""
    return _file(STATIC / PAGE, "no-store")


def asset_handler(assets: dict[str, Path]) -> Handler:
    """Serve `/static/{name}` from a fixed list, so no request can reach another file."""

    async def asset(request: web.Request) -> web.StreamResponse:
        path = assets.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        # Revalidated on every load, so an upgraded gateway never runs a stale script.
        return _file(path, "no-cache")

    return asset


def add_panel_routes(app: web.Application) -> None:
    """Serve the panel's page and assets."""
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", asset_handler(_assets()))
