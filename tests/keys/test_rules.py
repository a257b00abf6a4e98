"""The rules for a key's writable fields: each accepted form and each 400 naming its field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import netaddr
import pytest

from gateway.errors import ApiError
from gateway.keys.model import Permissions, RateLimit, ip_set
from gateway.keys.rules import (
    KeyFields,
    parse_key_changes,
    parse_new_key,
    parse_permission_list,
    parse_rate_limit_text,
)
from gateway.proxy.address import AddressSet, parse_ip

CURRENT = KeyFields(
    name="ci",
    permissions=Permissions(get=True, list=True),
    admin=False,
    not_valid_before=datetime(2030, 1, 1, tzinfo=UTC),
    not_valid_after=datetime(2031, 1, 1, tzinfo=UTC),
    allowed_ips=("10.0.0.0/8",),
    description="the CI key",
)
NEW_KEY = KeyFields(
    name="ci",
    permissions=Permissions(),
    admin=False,
    not_valid_before=None,
    not_valid_after=None,
    allowed_ips=(),
    description="",
)


def refusal(call: Callable[[], object]) -> ApiError:
    """The ApiError that `call` raises."""
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def assert_bad_request(error: ApiError, field: str) -> None:
    """A 400 BAD_REQUEST that names `field`, on its own and at the start of the message."""
    assert (error.status, error.code, error.field) == (400, "BAD_REQUEST", field)
    assert error.message.startswith(f"{field}: ")


def create(**body: Any) -> KeyFields:
    return parse_new_key({"name": "ci", **body})


def create_refused(body: dict[str, Any], field: str) -> ApiError:
    """Creating with `body` and updating CURRENT with it are both refused naming `field`."""
    error = refusal(lambda: parse_new_key({"name": "ci", **body}))
    assert_bad_request(error, field)
    assert_bad_request(refusal(lambda: parse_key_changes(body, CURRENT)), field)
    return error


def test_new_key_defaults() -> None:
    """A body with only a name gives a key with no permissions, no window and any address."""
    assert parse_new_key({"name": "ci"}) == NEW_KEY


def test_new_key_takes_every_field() -> None:
    """Every writable field of a create body lands in the key, normalised."""
    fields = parse_new_key(
        {
            "name": " deploy ",
            "permissions": {"get": True, "delete": True},
            "admin": True,
            "notValidBefore": "2030-01-01T01:00:00+01:00",
            "notValidAfter": "2030-06-01T00:00:00Z",
            "allowedIps": ["10.0.0.0/8", "2001:DB8::1"],
            "description": "deploys",
        }
    )

    assert fields == KeyFields(
        name="deploy",
        permissions=Permissions(get=True, delete=True),
        admin=True,
        not_valid_before=datetime(2030, 1, 1, tzinfo=UTC),
        not_valid_after=datetime(2030, 6, 1, tzinfo=UTC),
        allowed_ips=("10.0.0.0/8", "2001:db8::1"),
        description="deploys",
    )


def test_new_key_requires_a_name() -> None:
    """A create body without a name is refused naming `name`."""
    assert_bad_request(refusal(lambda: parse_new_key({"admin": True})), "name")


@pytest.mark.parametrize("body", [[], "ci", None, 1, [{"name": "ci"}]])
def test_key_body_must_be_an_object(body: object) -> None:
    """Anything but a JSON object is refused naming `body`."""
    assert_bad_request(refusal(lambda: parse_new_key(body)), "body")
    assert_bad_request(refusal(lambda: parse_key_changes(body, CURRENT)), "body")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a", "a"),
        ("x" * 40, "x" * 40),
        ("é" * 40, "é" * 40),
        ("  padded  ", "padded"),
        (" " + "y" * 40 + " ", "y" * 40),
        ("CI key: deploy-42", "CI key: deploy-42"),
        ("zero\u200bwidth", "zero\u200bwidth"),
    ],
)
def test_key_name_accepted(name: str, expected: str) -> None:
    """Names of 1 to 40 characters, counted after trimming, are kept trimmed."""
    assert create(name=name).name == expected
    assert parse_key_changes({"name": name}, CURRENT) == replace(CURRENT, name=expected)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 41, id="41 characters"),
        pytest.param("é" * 41, id="41 non-ASCII characters"),
        pytest.param("   ", id="whitespace only"),
        pytest.param("\t\n", id="tab and newline only"),
        pytest.param(None, id="null"),
        pytest.param(42, id="number"),
        pytest.param(True, id="boolean"),
        pytest.param(["ci"], id="list"),
        pytest.param("a\nb", id="newline"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\x00b", id="NUL"),
        pytest.param("a\x1bb", id="escape"),
        pytest.param("a\x7fb", id="DEL"),
        pytest.param("a\x85b", id="C1 next line"),
        pytest.param("a\x9bb", id="C1 CSI"),
        pytest.param("a\ud800b", id="lone surrogate"),
    ],
)
def test_key_name_refused(name: object) -> None:
    """Empty, too long, non-string or control-character names are a 400 naming `name`."""
    create_refused({"name": name}, "name")


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("d" * 4000, "d" * 4000),
        ("", ""),
        (None, ""),
        ("line one\nline two\ttabbed", "line one\nline two\ttabbed"),
        ("  kept as written  ", "  kept as written  "),
    ],
)
def test_key_description_accepted(description: str | None, expected: str) -> None:
    """Descriptions up to 4000 characters are kept as written; null clears."""
    assert create(description=description).description == expected
    assert parse_key_changes({"description": description}, CURRENT).description == expected


def test_key_description_absent_keeps_it() -> None:
    """An update without a description keeps the present one."""
    assert parse_key_changes({"admin": True}, CURRENT).description == "the CI key"


@pytest.mark.parametrize(
    "description", ["d" * 4001, "é" * 4001, 12, True, ["text"], {"text": "x"}, "a\udfffb"]
)
def test_key_description_refused(description: object) -> None:
    """Over 4000 characters, a non-string or unstorable text is a 400 naming `description`."""
    create_refused({"description": description}, "description")


def test_key_description_refusal_says_the_length() -> None:
    """The refusal of a long description says the limit and the length found."""
    error = create_refused({"description": "d" * 4001}, "description")

    assert error.message == "description: must be at most 4000 characters, found 4001"


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        ({}, Permissions()),
        ({"get": True}, Permissions(get=True)),
        ({"get": True, "list": True, "create": False}, Permissions(get=True, list=True)),
        (
            dict.fromkeys(("get", "list", "create", "update", "delete"), True),
            Permissions(get=True, list=True, create=True, update=True, delete=True),
        ),
    ],
)
def test_key_permissions_on_create(permissions: dict[str, bool], expected: Permissions) -> None:
    """On create, the operations named are set and the others are false."""
    assert create(permissions=permissions).permissions == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, Permissions(get=True, list=True)),
        ({"delete": True}, Permissions(get=True, list=True, delete=True)),
        ({"get": False}, Permissions(list=True)),
        ({"get": False, "list": False}, Permissions()),
        ({"list": True, "update": True}, Permissions(get=True, list=True, update=True)),
    ],
)
def test_key_permissions_merge_on_update(change: dict[str, bool], expected: Permissions) -> None:
    """On update, operations left out keep their present value."""
    assert parse_key_changes({"permissions": change}, CURRENT).permissions == expected


@pytest.mark.parametrize(
    ("permissions", "field"),
    [
        ({"read": True}, "permissions.read"),
        ({"GET": True}, "permissions.GET"),
        ({"get": True, "admin": True}, "permissions.admin"),
        ({"get": 1}, "permissions.get"),
        ({"list": "true"}, "permissions.list"),
        ({"delete": None}, "permissions.delete"),
        (["get", "list"], "permissions"),
        ("get,list", "permissions"),
        (None, "permissions"),
        (True, "permissions"),
    ],
)
def test_key_permissions_refused(permissions: object, field: str) -> None:
    """Unknown operations and non-boolean values are a 400 naming the operation."""
    create_refused({"permissions": permissions}, field)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("get", Permissions(get=True)),
        ("get,list", Permissions(get=True, list=True)),
        (" get , delete ,", Permissions(get=True, delete=True)),
        ("", Permissions()),
    ],
)
def test_permission_list_from_the_cli(text: str, expected: Permissions) -> None:
    """The CLI's comma-separated list allows exactly the operations it names."""
    assert parse_permission_list(text) == expected


