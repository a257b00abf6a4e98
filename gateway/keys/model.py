"""What a key is: its fields, its permissions, its history events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

import netaddr

from gateway.proxy.address import AddressSet

OPERATIONS = ("get", "list", "create", "update", "delete")


@dataclass(frozen=True)
class Permissions:
    """Which of the five share operations a key may call."""

    get: bool = False
    list: bool = False
    create: bool = False
    update: bool = False
    delete: bool = False

    def allows(self, operation: str) -> bool:
        return bool(getattr(self, operation))

    def to_json(self) -> dict[str, bool]:
        return {op: self.allows(op) for op in OPERATIONS}


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` requests forwarded upstream in any window of `per_seconds` seconds."""

    requests: int
    per_seconds: int

    def to_json(self) -> dict[str, int]:
        return {"requests": self.requests, "perSeconds": self.per_seconds}

    def __str__(self) -> str:
        return f"{self.requests}/{self.per_seconds}"


@dataclass(frozen=True)
class Key:
    """A stored key. `sealed_value` is the encrypted value; the plain value is never kept."""

    id: str
    name: str
    lookup_hash: str
    sealed_value: bytes = field(repr=False)
    masked_value: str
    permissions: Permissions
    admin: bool
    not_valid_before: datetime | None
    not_valid_after: datetime | None
    allowed_ips: tuple[str, ...]
    description: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    usage_count: int = 0
    denied_count: int = 0
    last_used_at: datetime | None = None
    # After a rotation, the old value keeps working until previous_valid_until.
    previous_lookup_hash: str | None = None
    previous_valid_until: datetime | None = None
    # None: no limit.
    rate_limit: RateLimit | None = None

    @cached_property
    def ip_set(self) -> netaddr.IPSet | None:
        """The allowlist as one IP set; None when any address may use the key."""
        if not self.allowed_ips:
            return None
        return ip_set(self.allowed_ips)

    @cached_property
    def allowed_addresses(self) -> AddressSet | None:
        """The allowlist in the form the request path checks; None when any address may."""
        return address_set(tuple(self.allowed_ips)) if self.allowed_ips else None

    def to_json(self) -> dict[str, Any]:
        """The key as the admin API shows it: masked, never the value."""
        return {
            "id": self.id,
            "name": self.name,
            "maskedValue": self.masked_value,
            "permissions": self.permissions.to_json(),
            "admin": self.admin,
            "notValidBefore": iso(self.not_valid_before),
            "notValidAfter": iso(self.not_valid_after),
            "allowedIps": list(self.allowed_ips),
            "description": self.description,
            "rateLimit": rate_limit_json(self.rate_limit),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "createdBy": self.created_by,
            "usageCount": self.usage_count,
            "deniedCount": self.denied_count,
            "lastUsedAt": iso(self.last_used_at),
            "previousValidUntil": iso(self.previous_valid_until),
        }


@dataclass(frozen=True)
class Change:
    """One field of an update, from its old value to its new one (as JSON values)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class HistoryEvent:
    """One entry of a key's configuration history."""

    key_id: str
    at: datetime
    actor: str
    action: str
    changes: tuple[Change, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes],
        }


@dataclass(frozen=True)
class UsageBucket:
    """Requests in one hour, allowed and denied."""

    start: datetime
    allowed: int
    denied: int

    def to_json(self) -> dict[str, Any]:
        return {"start": iso(self.start), "allowed": self.allowed, "denied": self.denied}


def rate_limit_json(limit: RateLimit | None) -> dict[str, int] | None:
    return None if limit is None else limit.to_json()


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, seconds precision unless there are microseconds."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


@lru_cache(maxsize=1024)
def address_set(entries: tuple[str, ...]) -> AddressSet:
    """One shared AddressSet for each distinct allowlist: with many keys, most share a few."""
    return AddressSet(ip_set(entries))


def ip_set(entries: tuple[str, ...] | list[str]) -> netaddr.IPSet:
    """Addresses, CIDR blocks and a-b ranges as one set (entries already validated)."""
    result = netaddr.IPSet()
    for entry in entries:
        if "-" in entry:
            first, last = (part.strip() for part in entry.split("-", 1))
            result.add(netaddr.IPRange(first, last))
        else:
            result.add(netaddr.IPNetwork(entry) if "/" in entry else netaddr.IPAddress(entry))
    return result
