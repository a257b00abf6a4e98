"""The OpenAPI 3 document of both listeners, built from the same constants the code uses."""

from __future__ import annotations

from typing import Any

from gateway import shares
from gateway.keys import rules
from gateway.keys.model import OPERATIONS
from gateway.keys.rules import ALLOWED_IPS_MAX, DESCRIPTION_MAX, GRACE_MAX_S, NAME_MAX

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "A bad parameter or body; `field` names it",
        401: "No valid credential",
        403: "The credential may not do this",
        404: "Nothing with that id",
        408: "The body did not arrive within server.read_timeout_s",
        413: "The body is too large",
        415: "The body is not JSON",
        429: "The key's rate limit is reached; `Retry-After` says when to try again",
        502: "The upstream is unavailable",
        503: "The store is not usable",
        504: "The upstream did not answer in time",
    }
    answers = {str(status): _answer(reasons[status], "Error") for status in statuses}
    if "429" in answers:
        answers["429"]["headers"] = {
            "Retry-After": {
                "description": "Whole seconds until a request would be allowed, at least 1",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return answers


_NULLABLE_STRING = {"type": "string", "nullable": True}

_SHARE_FIELDS: dict[str, Any] = {
    "contentType": {"type": "string", "enum": list(shares.CONTENT_TYPES)},
    "spaceId": {
        "oneOf": [{"type": "string"}, {"type": "integer"}],
        "nullable": True,
    },
    "spaceKey": {**_NULLABLE_STRING, "maxLength": shares.STRING_MAX},
    "name": {**_NULLABLE_STRING, "maxLength": shares.STRING_MAX},
    "description": {**_NULLABLE_STRING, "maxLength": shares.DESCRIPTION_MAX},
    "expiration": {
        "type": "integer",
        "minimum": 0,
        "maximum": shares.INTEGER_MAX,
        "nullable": True,
        "description": "epoch milliseconds",
    },
    **{name: {"type": "boolean"} for name in shares.BOOLEAN_FIELDS},
    "selectedUsersConfig": {
        "type": "object",
        "nullable": True,
        "additionalProperties": False,
        "properties": {
            "allowed": {"type": "boolean"},
            "allowedNotification": {"type": "boolean"},
            "list": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["email"],
                    "properties": {
                        "email": {"type": "string", "maxLength": shares.EMAIL_MAX, "pattern": "@"}
                    },
                },
            },
        },
    },
}

_NO_CONTROL = r"[^\x00-\x1f\x7f-\x9f]"
IP_ENTRY_FORMAT = "ip-allowlist-entry"
"""An address, a CIDR block without host bits, or a range a-b from low to high."""

_KEY_FIELDS: dict[str, Any] = {
    "name": {
        "type": "string",
        "maxLength": NAME_MAX,
        "description": "trimmed; no control characters",
        "pattern": rf"^{_NO_CONTROL}*[^\s\x00-\x1f\x7f-\x9f]{_NO_CONTROL}*$",
    },
    "permissions": {
        "type": "object",
        "additionalProperties": False,
        "properties": {op: {"type": "boolean"} for op in OPERATIONS},
    },
    "admin": {"type": "boolean"},
    "notValidBefore": {"type": "string", "format": "date-time", "nullable": True},
    "notValidAfter": {"type": "string", "format": "date-time", "nullable": True},
    "allowedIps": {
        "type": "array",
        "maxItems": ALLOWED_IPS_MAX,
        "items": {"type": "string", "format": IP_ENTRY_FORMAT},
    },
    "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
    "rateLimit": {
        "type": "object",
        "nullable": True,
        "description": "at most `requests` requests sent upstream in any `perSeconds` seconds",
        "additionalProperties": False,
        "required": ["requests", "perSeconds"],
        "properties": {
            "requests": {"type": "integer", "minimum": 1, "maximum": rules.RATE_REQUESTS_MAX},
            "perSeconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": rules.RATE_PER_SECONDS_MAX,
            },
        },
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message", "requestId"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "requestId": {"type": "string"},
            "field": {"type": "string"},
        },
    },
    "ShareCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["contentId"],
        "properties": {
            "contentId": {
                "oneOf": [
                    {"type": "string", "maxLength": shares.STRING_MAX, "pattern": r"\S"},
                    {"type": "integer", "minimum": 1, "maximum": shares.INTEGER_MAX},
                ]
            },
            **_SHARE_FIELDS,
        },
    },
    "ShareUpdate": {"type": "object", "additionalProperties": False, "properties": _SHARE_FIELDS},
    "Share": {
        "type": "object",
        "description": "Relayed as the upstream answers it.",
        "additionalProperties": True,
    },
    "KeyCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": _KEY_FIELDS,
    },
    "KeyUpdate": {"type": "object", "additionalProperties": False, "properties": _KEY_FIELDS},
    "Key": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "maskedValue": {"type": "string"},
            **_KEY_FIELDS,
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "createdBy": {"type": "string"},
            "usageCount": {"type": "integer"},
            "deniedCount": {"type": "integer"},
            "lastUsedAt": {"type": "string", "format": "date-time", "nullable": True},
            "previousValidUntil": {"type": "string", "format": "date-time", "nullable": True},
            "value": {"type": "string", "description": "only on create and rotate"},
        },
    },
    "KeyList": {"type": "object", "properties": {"keys": {"type": "array", "items": _ref("Key")}}},
    "Value": {"type": "object", "properties": {"value": {"type": "string"}}},
    "Rotate": {
        "type": "object",
        "nullable": True,
        "description": "No body, or null, keeps the default grace period of one day",
        "additionalProperties": False,
        "properties": {
            "gracePeriodSeconds": {"type": "integer", "minimum": 0, "maximum": GRACE_MAX_S}
        },
    },
    "History": {
        "type": "object",
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "keyId": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                        "actor": {"type": "string"},
                        "action": {"type": "string"},
                        "changes": {"type": "array", "items": {"type": "object"}},
                    },
                },
            }
        },
    },
    "Usage": {
        "type": "object",
        "properties": {
            "buckets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "allowed": {"type": "integer"},
                        "denied": {"type": "integer"},
                    },
                },
            }
        },
    },
    "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
}