def test_permission_list_refuses_unknown_operation() -> None:
    """An unknown operation in the CLI's list is a 400 naming it."""
    assert_bad_request(refusal(lambda: parse_permission_list("get,write")), "permissions.write")


@pytest.mark.parametrize("admin", [True, False])
def test_key_admin_accepted(admin: bool) -> None:
    """The admin flag takes true and false."""
    assert create(admin=admin).admin is admin
    assert parse_key_changes({"admin": admin}, CURRENT).admin is admin


@pytest.mark.parametrize("admin", [1, 0, "true", "yes", None, [True]])
def test_key_admin_refused(admin: object) -> None:
    """Anything but a boolean is a 400 naming `admin`."""
    create_refused({"admin": admin}, "admin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5), id="Z"),
        pytest.param("2030-01-02T03:04:05+00:00", datetime(2030, 1, 2, 3, 4, 5), id="+00:00"),
        pytest.param("2030-01-02T05:04:05+02:00", datetime(2030, 1, 2, 3, 4, 5), id="+02:00"),
        pytest.param("2030-01-01T22:04:05-05:00", datetime(2030, 1, 2, 3, 4, 5), id="-05:00"),
        pytest.param("2030-01-02T08:34:05+0530", datetime(2030, 1, 2, 3, 4, 5), id="+0530"),
        pytest.param("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5), id="no offset"),
        pytest.param("2030-01-02 03:04:05", datetime(2030, 1, 2, 3, 4, 5), id="space"),
        pytest.param("2030-01-02T03:04", datetime(2030, 1, 2, 3, 4), id="minutes"),
        pytest.param(
            "2030-01-02T03:04:05.25Z", datetime(2030, 1, 2, 3, 4, 5, 250000), id="fraction"
        ),
        pytest.param("20300102T030405Z", datetime(2030, 1, 2, 3, 4, 5), id="basic format"),
        pytest.param("2030-01-02", datetime(2030, 1, 2), id="date only is midnight UTC"),
        pytest.param(" 2030-01-02T03:04:05Z ", datetime(2030, 1, 2, 3, 4, 5), id="padded"),
    ],
)
@pytest.mark.parametrize("field", ["notValidBefore", "notValidAfter"])
def test_key_validity_accepted(field: str, text: str, expected: datetime) -> None:
    """ISO 8601 date-times are read as the UTC instant they name; no offset means UTC."""
    moment = expected.replace(tzinfo=UTC)
    change = {field: text}

    created = create(**change)
    updated = parse_key_changes({"notValidBefore": None, "notValidAfter": None, **change}, CURRENT)

    expected_window = (moment, None) if field == "notValidBefore" else (None, moment)
    for fields in (created, updated):
        assert (fields.not_valid_before, fields.not_valid_after) == expected_window
        stored = fields.not_valid_before or fields.not_valid_after
        assert stored is not None and stored.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("2030-13-01T00:00:00Z", id="month 13"),
        pytest.param("2030-02-30T00:00:00Z", id="February 30"),
        pytest.param("2030-01-02T25:00:00Z", id="hour 25"),
        pytest.param("2030-01-02T03:04:05+25:00", id="offset out of range"),
        pytest.param("02/01/2030", id="not ISO"),
        pytest.param("12:00", id="time only"),
        pytest.param("0001-01-01T00:00:00+01:00", id="before year 1 in UTC"),
        pytest.param("9999-12-31T23:00:00-05:00", id="after year 9999 in UTC"),
        pytest.param(1893456000, id="epoch seconds"),
        pytest.param(1893456000000, id="epoch milliseconds"),
        pytest.param(True, id="boolean"),
        pytest.param(["2030-01-01"], id="list"),
    ],
)
@pytest.mark.parametrize("field", ["notValidBefore", "notValidAfter"])
def test_key_validity_refused(field: str, value: object) -> None:
    """Anything but an ISO 8601 date-time string or null is a 400 naming the field."""
    create_refused({field: value}, field)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z", id="equal"),
        pytest.param("2030-01-01T01:00:00+01:00", "2030-01-01T00:00:00Z", id="equal instants"),
        pytest.param("2030-01-01T00:00:01Z", "2030-01-01T00:00:00Z", id="a second earlier"),
        pytest.param("2031-01-01", "2030-01-01", id="a year earlier"),
        pytest.param("2030-01-01T00:00:00", "2030-01-01T00:30:00+01:00", id="earlier by offset"),
    ],
)
def test_key_window_after_not_later_refused(before: str, after: str) -> None:
    """notValidAfter at or before notValidBefore is a 400 naming notValidAfter."""
    create_refused({"notValidBefore": before, "notValidAfter": after}, "notValidAfter")


