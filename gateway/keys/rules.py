"""The rules a key's fields must follow, shared by the admin API and the CLI."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import netaddr

from gateway.errors import bad_request
from gateway.keys.model import OPERATIONS, Permissions, RateLimit

NAME_MAX = 40
DESCRIPTION_MAX = 4000
ALLOWED_IPS_MAX = 1000
GRACE_DEFAULT_S = 86_400
GRACE_MAX_S = 30 * 86_400
# The sliding log keeps one timestamp per request of the window: the bound keeps one key's
# log under 8 MB in the gateway and a few tens of MB in Redis. A day is the longest window.
RATE_REQUESTS_MAX = 1_000_000
RATE_PER_SECONDS_MAX = 86_400
_RATE_FIELDS = ("requests", "perSeconds")
_WRITABLE = {
    "name",
    "permissions",
    "admin",
    "notValidBefore",
    "notValidAfter",
    "allowedIps",
    "description",
    "rateLimit",
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
    "previousValidUntil",
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
    rate_limit: RateLimit | None = None


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
        rate_limit=parse_rate_limit(body.get("rateLimit")),
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
        rate_limit=parse_rate_limit(body["rateLimit"])
        if "rateLimit" in body
        else current.rate_limit,
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
    # Category Cc is C0, DEL and C1: all of them, not only the ASCII ones below 32.
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise bad_request("name", "must not hold control characters")
    _check_encodable("name", name)
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
    _check_encodable("description", value)
    return value


def _check_encodable(name: str, text: str) -> None:
    # JSON may carry lone surrogates ("\ud800"); they cannot be stored as UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(name, "must be valid Unicode text") from None


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
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 has no UTC moment inside datetime's range.
        raise bad_request(
            name, f"must be a date-time within years 1 to 9999, found {value!r}"
        ) from None


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
            # isascii: isdigit alone takes other scripts' digits ('٣').
            if not (prefix.isascii() and prefix.isdigit()):
                raise ValueError(text)
            address = netaddr.IPAddress(address_text, flags=netaddr.INET_PTON)
            network = netaddr.IPNetwork(f"{address}/{int(prefix)}")
            # A block with host bits set is usually a typo for a single address or a block.
            if network.ip != network.network:
                raise bad_request(name, f"{text!r}: host bits set, did you mean {network.cidr}?")
            # An IPv4-mapped block is kept as the IPv4 block it stands for, as in _address.
            if network.version == 6 and network.prefixlen >= 96 and address.is_ipv4_mapped():
                network = netaddr.IPNetwork(f"{address.ipv4()}/{network.prefixlen - 96}")
            return str(network.cidr)
        return str(_address(text))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise bad_request(name, f"{text!r} is not an IP address, CIDR block or range a-b") from None


def _address(text: str) -> netaddr.IPAddress:
    # INET_PTON refuses the legacy forms ('10.1', '0x0a000001') that are easy typos.
    address = netaddr.IPAddress(text, flags=netaddr.INET_PTON)
    # Clients on IPv4-mapped IPv6 are checked as IPv4 (proxy.address.parse_ip), so an
    # entry written as ::ffff:1.2.3.4 must be kept as 1.2.3.4 or it would never match.
    if address.version == 6 and address.is_ipv4_mapped():
        return address.ipv4()
    return address


def parse_rate_limit(value: object) -> RateLimit | None:
    """`{"requests": N, "perSeconds": S}`, both required, or null for no limit.

    The object is taken whole, also in an update: a limit is one rule, and half of
    an old one merged with half of a new one is rarely what was meant.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("rateLimit", 'must be {"requests": N, "perSeconds": S} or null')
    for name in value:
        if name not in _RATE_FIELDS:
            raise bad_request(f"rateLimit.{name}", "is not one of requests, perSeconds")
    requests = _whole("rateLimit.requests", value.get("requests"), RATE_REQUESTS_MAX)
    per_seconds = _whole("rateLimit.perSeconds", value.get("perSeconds"), RATE_PER_SECONDS_MAX)
    return RateLimit(requests, per_seconds)


def _whole(name: str, value: object, maximum: int) -> int:
    if value is None:
        raise bad_request(name, "is required")
    # bool is an int in Python, and 10.0 is a float: neither is a count here.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise bad_request(name, f"must be an integer from 1 to {maximum}, found {value!r}")
    return value


def parse_rate_limit_text(text: str) -> dict[str, int] | None:
    """`REQUESTS/SECONDS` as the CLI takes it (`100/60`), or '' for none, as an API value.

    Only the form is checked here; the ranges are the API's rules, in parse_rate_limit.
    """
    if not text.strip():
        return None
    match = re.fullmatch(r"\s*([0-9]{1,18})\s*/\s*([0-9]{1,18})\s*", text)
    if match is None:
        raise bad_request("rateLimit", f"must be REQUESTS/SECONDS such as 100/60, found {text!r}")
    return {"requests": int(match.group(1)), "perSeconds": int(match.group(2))}


def parse_grace_period(data: object) -> int:
    """A rotate body: `{"gracePeriodSeconds": N}`, 0 to 30 days, default one day."""
    if data is None:
        return GRACE_DEFAULT_S
    if not isinstance(data, dict):
        raise bad_request("body", "must be a JSON object")
    for name in data:
        if name != "gracePeriodSeconds":
            raise bad_request(name, "is not a rotate field")
    value = data.get("gracePeriodSeconds", GRACE_DEFAULT_S)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= GRACE_MAX_S:
        raise bad_request(
            "gracePeriodSeconds", f"must be an integer from 0 to {GRACE_MAX_S}, found {value!r}"
        )
    return value
