"""JSON bodies read strictly: one value per name, and nothing but JSON.

SECURITY: bodies are forwarded or stored as the gateway understood them. Python's
parser keeps the last of two equal names where others keep the first, and it
accepts NaN and Infinity, which strict parsers refuse; either would let a
client send a value other than the one the gateway checked.
"""

from __future__ import annotations

import json

from gateway.errors import ApiError


def parse_body(raw: bytes) -> object:
    """The JSON document in a request body, or a 400 naming the body."""
    try:
        return json.loads(raw, object_pairs_hook=_once_each, parse_constant=_not_json)
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", "body: is not valid JSON", field="body") from None
    except RecursionError:
        # Deep nesting exhausts the parser's stack; without this it would be a 500.
        raise ApiError(400, "BAD_REQUEST", "body: is nested too deeply", field="body") from None


def _once_each(pairs: list[tuple[str, object]]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, value in pairs:
        if name in fields:
            raise ApiError(400, "BAD_REQUEST", f"body: {name!r} appears twice", field="body")
        fields[name] = value
    return fields


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")