def test_key_window_later_after_accepted() -> None:
    """notValidAfter one microsecond after notValidBefore is a valid window."""
    fields = create(
        notValidBefore="2030-01-01T00:00:00Z", notValidAfter="2030-01-01T00:00:00.000001Z"
    )

    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert (fields.not_valid_before, fields.not_valid_after) == (
        start,
        start + timedelta(microseconds=1),
    )


@pytest.mark.parametrize(
    ("change", "window"),
    [
        pytest.param(
            {"notValidBefore": None},
            (None, datetime(2031, 1, 1, tzinfo=UTC)),
            id="null clears before",
        ),
        pytest.param(
            {"notValidAfter": None},
            (datetime(2030, 1, 1, tzinfo=UTC), None),
            id="null clears after",
        ),
        pytest.param(
            {"notValidBefore": "", "notValidAfter": ""}, (None, None), id="empty clears both"
        ),
        pytest.param(
            {"notValidAfter": "2030-06-01T00:00:00Z"},
            (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 6, 1, tzinfo=UTC)),
            id="after alone, still later",
        ),
        pytest.param(
            {"notValidBefore": "2032-01-01", "notValidAfter": "2033-01-01"},
            (datetime(2032, 1, 1, tzinfo=UTC), datetime(2033, 1, 1, tzinfo=UTC)),
            id="both moved together",
        ),
    ],
)
def test_key_window_update(
    change: dict[str, Any], window: tuple[datetime | None, datetime | None]
) -> None:
    """An update changes the sides it names; null clears one; the other side is kept."""
    fields = parse_key_changes(change, CURRENT)

    assert (fields.not_valid_before, fields.not_valid_after) == window


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"notValidAfter": "2029-12-31T00:00:00Z"}, id="after before the kept before"),
        pytest.param({"notValidBefore": "2031-01-01T00:00:00Z"}, id="before at the kept after"),
        pytest.param({"notValidBefore": "2032-01-01T00:00:00Z"}, id="before past the kept after"),
    ],
)
def test_key_window_update_checked_against_kept_side(change: dict[str, Any]) -> None:
    """An update's window is checked against the side it does not change."""
    error = refusal(lambda: parse_key_changes(change, CURRENT))

    assert_bad_request(error, "notValidAfter")
    assert error.message == "notValidAfter: must be later than notValidBefore"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([], (), id="empty is any address"),
        pytest.param(["10.0.0.1"], ("10.0.0.1",), id="IPv4"),
        pytest.param(["2001:DB8:0::1"], ("2001:db8::1",), id="IPv6 in normal form"),
        pytest.param(["::1"], ("::1",), id="IPv6 loopback"),
        pytest.param(["10.0.0.0/8"], ("10.0.0.0/8",), id="CIDR v4"),
        pytest.param(["10.0.0.1/32"], ("10.0.0.1/32",), id="CIDR v4 /32"),
        pytest.param(["0.0.0.0/0"], ("0.0.0.0/0",), id="CIDR v4 everything"),
        pytest.param(["2001:db8::/32"], ("2001:db8::/32",), id="CIDR v6"),
        pytest.param(["::/0"], ("::/0",), id="CIDR v6 everything"),
        pytest.param(["10.0.0.1-10.0.0.9"], ("10.0.0.1-10.0.0.9",), id="range v4"),
        pytest.param(["10.0.0.1 - 10.0.0.9"], ("10.0.0.1-10.0.0.9",), id="range with spaces"),
        pytest.param(["10.0.0.5-10.0.0.5"], ("10.0.0.5-10.0.0.5",), id="range of one"),
        pytest.param(["2001:db8::1-2001:db8::ff"], ("2001:db8::1-2001:db8::ff",), id="range v6"),
        pytest.param(["::ffff:1.2.3.4"], ("1.2.3.4",), id="IPv4-mapped is IPv4"),
        pytest.param(["::ffff:1.2.3.0/120"], ("1.2.3.0/24",), id="IPv4-mapped block"),
        pytest.param(["::ffff:1.2.3.4-1.2.3.9"], ("1.2.3.4-1.2.3.9",), id="IPv4-mapped range"),
        pytest.param("10.0.0.1, 10.0.0.2", ("10.0.0.1", "10.0.0.2"), id="comma-separated"),
        pytest.param(
            ["10.0.0.1,10.0.0.2", "10.0.0.3"],
            ("10.0.0.1", "10.0.0.2", "10.0.0.3"),
            id="comma-separated item",
        ),
        pytest.param("10.0.0.1\n10.0.0.2\n", ("10.0.0.1", "10.0.0.2"), id="one a line"),
        pytest.param(
            ["10.0.0.1", " 10.0.0.1 ", "10.0.0.1,10.0.0.1"], ("10.0.0.1",), id="duplicates"
        ),
        pytest.param(
            ["2001:db8::1", "2001:DB8:0:0::1"], ("2001:db8::1",), id="duplicates in two forms"
        ),
        pytest.param(["10.0.0.1", "", " "], ("10.0.0.1",), id="blank items skipped"),
        pytest.param("", (), id="empty string"),
        pytest.param(
            ["192.168.0.0/16", "10.0.0.1", "::1"],
            ("192.168.0.0/16", "10.0.0.1", "::1"),
            id="order kept",
        ),
    ],
)
def test_key_allowed_ips_accepted(value: object, expected: tuple[str, ...]) -> None:
    """Addresses, CIDR blocks and ranges, IPv4 and IPv6, are kept in normal form, once each."""
    assert create(allowedIps=value).allowed_ips == expected
    assert parse_key_changes({"allowedIps": value}, CURRENT).allowed_ips == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param(["10.1"], "allowedIps[0]", id="short IPv4"),
        pytest.param(["010.0.0.1"], "allowedIps[0]", id="leading zero"),
        pytest.param(["0x0a000001"], "allowedIps[0]", id="hex IPv4"),
        pytest.param(["256.1.1.1"], "allowedIps[0]", id="octet 256"),
        pytest.param(["1.2.3.4/33"], "allowedIps[0]", id="prefix 33"),
        pytest.param(["::1/129"], "allowedIps[0]", id="prefix 129"),
        pytest.param(["10.0.0.0/"], "allowedIps[0]", id="no prefix"),
        pytest.param(["10.0.0.0/-8"], "allowedIps[0]", id="negative prefix"),
        pytest.param(["10.0.0.0/8/8"], "allowedIps[0]", id="two prefixes"),
        pytest.param(["10.0.0.0/255.0.0.0"], "allowedIps[0]", id="netmask"),
        pytest.param(["0.0.0.0/\u0663"], "allowedIps[0]", id="non-ASCII digit prefix"),
        pytest.param(["10.0.0.9-10.0.0.1"], "allowedIps[0]", id="reversed range"),
        pytest.param(["10.0.0.1-::1"], "allowedIps[0]", id="mixed-version range"),
        pytest.param(["10.0.0.1-"], "allowedIps[0]", id="open range"),
        pytest.param(["-10.0.0.1"], "allowedIps[0]", id="range without start"),
        pytest.param(["10.0.0.1-10.0.0.5-10.0.0.9"], "allowedIps[0]", id="three ends"),
        pytest.param(["10.0.0.0/8-10.1.0.0/8"], "allowedIps[0]", id="range of blocks"),
        pytest.param(["fe80::1%eth0"], "allowedIps[0]", id="zone id"),
        pytest.param(["example.com"], "allowedIps[0]", id="host name"),
        pytest.param(["*"], "allowedIps[0]", id="wildcard"),
        pytest.param(["10.0.0.1", "nope"], "allowedIps[1]", id="second item"),
        pytest.param(["10.0.0.1,nope"], "allowedIps[0]", id="inside a comma list"),
        pytest.param([10], "allowedIps[0]", id="number item"),
        pytest.param([None], "allowedIps[0]", id="null item"),
        pytest.param(None, "allowedIps", id="null"),
        pytest.param({"ip": "10.0.0.1"}, "allowedIps", id="object"),
        pytest.param(167772161, "allowedIps", id="number"),
    ],
)
def test_key_allowed_ips_refused(value: object, field: str) -> None:
    """Entries that are not an address, CIDR block or low-to-high range name their index."""
    create_refused({"allowedIps": value}, field)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("10.0.0.1/8", "'10.0.0.1/8': host bits set, did you mean 10.0.0.0/8?"),
        ("192.168.1.1/24", "'192.168.1.1/24': host bits set, did you mean 192.168.1.0/24?"),
        ("2001:db8::1/32", "'2001:db8::1/32': host bits set, did you mean 2001:db8::/32?"),
        ("10.0.0.9-10.0.0.1", "'10.0.0.9-10.0.0.1': a range must go from low to high"),
        ("10.0.0.1-::1", "'10.0.0.1-::1': a range must not mix IPv4 and IPv6"),
        ("10.1", "'10.1' is not an IP address, CIDR block or range a-b"),
        ("1.2.3.4/33", "'1.2.3.4/33' is not an IP address, CIDR block or range a-b"),
    ],
)
def test_key_allowed_ips_refusal_says_why(entry: str, message: str) -> None:
    """The refusal quotes the entry and says what is wrong, with a hint for host bits."""
    error = create_refused({"allowedIps": ["::1", entry]}, "allowedIps[1]")

    assert error.message == f"allowedIps[1]: {message}"


