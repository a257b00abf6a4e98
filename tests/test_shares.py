"""The Share contract: LIST parameters, CREATE and UPDATE bodies, defaults, uuids."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.errors import ApiError
from gateway.shares import (
    SORT_FIELDS,
    ListQuery,
    apply_create_defaults,
    parse_list_query,
    validate_create,
    validate_share_uuid,
    validate_update,
)

DEFAULTS: dict[str, object] = {
    "contentType": "PAGE",
    "spaceId": None,
    "spaceKey": None,
    "name": "External Share Link",
    "description": None,
    "expiration": None,
    "showComments": False,
    "allowAddComment": False,
    "showAttachments": False,
    "allowAddAttachment": False,
    "allowRemoveUnsupportedMacros": False,
    "showMacrosPlaceholder": False,
    "allowShareChildPages": False,
    "showLabels": False,
    "selectedUsersConfig": None,
}

BOOLEAN_NAMES = [name for name, value in DEFAULTS.items() if value is False]

VENDOR_EXAMPLE: dict[str, object] = {
    "contentId": "2556174",
    "contentType": "PAGE",
    "spaceId": "213516917",
    "description": "This is internal description - not visible on share",
    "name": "Name of the link - External Share Link if left empty",
    "showComments": True,
    "allowAddComment": False,
    "showAttachments": True,
    "selectedUsersConfig": {
        "allowed": True,
        "allowedNotification": False,
        "list": [{"email": "expl@expl2.com"}, {"email": "expl@expl.com"}],
    },
}


def refusal(call: Callable[..., object], *args: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def test_sort_fields_are_every_share_field_but_selected_users_config() -> None:
    """Every Share field is sortable by its snake_case name, but the users object."""
    assert {
        "id",
        "uuid",
        "content_id",
        "content_type",
        "space_id",
        "space_key",
        "name",
        "description",
        "expiration",
        "show_comments",
        "allow_add_comment",
        "show_attachments",
        "allow_add_attachment",
        "allow_remove_unsupported_macros",
        "show_macros_placeholder",
        "allow_share_child_pages",
        "show_labels",
        "created_at",
        "updated_at",
    } == SORT_FIELDS


def test_parse_list_query_defaults() -> None:
    """No parameters give sort id, asc, limit 100, offset 0 and no filters."""
    assert parse_list_query({}) == ListQuery("id", "asc", 100, 0, (), ())


@pytest.mark.parametrize(
    ("query", "changed"),
    [
        ({"sort": "name"}, {"sort": "name"}),
        ({"sort": "created_at"}, {"sort": "created_at"}),
        ({"sort": "allow_remove_unsupported_macros"}, {"sort": "allow_remove_unsupported_macros"}),
        ({"sortOrder": "desc"}, {"sort_order": "desc"}),
        ({"sortOrder": "asc"}, {"sort_order": "asc"}),
        ({"limit": "1"}, {"limit": 1}),
        ({"limit": "1000"}, {"limit": 1000}),
        ({"limit": "050"}, {"limit": 50}),
        ({"offset": "0"}, {"offset": 0}),
        ({"offset": "2147483647"}, {"offset": 2147483647}),
        ({"contents": "234451,4847"}, {"contents": ("234451", "4847")}),
        ({"contents": "1, 2,,3 ,"}, {"contents": ("1", "2", "3")}),
        ({"contents": ""}, {}),
        ({"contents": " , "}, {}),
        ({"spaceKeys": "SPACE1, ANOTHERSPACE"}, {"space_keys": ("SPACE1", "ANOTHERSPACE")}),
        ({"spaceKeys": "DEV"}, {"space_keys": ("DEV",)}),
        ({"expand": "body", "page": "2"}, {}),
    ],
)
def test_parse_list_query_accepts(query: dict[str, str], changed: dict[str, object]) -> None:
    """Valid LIST parameters are read; unknown ones are ignored."""
    expected = {
        "sort": "id",
        "sort_order": "asc",
        "limit": 100,
        "offset": 0,
        "contents": (),
        "space_keys": (),
        **changed,
    }
    assert parse_list_query(query) == ListQuery(**expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"sort": "issue_id"}, "sort"),
        ({"sort": "contentId"}, "sort"),
        ({"sort": "selected_users_config"}, "sort"),
        ({"sort": ""}, "sort"),
        ({"sort": "id; DROP TABLE shares"}, "sort"),
        ({"sortOrder": "ASC"}, "sortOrder"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"sortOrder": ""}, "sortOrder"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "+1"}, "limit"),
        ({"limit": "+-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": " 10"}, "limit"),
        ({"limit": "1_0"}, "limit"),
        ({"limit": "\u0661"}, "limit"),
        ({"limit": "9" * 30}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1.5"}, "offset"),
        ({"offset": ""}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": "2147483648"}, "offset"),
        ({"offset": "9" * 5000}, "offset"),
    ],
)
def test_parse_list_query_refuses(query: dict[str, str], field: str) -> None:
    """A bad LIST parameter is a 400 naming the parameter."""
    error = refusal(parse_list_query, query)
    assert (error.status, error.code, error.field) == (400, "BAD_REQUEST", field)


def test_parse_list_query_message_shows_what_was_found() -> None:
    """The refusal says what was expected and what was found."""
    error = refusal(parse_list_query, {"limit": "0"})
    assert error.message == "limit: must be an integer from 1 to 1000, found '0'"


@pytest.mark.parametrize(
    "body",
    [
        {"contentId": "2556174"},
        {"contentId": 2556174},
        {"contentId": "x" * 255},
        VENDOR_EXAMPLE,
        {"contentId": "1", **DEFAULTS},
        {"contentId": "1", "contentType": "BLOGPOST", "spaceId": 213516917, "spaceKey": "DEV"},
        {"contentId": "1", "name": None, "description": "d" * 4000, "expiration": 0},
        {"contentId": "1", "expiration": 1_900_000_000_000},
        {"contentId": "1", **dict.fromkeys(BOOLEAN_NAMES, True)},
        {"contentId": "1", "selectedUsersConfig": {}},
        {"contentId": "1", "selectedUsersConfig": {"list": []}},
        {"contentId": "1", "selectedUsersConfig": {"allowed": False}},
    ],
)
def test_validate_create_accepts(body: dict[str, object]) -> None:
    """A valid CREATE body comes back as given."""
    assert validate_create(body) == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("contentId", "body"),
        (None, "body"),
        ({}, "contentId"),
        ({"name": "no content"}, "contentId"),
        ({"contentId": ""}, "contentId"),
        ({"contentId": "   "}, "contentId"),
        ({"contentId": None}, "contentId"),
        ({"contentId": True}, "contentId"),
        ({"contentId": 1.5}, "contentId"),
        ({"contentId": 0}, "contentId"),
        ({"contentId": -1}, "contentId"),
        ({"contentId": 2**63}, "contentId"),
        ({"contentId": ["1"]}, "contentId"),
        ({"contentId": "x" * 256}, "contentId"),
        ({"contentId": "1", "contentType": "page"}, "contentType"),
        ({"contentId": "1", "contentType": "ISSUE"}, "contentType"),
        ({"contentId": "1", "contentType": None}, "contentType"),
        ({"contentId": "1", "contentType": 1}, "contentType"),
        ({"contentId": "1", "spaceId": True}, "spaceId"),
        ({"contentId": "1", "spaceId": 1.5}, "spaceId"),
        ({"contentId": "1", "spaceId": {}}, "spaceId"),
        ({"contentId": "1", "spaceId": "x" * 256}, "spaceId"),
        ({"contentId": "1", "spaceKey": 1}, "spaceKey"),
        ({"contentId": "1", "spaceKey": False}, "spaceKey"),
        ({"contentId": "1", "spaceKey": "x" * 256}, "spaceKey"),
        ({"contentId": "1", "name": 1}, "name"),
        ({"contentId": "1", "name": "x" * 256}, "name"),
        ({"contentId": "1", "description": []}, "description"),
        ({"contentId": "1", "description": "x" * 4001}, "description"),
        ({"contentId": "1", "expiration": "1700000000000"}, "expiration"),
        ({"contentId": "1", "expiration": 1.5}, "expiration"),
        ({"contentId": "1", "expiration": True}, "expiration"),
        ({"contentId": "1", "expiration": -1}, "expiration"),
        ({"contentId": "1", "expiration": 2**63}, "expiration"),
        *[({"contentId": "1", name: None}, name) for name in BOOLEAN_NAMES],
        *[({"contentId": "1", name: "true"}, name) for name in BOOLEAN_NAMES],
        *[({"contentId": "1", name: 1}, name) for name in BOOLEAN_NAMES],
        ({"contentId": "1", "selectedUsersConfig": []}, "selectedUsersConfig"),
        ({"contentId": "1", "selectedUsersConfig": True}, "selectedUsersConfig"),
        ({"contentId": "1", "selectedUsersConfig": "a@b"}, "selectedUsersConfig"),
        (
            {"contentId": "1", "selectedUsersConfig": {"allowed": "yes"}},
            "selectedUsersConfig.allowed",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"allowedNotification": 1}},
            "selectedUsersConfig.allowedNotification",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"groups": []}},
            "selectedUsersConfig.groups",
        ),
        ({"contentId": "1", "selectedUsersConfig": {"list": {}}}, "selectedUsersConfig.list"),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": ["a@b"]}},
            "selectedUsersConfig.list[0]",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": [{}]}},
            "selectedUsersConfig.list[0].email",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": [{"email": "a@b"}, {"email": ""}]}},
            "selectedUsersConfig.list[1].email",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": [{"email": "a@b"}, {"email": "x"}]}},
            "selectedUsersConfig.list[1].email",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": [{"email": 7}]}},
            "selectedUsersConfig.list[0].email",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": [{"email": "a@" + "b" * 253}]}},
            "selectedUsersConfig.list[0].email",
        ),
        (
            {"contentId": "1", "selectedUsersConfig": {"list": [{"email": "a@b", "name": "A"}]}},
            "selectedUsersConfig.list[0].name",
        ),
        ({"contentId": "1", "uuid": "abc"}, "uuid"),
        ({"contentId": "1", "id": 1}, "id"),
        ({"contentId": "1", "createdAt": 1}, "createdAt"),
        ({"contentId": "1", "content_id": "1"}, "content_id"),
        ({"contentId": "1", "issueId": "1"}, "issueId"),
    ],
)
def test_validate_create_refuses(body: object, field: str) -> None:
    """A bad CREATE body is a 400 naming the field, nested ones dotted."""
    error = refusal(validate_create, body)
    assert (error.status, error.code, error.field) == (400, "BAD_REQUEST", field)


def test_validate_create_message_names_field_and_found_type() -> None:
    """The refusal names the field, what it must be and the JSON type found."""
    error = refusal(validate_create, {"contentId": "1", "showComments": "yes"})
    assert error.message == "showComments: must be true or false, found string"


def test_validate_create_answers_a_copy() -> None:
    """The validated fields are a new dict, so the caller's body is left alone."""
    body: dict[str, object] = {"contentId": "1"}
    fields = validate_create(body)
    fields["name"] = "changed"
    assert body == {"contentId": "1"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "renamed"},
        {"showComments": True, "expiration": None},
        {key: value for key, value in VENDOR_EXAMPLE.items() if key != "contentId"},
    ],
)
def test_validate_update_accepts(body: dict[str, object]) -> None:
    """A valid UPDATE body, every field optional, comes back as given."""
    assert validate_update(body) == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"contentId": "1"}, "contentId"),
        ({"contentType": "WHITEBOARD"}, "contentType"),
        ({"allowAddComment": "no"}, "allowAddComment"),
        ({"selectedUsersConfig": {"list": [{"email": "x"}]}}, "selectedUsersConfig.list[0].email"),
        ({"uuid": "abc"}, "uuid"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_validate_update_refuses(body: object, field: str) -> None:
    """A bad UPDATE body, or one that changes contentId, is a 400 naming the field."""
    error = refusal(validate_update, body)
    assert (error.status, error.code, error.field) == (400, "BAD_REQUEST", field)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"contentId": "1"}, {"contentId": "1", **DEFAULTS}),
        ({"contentId": 7, "name": ""}, {"contentId": 7, **DEFAULTS}),
        ({"contentId": 7, "name": None}, {"contentId": 7, **DEFAULTS}),
        (
            {"contentId": "1", "name": "Docs", "showLabels": True, "spaceKey": "DEV"},
            {
                **{"contentId": "1"},
                **DEFAULTS,
                "name": "Docs",
                "showLabels": True,
                "spaceKey": "DEV",
            },
        ),
        (VENDOR_EXAMPLE, {"contentId": "2556174", **DEFAULTS, **VENDOR_EXAMPLE}),
    ],
)
def test_apply_create_defaults(fields: dict[str, object], expected: dict[str, object]) -> None:
    """Fields not given take the CREATE defaults; an empty name takes the default name."""
    assert apply_create_defaults(fields) == expected


@pytest.mark.parametrize("value", ["a", "3f1c2d9e-8b7a-4c6d-9e0f-1a2b3c4d5e6f", "A_b-9", "x" * 128])
def test_validate_share_uuid_accepts(value: str) -> None:
    """URL-safe uuids of 1 to 128 characters pass through."""
    assert validate_share_uuid(value) == value


@pytest.mark.parametrize("value", ["", "x" * 129, "a/b", "a b", "..", "a.b", "caf\u00e9", "a%2F"])
def test_validate_share_uuid_refuses(value: str) -> None:
    """Anything else is a 400 naming the uuid."""
    error = refusal(validate_share_uuid, value)
    assert (error.status, error.code, error.field) == (400, "BAD_REQUEST", "uuid")
