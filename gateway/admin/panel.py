"""The admin panel: static files served from the admin listener at /."""

from __future__ import annotations

from aiohttp import web


def add_panel_routes(app: web.Application) -> None:
    """Serve the panel's page and assets."""