def test_key_allowed_ips_at_most_1000() -> None:
    """More than 1000 entries is a 400 naming allowedIps; 1000 is accepted."""
    thousand = [f"10.0.{i // 256}.{i % 256}" for i in range(1000)]

    assert len(create(allowedIps=thousand).allowed_ips) == 1000
    create_refused({"allowedIps": [*thousand, "10.9.9.9"]}, "allowedIps")


@pytest.mark.parametrize(
    ("entries", "inside", "outside"),
    [
        pytest.param(
            ["10.0.0.1-10.0.0.9"],
            ["10.0.0.1", "10.0.0.5", "10.0.0.9"],
            ["10.0.0.0", "10.0.0.10", "::ffff:10.0.0.10"],
            id="range v4 ends included",
        ),
        pytest.param(
            ["10.0.0.250-10.0.1.5"],
            ["10.0.0.255", "10.0.1.0", "10.0.1.5"],
            ["10.0.0.249", "10.0.1.6"],
            id="range v4 across a /24",
        ),
        pytest.param(
            ["2001:db8::10-2001:db8::20"],
            ["2001:db8::10", "2001:db8::1a", "2001:db8::20"],
            ["2001:db8::f", "2001:db8::21", "10.0.0.16"],
            id="range v6",
        ),
        pytest.param(
            ["192.168.4.0/30"],
            ["192.168.4.0", "192.168.4.3"],
            ["192.168.3.255", "192.168.4.4"],
            id="CIDR v4",
        ),
        pytest.param(
            ["2001:db8::/126"],
            ["2001:db8::", "2001:db8::3"],
            ["2001:db8::4", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"],
            id="CIDR v6",
        ),
        pytest.param(
            ["10.0.0.7"], ["10.0.0.7", "::ffff:10.0.0.7"], ["10.0.0.6", "10.0.0.8"], id="address"
        ),
        pytest.param(
            ["::ffff:10.0.0.7"],
            ["10.0.0.7", "::ffff:10.0.0.7"],
            ["10.0.0.8", "::ffff:10.0.0.8"],
            id="IPv4-mapped entry matches the IPv4 client",
        ),
        pytest.param(
            ["10.0.0.0/31", "2001:db8::1", "172.16.0.1-172.16.0.2"],
            ["10.0.0.1", "2001:db8::1", "172.16.0.2"],
            ["10.0.0.2", "2001:db8::2", "172.16.0.3"],
            id="mixed list",
        ),
    ],
)
def test_key_allowed_ips_membership(
    entries: list[str], inside: list[str], outside: list[str]
) -> None:
    """The stored entries, as one IP set, hold the clients they name and no others."""
    allowed = AddressSet(ip_set(create(allowedIps=entries).allowed_ips))

    def member(text: str) -> bool:
        # Clients reach the allowlist the way the proxy parses them.
        address = parse_ip(text)
        assert address is not None
        return bool(address in allowed)

    assert [member(text) for text in inside] == [True] * len(inside)
    assert [member(text) for text in outside] == [False] * len(outside)


def test_key_allowed_ips_set_size() -> None:
    """A range and a block count exactly the addresses they name."""
    allowed = ip_set(create(allowedIps=["10.0.0.1-10.0.0.9", "10.0.1.0/29"]).allowed_ips)

    assert allowed.size == 9 + 8
    assert allowed == netaddr.IPSet(netaddr.IPRange("10.0.0.1", "10.0.0.9")) | netaddr.IPSet(
        ["10.0.1.0/29"]
    )


@pytest.mark.parametrize(
    "field",
    [
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
    ],
)
def test_key_read_only_field_refused(field: str) -> None:
    """Fields the gateway sets are a 400 naming them, on create and on update."""
    error = create_refused({field: "x"}, field)

    assert error.message == f"{field}: is set by the gateway and cannot be written"


@pytest.mark.parametrize(
    "field", ["permission", "allowed_ips", "not_valid_after", "expires", "Name", "enabled", ""]
)
def test_key_unknown_field_refused(field: str) -> None:
    """Fields a key does not have are a 400 naming them, on create and on update."""
    error = create_refused({field: True}, field)

    assert error.message == f"{field}: is not a key field"


def test_key_update_absent_fields_kept() -> None:
    """An empty update keeps every field as it is."""
    assert parse_key_changes({}, CURRENT) == CURRENT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"requests": 1, "perSeconds": 1}, RateLimit(1, 1)),
        ({"requests": 100, "perSeconds": 60}, RateLimit(100, 60)),
        ({"perSeconds": 60, "requests": 100}, RateLimit(100, 60)),
        ({"requests": 1_000_000, "perSeconds": 86_400}, RateLimit(1_000_000, 86_400)),
        (None, None),
    ],
)
def test_key_rate_limit_accepted(value: object, expected: RateLimit | None) -> None:
    """Whole numbers within range make the limit; null means none."""
    assert create(rateLimit=value).rate_limit == expected
    limited = replace(CURRENT, rate_limit=RateLimit(7, 7))
    assert parse_key_changes({"rateLimit": value}, limited).rate_limit == expected


