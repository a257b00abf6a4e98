"""The one implementation of key management; the admin API and the CLI both call it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.errors import ApiError
from gateway.keys.model import Change, HistoryEvent, Key, UsageBucket, iso, rate_limit_json
from gateway.keys.rules import KeyFields, parse_grace_period, parse_key_changes, parse_new_key
from gateway.keys.values import KeyVault, mask, new_value
from gateway.store.base import Store

CLI_ACTOR = "cli"


def utcnow() -> datetime:
    return datetime.now(UTC)


def not_found(key_id: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"no key with id {key_id!r}")


def _fields(key: Key) -> KeyFields:
    return KeyFields(
        name=key.name,
        permissions=key.permissions,
        admin=key.admin,
        not_valid_before=key.not_valid_before,
        not_valid_after=key.not_valid_after,
        allowed_ips=key.allowed_ips,
        description=key.description,
        rate_limit=key.rate_limit,
    )


def _field_json(fields: KeyFields) -> dict[str, Any]:
    """The writable fields under their admin API names, as JSON values."""
    return {
        "name": fields.name,
        "permissions": fields.permissions.to_json(),
        "admin": fields.admin,
        "notValidBefore": iso(fields.not_valid_before),
        "notValidAfter": iso(fields.not_valid_after),
        "allowedIps": list(fields.allowed_ips),
        "description": fields.description,
        "rateLimit": rate_limit_json(fields.rate_limit),
    }


class KeyService:
    """Create, read, change, reveal and delete keys, recording each act in the history."""

    def __init__(
        self, store: Store, vault: KeyVault, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock

    async def create(self, data: object, actor: str) -> tuple[Key, str]:
        """A new key and its value in full (the only answer that carries it unasked)."""
        fields = parse_new_key(data)
        now = self.clock()
        key_id = str(uuid.uuid4())
        value = new_value()
        key = Key(
            id=key_id,
            name=fields.name,
            lookup_hash=self.vault.lookup_hash(value),
            sealed_value=self.vault.seal(value, key_id),
            masked_value=mask(value),
            permissions=fields.permissions,
            admin=fields.admin,
            not_valid_before=fields.not_valid_before,
            not_valid_after=fields.not_valid_after,
            allowed_ips=fields.allowed_ips,
            description=fields.description,
            rate_limit=fields.rate_limit,
            created_at=now,
            updated_at=now,
            created_by=actor,
        )
        initial = tuple(Change(name, None, new) for name, new in _field_json(fields).items())
        await self.store.insert_key(key, HistoryEvent(key_id, now, actor, "created", initial))
        return key, value

    async def list_keys(self) -> list[Key]:
        return await self.store.list_keys()

    async def get(self, key_id: str) -> Key:
        key = await self.store.get_key(key_id)
        if key is None:
            raise not_found(key_id)
        return key

    async def update(self, key_id: str, data: object, actor: str) -> Key:
        """Apply the given fields; the history records each one that changed."""
        key = await self.get(key_id)
        before = _fields(key)
        after = parse_key_changes(data, before)
        old, new = _field_json(before), _field_json(after)
        changes = tuple(
            Change(name, old[name], new[name]) for name in new if old[name] != new[name]
        )
        if not changes:
            return key

        now = self.clock()
        updated = replace(
            key,
            name=after.name,
            permissions=after.permissions,
            admin=after.admin,
            not_valid_before=after.not_valid_before,
            not_valid_after=after.not_valid_after,
            allowed_ips=after.allowed_ips,
            description=after.description,
            rate_limit=after.rate_limit,
            updated_at=now,
        )
        await self.store.update_key(updated, HistoryEvent(key.id, now, actor, "updated", changes))
        return updated

    async def rotate(self, key_id: str, data: object, actor: str) -> tuple[Key, str]:
        """A new value for the key; the old one keeps working for the grace period.

        Only one previous value is kept: rotating again during a grace period
        ends the older value's grace at once.
        """
        grace = parse_grace_period(data)
        key = await self.get(key_id)
        now = self.clock()
        value = new_value()
        rotated = replace(
            key,
            lookup_hash=self.vault.lookup_hash(value),
            sealed_value=self.vault.seal(value, key.id),
            masked_value=mask(value),
            previous_lookup_hash=key.lookup_hash if grace else None,
            previous_valid_until=now + timedelta(seconds=grace) if grace else None,
            updated_at=now,
        )
        changes = (
            Change("maskedValue", key.masked_value, rotated.masked_value),
            Change(
                "previousValidUntil",
                iso(key.previous_valid_until),
                iso(rotated.previous_valid_until),
            ),
        )
        await self.store.update_key(rotated, HistoryEvent(key.id, now, actor, "rotated", changes))
        return rotated, value

    async def delete(self, key_id: str, actor: str) -> None:
        await self.get(key_id)
        await self.store.delete_key(key_id, HistoryEvent(key_id, self.clock(), actor, "deleted"))

    async def reveal(self, key_id: str, actor: str) -> str:
        """The value in full; allowed at any time, and recorded each time."""
        return await self._open(key_id, actor, "revealed")

    async def download(self, key_id: str, actor: str) -> tuple[Key, str]:
        key = await self.get(key_id)
        return key, await self._open(key_id, actor, "downloaded", key)

    async def _open(self, key_id: str, actor: str, action: str, key: Key | None = None) -> str:
        key = key or await self.get(key_id)
        value = self.vault.open(key.sealed_value, key.id)
        await self.store.add_event(HistoryEvent(key.id, self.clock(), actor, action))
        return value

    async def history(self, key_id: str) -> list[HistoryEvent]:
        """Newest first; a deleted key's history stays readable."""
        events = await self.store.history(key_id)
        if not events:
            raise not_found(key_id)
        return events

    async def usage(self, key_id: str, days: int = 7) -> list[UsageBucket]:
        """Hourly buckets for the last `days` days, every hour present (zeros included)."""
        await self.get(key_id)
        now = self.clock().replace(minute=0, second=0, microsecond=0)
        since = now - timedelta(days=days) + timedelta(hours=1)
        stored = {b.start: b for b in await self.store.usage_buckets(key_id, since)}
        hours = [since + timedelta(hours=n) for n in range(days * 24)]
        return [stored.get(hour, UsageBucket(hour, 0, 0)) for hour in hours]
