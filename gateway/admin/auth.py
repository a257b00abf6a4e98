"""Admin tokens: who may use the admin API, and under which name."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from gateway.config import AdminToken
from gateway.errors import ApiError


def admin_name(header: str | None, tokens: Sequence[AdminToken]) -> str:
    """The name of the admin token in an Authorization header, or a 401."""
    scheme, _, presented = (header or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "an Authorization: Bearer header with an admin token is required",
            headers={"WWW-Authenticate": 'Bearer realm="share-gateway admin"'},
        )

    # SECURITY: every token is compared, in constant time, so that neither the
    # time taken nor the position of a match tells how close a guess was.
    # Header bytes that are not UTF-8 arrive as surrogate escapes; encoding them back
    # gives the bytes sent, which match no token, where a plain encode() would raise.
    sent = presented.encode("utf-8", "surrogateescape")
    found: str | None = None
    for token in tokens:
        if hmac.compare_digest(token.token.encode(), sent):
            found = token.name
    if found is None:
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "the admin token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="share-gateway admin"'},
        )
    return found
