"""The JSON error body every listener answers with, and the middleware that sends it."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from gateway.log import ERROR_LOG
from gateway.store.base import StoreError

REQUEST_ID = web.RequestKey("request_id", str)
"""Key under which each request's id is kept in the aiohttp request mapping."""

_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Request ids need to be unique, not secret: a random prefix for this process and a
# counter make one in a fraction of what uuid4's read of the system's randomness costs.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """32 hex characters, unique across processes and restarts."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A refusal with an HTTP status, a stable error code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def bad_request(field: str, message: str) -> ApiError:
    """A 400 that names the field at fault, in the message and on its own."""
    return ApiError(400, "BAD_REQUEST", f"{field}: {message}", field=field)


def request_id(request: web.Request) -> str:
    """The id of this request, set by the middleware."""
    return str(request.get(REQUEST_ID, ""))


def error_body(code: str, message: str, rid: str, field: str | None = None) -> dict[str, str]:
    """The JSON error body every refusal answers with."""
    body = {"error": code, "message": message, "requestId": rid}
    if field is not None:
        body["field"] = field
    return body


def error_response(request: web.Request, error: ApiError) -> web.Response:
    """Render an ApiError as the error body, with the request id."""
    body = error_body(error.code, error.message, request_id(request), error.field)
    return web.json_response(body, status=error.status, headers=error.headers)


# aiohttp raises these for routing and framing problems before our handlers run.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def code_for(status: int) -> str:
    """The error code of a refusal made below the gateway's own handlers."""
    return "INTERNAL_ERROR" if status >= 500 else _HTTP_CODES.get(status, "ERROR")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id and turn every failure into the JSON error body."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else new_request_id()
    request[REQUEST_ID] = rid

    try:
        response = await handler(request)
    except ApiError as error:
        response = error_response(request, error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = code_for(exc.status)
        refusal = ApiError(exc.status, code, exc.reason or code)
        if exc.status == 405:
            refusal.headers["Allow"] = exc.headers.get("Allow", "")
        response = error_response(request, refusal)
    except StoreError as exc:
        # Busy past its timeout, or unreachable: the request may be tried again.
        logging.getLogger(ERROR_LOG).warning("store unavailable, request %s: %s", rid, exc)
        response = error_response(
            request,
            ApiError(
                503,
                "STORE_UNAVAILABLE",
                "the store is busy or unavailable; try again",
                headers={"Retry-After": "1"},
            ),
        )
    except Exception:
        # The traceback goes to the log only; the client gets the id to quote.
        logging.getLogger(ERROR_LOG).exception("unhandled error, request %s", rid)
        response = error_response(
            request, ApiError(500, "INTERNAL_ERROR", "internal error; quote the request id")
        )

    response.headers["X-Request-Id"] = rid
    return response
