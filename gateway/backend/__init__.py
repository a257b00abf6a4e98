"""The reference External Share Web API, for running the gateway with no Confluence."""

from gateway.backend.app import build_backend_app, run_backend, start_backend

__all__ = ["build_backend_app", "run_backend", "start_backend"]
