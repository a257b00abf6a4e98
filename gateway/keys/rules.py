"""The rules a key's fields must follow, shared by the admin API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import netaddr

from gateway.errors import bad_request
from gateway.keys.model import OPERATIONS, Permissions

NAME_MAX = 40
DESCRIPTION_MAX = 4000
ALLOWED_IPS_MAX = 1000
_WRITABLE = {
    "name",
    "permissions",
    "admin",
    "notValidBefore",
    "notValidAfter",
    "allowedIps",
    "description",
}
_READ_ONLY = {
    "id",
    "value",
    "maskedValue",
    "createdAt",
    "updatedAt",
    "createdBy",
    "usageCount",
    "deniedCount",
    "lastUsedAt",
}


@dataclass(frozen=True)
class KeyFields:
    """The writable fields of a key, validated."""

    name: str
    permissions: Permissions
    admin: bool
    not_valid_before: datetime | None
    not_valid_after: datetime | None
    allowed_ips: tuple[str, ...]
    description: str


def parse_new_key(data: object) -> KeyFields:
    """Validate a create request body."""
    body = _object(data)
    if "name" not in body:
        raise bad_request("name", "is required")
    fields = KeyFields(
        name=parse_name(body["name"]),
        permissions=parse_permissions(body.get("permissions", {}), Permissions()),
        admin=_bool("admin", body.get("admin", False)),
        not_valid_before=parse_moment("notValidBefore", body.get("notValidBefore")),
        not_valid_after=parse_moment("notValidAfter", body.get("notValidAfter")),
        allowed_ips=parse_allowed_ips(body.get("allowedIps", [])),
        description=parse_description(body.get("description", "")),
    )
    check_window(fields.not_valid_before, fields.not_valid_after)
    return fields


def parse_key_changes(data: object, current: KeyFields) -> KeyFields:
    """Validate an update body against the key's present fields; absent fields keep theirs."""
    body = _object(data)
    fields = KeyFields(
        name=parse_name(body["name"]) if "name" in body else current.name,
        permissions=parse_permissions(body["permissions"], current.permissions)
        if "permissions" in body
        else current.permissions,
        admin=_bool("admin", body["admin"]) if "admin" in body else current.admin,
        not_valid_before=parse_moment("notValidBefore", body["notValidBefore"])
        if "notValidBefore" in body
        else current.not_valid_before,
        not_valid_after=parse_moment("notValidAfter", body["notValidAfter"])
        if "notValidAfter" in body
        else current.not_valid_after,
        allowed_ips=parse_allowed_ips(body["allowedIps"])
        if "allowedIps" in body
        else current.allowed_ips,
        description=parse_description(body["description"])
        if "description" in body
        else current.description,
    )
    check_window(fields.not_valid_before, fields.not_valid_after)
    return fields


def _object(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise bad_request("body", "must be a JSON object")
    for name in data:
        if name in _READ_ONLY:
            raise bad_request(name, "is set by the gateway and cannot be written")
        if name not in _WRITABLE:
            raise bad_request(name, "is not a key field")
    return data


def parse_name(value: object) -> str:
    if not isinstance(value, str):
        raise bad_request("name", "must be a string")
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise bad_request("name", f"must be 1 to {NAME_MAX} characters, found {len(name)}")
    if any(ord(c) < 32 for c in name):
        raise bad_request("name", "must not hold control characters")
    return name


def parse_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request("description", "must be a string")
    if len(value) > DESCRIPTION_MAX:
        raise bad_request(
            "description", f"must be at most {DESCRIPTION_MAX} characters, found {len(value)}"
        )
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise bad_request(name, "must be true or false")
    return value


def parse_permissions(value: object, current: Permissions) -> Permissions:
    """An object of operation booleans; operations it leaves out keep `current`."""
    if not isinstance(value, dict):
        raise bad_request("permissions", "must be an object of " + ", ".join(OPERATIONS))
    merged = current.to_json()
    for op, allowed in value.items():
        if op not in OPERATIONS:
            raise bad_request(f"permissions.{op}", "is not one of " + ", ".join(OPERATIONS))
        merged[op] = _bool(f"permissions.{op}", allowed)
    return Permissions(**merged)


def parse_permission_list(text: str) -> Permissions:
    """A comma-separated list such as 'get,list', as the CLI takes it."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    return parse_permissions(dict.fromkeys(names, True), Permissions())


def parse_moment(name: str, value: object) -> datetime | None:
    """ISO 8601 date-time; UTC when it carries no offset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request(name, "must be an ISO 8601 date-time string or null")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(name, f"must be an ISO 8601 date-time, found {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_window(before: datetime | None, after: datetime | None) -> None:
    if before is not None and after is not None and after <= before:
        raise bad_request("notValidAfter", "must be later than notValidBefore")


def parse_allowed_ips(value: object) -> tuple[str, ...]:
    """Addresses, CIDR blocks and a-b ranges; a string may hold several, comma-separated."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise bad_request("allowedIps", "must be a list of addresses, CIDR blocks or ranges")
    entries: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise bad_request(f"allowedIps[{index}]", "must be a string")
        for part in item.replace("\n", ",").split(","):
            if part.strip():
                entries.append(parse_ip_entry(f"allowedIps[{index}]", part.strip()))
    if len(entries) > ALLOWED_IPS_MAX:
        raise bad_request("allowedIps", f"must hold at most {ALLOWED_IPS_MAX} entries")
    return tuple(dict.fromkeys(entries))


def parse_ip_entry(name: str, text: str) -> str:
    """One allowlist entry in its normal form, or a 400 saying what is wrong with it."""
    try:
        if "-" in text:
            first_text, last_text = (p.strip() for p in text.split("-", 1))
            first, last = _address(first_text), _address(last_text)
            if first.version != last.version:
                raise bad_request(name, f"{text!r}: a range must not mix IPv4 and IPv6")
            if first > last:
                raise bad_request(name, f"{text!r}: a range must go from low to high")
            return f"{first}-{last}"
        if "/" in text:
            address_text, _, prefix = text.partition("/")
            if not prefix.isdigit():
                raise ValueError(text)
            network = netaddr.IPNetwork(f"{_address(address_text)}/{int(prefix)}")
            # A block with host bits set is usually a typo for a single address or a block.
            if network.ip != network.network:
                raise bad_request(name, f"{text!r}: host bits set, did you mean {network.cidr}?")
            return str(network.cidr)
        return str(_address(text))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise bad_request(name, f"{text!r} is not an IP address, CIDR block or range a-b") from None


def _address(text: str) -> netaddr.IPAddress:
    # INET_PTON refuses the legacy forms ('10.1', '0x0a000001') that are easy typos.
    return netaddr.IPAddress(text, flags=netaddr.INET_PTON)