def _share_paths() -> dict[str, Any]:
    uuid = {
        "name": "uuid",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
    }
    denied = (401, 403, 429, 502, 504)
    # Whatever else the upstream answers (404 for an unknown share, 409, ...) is relayed.
    relayed = {"default": _answer("The upstream's answer, relayed with its status and body")}
    body = (400, 401, 403, 408, 413, 415, 429, 502, 504)
    list_params = [
        {
            "name": "sort",
            "in": "query",
            "schema": {"type": "string", "enum": sorted(shares.SORT_FIELDS)},
        },
        {"name": "sortOrder", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": shares.LIMIT_MIN, "maximum": shares.LIMIT_MAX},
        },
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": shares.OFFSET_MAX},
        },
        {"name": "contents", "in": "query", "schema": {"type": "string"}},
        {"name": "spaceKeys", "in": "query", "schema": {"type": "string"}},
    ]
    update = {
        "operationId": "updateShare",
        "summary": "UPDATE (needs `update`)",
        "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("ShareUpdate")}}},
        "responses": {
            "200": _answer("The upstream's answer", "Share"),
            **_errors(*body),
            **relayed,
        },
    }
    return {
        "/webapi/share": {
            "get": {
                "operationId": "listShares",
                "summary": "LIST (needs `list`; non-admin keys must pass contents or spaceKeys)",
                "parameters": list_params,
                "responses": {
                    "200": _answer("The upstream's answer"),
                    **_errors(400, *denied),
                    **relayed,
                },
            },
            "post": {
                "operationId": "createShare",
                "summary": "CREATE (needs `create`)",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("ShareCreate")}},
                },
                "responses": {
                    "201": _answer("The upstream's answer", "Share"),
                    **_errors(*body),
                    **relayed,
                },
            },
        },
        "/webapi/share/{uuid}": {
            "parameters": [uuid],
            "get": {
                "operationId": "getShare",
                "summary": "GET (needs `get`)",
                "responses": {
                    "200": _answer("The upstream's answer", "Share"),
                    **_errors(400, *denied),
                    **relayed,
                },
            },
            "put": update,
            "patch": {**update, "operationId": "patchShare"},
            "delete": {
                "operationId": "deleteShare",
                "summary": "DELETE (needs `delete`)",
                "responses": {"204": _answer("Deleted"), **_errors(400, *denied), **relayed},
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "security": [],
                "responses": {"200": _answer("The process runs", "Status")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "security": [],
                "responses": {"200": _answer("The store is usable", "Status"), **_errors(503)},
            }
        },
    }


def _admin_paths() -> dict[str, Any]:
    key_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    admin: list[dict[str, list[str]]] = [{"adminToken": []}]

    def op(
        operation_id: str,
        ok: str,
        schema: str | None,
        body: str | None = None,
        errors: tuple[int, ...] = (401, 404),
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "operationId": operation_id,
            "security": admin,
            "responses": {ok: _answer("Done", schema), **_errors(*errors)},
        }
        if body is not None:
            entry["requestBody"] = {
                "required": body != "Rotate",
                "content": {_JSON: {"schema": _ref(body)}},
            }
        return entry

    download = op("downloadKey", "200", None)
    download["responses"]["200"] = {
        "description": "An attachment holding the key",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return {
        "/admin/api/keys": {
            "get": op("listKeys", "200", "KeyList", errors=(401,)),
            "post": op("createKey", "201", "Key", "KeyCreate", (400, 401, 408, 415)),
        },
        "/admin/api/keys/{id}": {
            "parameters": [key_id],
            "get": op("showKey", "200", "Key"),
            "patch": op("updateKey", "200", "Key", "KeyUpdate", (400, 401, 404, 408, 415)),
            "delete": op("deleteKey", "204", None),
        },
        "/admin/api/keys/{id}/reveal": {
            "parameters": [key_id],
            "post": op("revealKey", "200", "Value"),
        },
        "/admin/api/keys/{id}/rotate": {
            "parameters": [key_id],
            "post": op("rotateKey", "200", "Key", "Rotate", (400, 401, 404, 408, 415)),
        },
        "/admin/api/keys/{id}/download": {"parameters": [key_id], "get": download},
        "/admin/api/keys/{id}/history": {
            "parameters": [key_id],
            "get": op("keyHistory", "200", "History"),
        },
        "/admin/api/keys/{id}/usage": {
            "parameters": [key_id],
            "get": op("keyUsage", "200", "Usage"),
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics, in the text format 0.0.4",
                "security": admin,
                "responses": {
                    "200": {
                        "description": "Every series; with several workers, all of them summed",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {"200": {"description": "This document"}},
            }
        },
    }


def document(extra_admin_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole document; the public paths are served on the public listener."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "share-gateway",
            "version": "1",
            "description": (
                "Share operations on the public listener (gateway key), key management on "
                "the admin listener (admin token). Errors answer the Error body."
            ),
        },
        "servers": [
            {"url": "http://127.0.0.1:8080", "description": "public listener"},
            {"url": "http://127.0.0.1:8081", "description": "admin listener"},
        ],
        "security": [{"gatewayKey": []}],
        "paths": {**_share_paths(), **_admin_paths(), **(extra_admin_paths or {})},
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "gatewayKey": {"type": "http", "scheme": "bearer"},
                "adminToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
