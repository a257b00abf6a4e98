"""The Share contract: fields, defaults, sort fields and the validation of requests.

The gateway's request path and the reference backend both read requests through
this module, so a body the gateway lets through is one the backend can store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.errors import ApiError, bad_request

CONTENT_TYPES = ("PAGE", "BLOGPOST")
DEFAULT_NAME = "External Share Link"

BOOLEAN_FIELDS = (
    "showComments",
    "allowAddComment",
    "showAttachments",
    "allowAddAttachment",
    "allowRemoveUnsupportedMacros",
    "showMacrosPlaceholder",
    "allowShareChildPages",
    "showLabels",
)

CREATE_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {
        "contentType": "PAGE",
        "spaceId": None,
        "spaceKey": None,
        "name": DEFAULT_NAME,
        "description": None,
        "expiration": None,
        **dict.fromkeys(BOOLEAN_FIELDS, False),
        "selectedUsersConfig": None,
    }
)
"""Every optional CREATE field and the value a share takes when it is not given."""

CREATE_FIELDS = ("contentId", *CREATE_DEFAULTS)
UPDATE_FIELDS = tuple(CREATE_DEFAULTS)

SHARE_FIELDS = ("id", "uuid", *CREATE_FIELDS, "createdAt", "updatedAt")
"""Every field of a Share as it is answered, in the order it is answered."""

STRING_MAX = 255
"""Longest contentId, spaceId, spaceKey or name, as Confluence limits titles and keys."""
DESCRIPTION_MAX = 4000
EMAIL_MAX = 254
INTEGER_MAX = 2**63 - 1
"""Largest contentId or expiration: a signed 64-bit integer, what SQLite and Java hold."""

LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 1000, 100
OFFSET_MAX = 2**31 - 1
"""An offset past two billion shares is a mistake, and it fits every upstream integer."""


def snake_case(name: str) -> str:
    """The snake_case spelling of a camelCase Share field, as LIST's sort takes it."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# selectedUsersConfig is an object: it has no order of its own, and sorting on its
# serialised text would answer an order that means nothing, so it is not sortable.
SORT_FIELDS: frozenset[str] = frozenset(
    snake_case(name) for name in SHARE_FIELDS if name != "selectedUsersConfig"
)

_UUID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# ASCII digits only: int() would also take "+1", " 1", "1_0" and other scripts' digits.
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class ListQuery:
    """The LIST parameters, checked and with their defaults."""

    sort: str
    sort_order: str
    limit: int
    offset: int
    contents: tuple[str, ...]
    space_keys: tuple[str, ...]


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default

    number = int(raw) if _DIGITS.fullmatch(raw) else None
    if number is None or not low <= number <= high:
        raise bad_request(name, f"must be an integer from {low} to {high}, found {_shown(raw)}")
    return number


def _comma_list(query: Mapping[str, str], name: str) -> tuple[str, ...]:
    items = (item.strip() for item in query.get(name, "").split(","))
    return tuple(item for item in items if item)


