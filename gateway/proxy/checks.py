"""The checks every share request passes, in the order the contract gives them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gateway.errors import ApiError
from gateway.keys.cache import KeyCache
from gateway.keys.model import Key
from gateway.keys.values import well_formed
from gateway.limits import RateLimiter, retry_after
from gateway.proxy.address import IpAddress


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": 'Bearer realm="share-gateway"'}
    )


def bearer(header: str | None) -> str:
    """The key value from an Authorization header, or a 401."""
    if not header:
        raise unauthorized("an Authorization: Bearer header with a gateway key is required")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized("the Authorization header must be 'Bearer <key>'")
    return value.strip()


async def authenticate(header: str | None, cache: KeyCache, now: datetime) -> Key:
    """The key the request carries; the checksum is checked before any lookup."""
    value = bearer(header)
    if not well_formed(value):
        raise unauthorized("the key is malformed")
    lookup_hash = cache.vault.lookup_hash(value)
    key = await cache.find_by_hash(lookup_hash)
    if key is None:
        raise unauthorized("the key is unknown or has been deleted")
    if key.lookup_hash != lookup_hash:
        # The value presented is the one a rotation replaced.
        until = key.previous_valid_until
        if until is None or now >= until:
            raise unauthorized("the key was rotated and this value's grace period has ended")
    return key


def check_window(key: Key, now: datetime) -> None:
    """A key is valid from notValidBefore (inclusive) until notValidAfter (exclusive)."""
    if key.not_valid_before is not None and now < key.not_valid_before:
        raise ApiError(401, "KEY_NOT_YET_VALID", "the key is not valid yet")
    if key.not_valid_after is not None and now >= key.not_valid_after:
        raise ApiError(401, "KEY_EXPIRED", "the key has expired")


def check_address(key: Key, address: IpAddress | None) -> None:
    allowed = key.allowed_addresses
    if allowed is None:
        return
    if address is None or address not in allowed:
        raise ApiError(403, "IP_NOT_ALLOWED", f"the key may not be used from {address}")


def check_permission(key: Key, permission: str) -> None:
    if not key.permissions.allows(permission):
        raise ApiError(
            403, "OPERATION_NOT_ALLOWED", f"the key does not have the {permission!r} permission"
        )


def _named(query: Mapping[str, str], name: str) -> bool:
    return any(part.strip() for part in query.get(name, "").split(","))


def check_list_scope(key: Key, query: Mapping[str, str]) -> None:
    """Only an admin key may list every share without naming contents or spaces.

    This reads the raw parameters because it comes before parameter validation.
    """
    if not key.admin and not _named(query, "contents") and not _named(query, "spaceKeys"):
        raise ApiError(
            403, "FORBIDDEN", "a key without the admin flag must pass contents or spaceKeys"
        )


async def check_rate_limit(key: Key, limiter: RateLimiter) -> None:
    """Take one request from the key's budget, or refuse with 429 and when to come back.

    The last check, right before the request goes upstream: a request refused
    for any other reason does not use up the budget.
    """
    limit = key.rate_limit
    if limit is None:
        return
    wait_s = await limiter.take(key.id, limit)
    if wait_s is not None:
        after = retry_after(wait_s)
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"the key's rate limit of {limit.requests} requests per {limit.per_seconds} s"
            f" is reached; retry after {after} s",
            headers={"Retry-After": after},
        )