def test_key_rate_limit_defaults_to_none_and_absent_keeps_it() -> None:
    """A new key has no limit; an update that does not name the field keeps the present one."""
    limited = replace(CURRENT, rate_limit=RateLimit(10, 60))

    assert create().rate_limit is None
    assert parse_key_changes({"admin": True}, limited).rate_limit == RateLimit(10, 60)


RATE_LIMIT_REFUSED = [
    # not an object
    ("100/60", "rateLimit"),
    (100, "rateLimit"),
    ([100, 60], "rateLimit"),
    (True, "rateLimit"),
    # unknown or missing fields
    ({"requests": 10, "perSeconds": 60, "burst": 5}, "rateLimit.burst"),
    ({"requests": 10, "per_seconds": 60}, "rateLimit.per_seconds"),
    ({"requests": 10, "perSeconds": 60, "": 1}, "rateLimit."),
    ({"perSeconds": 60}, "rateLimit.requests"),
    ({"requests": 10}, "rateLimit.perSeconds"),
    ({}, "rateLimit.requests"),
    ({"requests": None, "perSeconds": 60}, "rateLimit.requests"),
    # out of range
    ({"requests": 0, "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": -1, "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": 1_000_001, "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": 10, "perSeconds": 0}, "rateLimit.perSeconds"),
    ({"requests": 10, "perSeconds": 86_401}, "rateLimit.perSeconds"),
    # not whole numbers
    ({"requests": 10.0, "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": 10.5, "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": "10", "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": True, "perSeconds": 60}, "rateLimit.requests"),
    ({"requests": 10, "perSeconds": "60"}, "rateLimit.perSeconds"),
    ({"requests": 10, "perSeconds": False}, "rateLimit.perSeconds"),
    ({"requests": 10, "perSeconds": [60]}, "rateLimit.perSeconds"),
    ({"requests": 10, "perSeconds": 1e3}, "rateLimit.perSeconds"),
]


@pytest.mark.parametrize(
    ("value", "field"),
    RATE_LIMIT_REFUSED,
    ids=[f"{row[1]}={row[0]!r}" for row in RATE_LIMIT_REFUSED],
)
def test_key_rate_limit_refused(value: object, field: str) -> None:
    """A limit that is not two whole numbers in range is a 400 naming the field at fault."""
    create_refused({"rateLimit": value}, field)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/60", {"requests": 100, "perSeconds": 60}),
        (" 5 / 1 ", {"requests": 5, "perSeconds": 1}),
        ("0/60", {"requests": 0, "perSeconds": 60}),
        ("", None),
        ("  ", None),
    ],
)
def test_rate_limit_text_forms(text: str, expected: dict[str, int] | None) -> None:
    """The CLI's REQUESTS/SECONDS becomes the API value; ranges are left to the API's rules."""
    assert parse_rate_limit_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["100", "100/", "/60", "100/60s", "1e3/60", "-1/60", "100/60/2", "x/y", "\u0661\u0660/60"],
)
def test_rate_limit_text_refused(text: str) -> None:
    """Anything but two whole numbers around a slash is a 400 naming `rateLimit`."""
    assert_bad_request(refusal(lambda: parse_rate_limit_text(text)), "rateLimit")