def parse_list_query(query: Mapping[str, str]) -> ListQuery:
    """Read LIST's query parameters; parameters it does not know are left to the upstream."""
    sort = query.get("sort", "id")
    if sort not in SORT_FIELDS:
        raise bad_request("sort", f"must be a Share field in snake_case, found {_shown(sort)}")

    sort_order = query.get("sortOrder", "asc")
    if sort_order not in ("asc", "desc"):
        raise bad_request("sortOrder", f"must be 'asc' or 'desc', found {_shown(sort_order)}")

    return ListQuery(
        sort=sort,
        sort_order=sort_order,
        limit=_integer(query, "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX),
        offset=_integer(query, "offset", 0, 0, OFFSET_MAX),
        contents=_comma_list(query, "contents"),
        space_keys=_comma_list(query, "spaceKeys"),
    )


def validate_share_uuid(value: str) -> str:
    """A share uuid from a path, refused unless it is 1 to 128 URL-safe characters."""
    if not _UUID.fullmatch(value):
        raise bad_request("uuid", "must be 1 to 128 letters, digits, '-' or '_'")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _wrong(field: str, expected: str, value: object) -> ApiError:
    return bad_request(field, f"must be {expected}, found {_json_type(value)}")


def _as_integer(value: object) -> int | None:
    # JSON true and false arrive as bool, which Python counts as an int.
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _check_text(field: str, value: object, longest: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise _wrong(field, "a string or null", value)
    if len(value) > longest:
        raise bad_request(field, f"must be at most {longest} characters, found {len(value)}")


def _check_content_id(field: str, value: object) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise bad_request(field, "must not be empty")
        _check_text(field, value, STRING_MAX)
        return

    number = _as_integer(value)
    if number is None:
        raise _wrong(field, "a string or an integer", value)
    if not 1 <= number <= INTEGER_MAX:
        raise bad_request(field, f"must be an integer from 1 to {INTEGER_MAX}")


def _check_content_type(field: str, value: object) -> None:
    if value not in CONTENT_TYPES:
        found = _shown(value) if isinstance(value, str) else _json_type(value)
        raise bad_request(field, f"must be one of {', '.join(CONTENT_TYPES)}, found {found}")


def _check_space_id(field: str, value: object) -> None:
    if value is None or _as_integer(value) is not None:
        return
    if not isinstance(value, str):
        raise _wrong(field, "a string, an integer or null", value)
    _check_text(field, value, STRING_MAX)


def _check_expiration(field: str, value: object) -> None:
    if value is None:
        return
    number = _as_integer(value)
    if number is None:
        raise _wrong(field, "an integer of epoch milliseconds or null", value)
    if not 0 <= number <= INTEGER_MAX:
        raise bad_request(field, f"must be epoch milliseconds from 0 to {INTEGER_MAX}")


def _check_boolean(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _wrong(field, "true or false", value)


def _check_object(field: str, value: object, known: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _wrong(field, "an object", value)
    for name in value:
        if name not in known:
            raise bad_request(f"{field}.{name}", "is not a known field")
    return value


def _check_users(field: str, value: object) -> None:
    if value is None:
        return
    config = _check_object(field, value, ("allowed", "allowedNotification", "list"))
    for flag in ("allowed", "allowedNotification"):
        if flag in config:
            _check_boolean(f"{field}.{flag}", config[flag])
    if "list" not in config:
        return

    users = config["list"]
    if not isinstance(users, list):
        raise _wrong(f"{field}.list", "an array", users)
    for index, user in enumerate(users):
        entry = _check_object(f"{field}.list[{index}]", user, ("email",))
        email_field = f"{field}.list[{index}].email"
        if "email" not in entry:
            raise bad_request(email_field, "is required")
        email = entry["email"]
        if not isinstance(email, str):
            raise _wrong(email_field, "a string", email)
        if "@" not in email or len(email) > EMAIL_MAX:
            raise bad_request(email_field, f"must be an email address, at most {EMAIL_MAX} long")


_CHECKS: dict[str, Callable[[str, object], None]] = {
    "contentId": _check_content_id,
    "contentType": _check_content_type,
    "spaceId": _check_space_id,
    "spaceKey": lambda field, value: _check_text(field, value, STRING_MAX),
    "name": lambda field, value: _check_text(field, value, STRING_MAX),
    "description": lambda field, value: _check_text(field, value, DESCRIPTION_MAX),
    "expiration": _check_expiration,
    **dict.fromkeys(BOOLEAN_FIELDS, _check_boolean),
    "selectedUsersConfig": _check_users,
}


def _validate(body: object, allowed: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(body, dict):
        raise _wrong("body", "a JSON object", body)

    # A field the gateway does not know is refused rather than forwarded: the
    # upstream's Share JSON is unpublished, and passing on what nobody checked
    # would let a key holder reach upstream behaviour no one has reviewed.
    for name in body:
        if name not in allowed:
            if name == "contentId":
                raise bad_request(name, "cannot be changed; create a new share instead")
            raise bad_request(str(name), "is not a Share field")

    for name, value in body.items():
        _CHECKS[name](name, value)
    return dict(body)


def validate_create(body: object) -> dict[str, object]:
    """A CREATE body checked field by field; contentId is required."""
    fields = _validate(body, CREATE_FIELDS)
    if "contentId" not in fields:
        raise bad_request("contentId", "is required")
    return fields


def validate_update(body: object) -> dict[str, object]:
    """An UPDATE body checked field by field: CREATE's fields but contentId, all optional."""
    return _validate(body, UPDATE_FIELDS)


def _named(fields: dict[str, object]) -> dict[str, object]:
    # The vendor names the link "External Share Link" when the name is left empty.
    if "name" in fields and not fields["name"]:
        fields["name"] = DEFAULT_NAME
    return fields


def apply_create_defaults(fields: Mapping[str, object]) -> dict[str, object]:
    """Every CREATE field of a new share, with the defaults for those not given."""
    return _named({"contentId": fields["contentId"], **CREATE_DEFAULTS, **fields})


def apply_update_defaults(fields: Mapping[str, object]) -> dict[str, object]:
    """UPDATE fields as a share stores them: a name set empty falls back to the default."""
    return _named(dict(fields))
