"""Schemathesis, from the OpenAPI document the admin listener serves, against a real gateway.

Every operation of both listeners is called with cases generated from the document,
valid and invalid ones: no answer may be a 5xx, every refusal is the error body with
X-Request-Id, and every answer must be one the document describes.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway import openapi
from tests.fuzz.conftest import CASES, FuzzTarget
from tests.raw_http import TRACEBACK_MARKS

MAX_EXAMPLES = 60
SEED = 20261204
ADMIN = ("/admin/", "/openapi.json", "/metrics")
# Rules JSON Schema cannot state: notValidAfter later than notValidBefore, and a date-time
# whose UTC moment falls within years 1 to 9999. A valid-looking key body can break them.
CROSS_FIELD_RULES = {("POST", "/admin/api/keys"), ("PATCH", "/admin/api/keys/{id}")}


def ip_entries() -> st.SearchStrategy[str]:
    """Allowlist entries as the admin API takes them: address, CIDR block or range."""
    addresses = st.ip_addresses()
    blocks = st.builds(
        lambda address, prefix: str(
            ipaddress.ip_network(f"{address}/{prefix % (address.max_prefixlen + 1)}", strict=False)
        ),
        addresses,
        st.integers(0, 128),
    )
    ranges = st.builds(
        lambda first, last: f"{min(first, last)}-{max(first, last)}",
        st.ip_addresses(v=4),
        st.ip_addresses(v=4),
    )
    return st.one_of(addresses.map(str), blocks, ranges)


schemathesis.openapi.format(openapi.IP_ENTRY_FORMAT, ip_entries())


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "mode": "all",
            "deterministic": True,
            # Valid cases in UTF-8: a lone surrogate is not text the key store can hold.
            "codec": "utf-8",
        },
        # The coverage phase alone makes thousands of cases here; fuzzing covers them.
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }
)
# Loaded at import, so that each operation is a test of its own; the fixture below makes
# sure the running gateway serves this very document.
# A copy: loading annotates the document in place, and its parts are module constants.
schema = schemathesis.openapi.from_dict(copy.deepcopy(openapi.document()), config=CONFIG)


@pytest.fixture(scope="module")
def served(fuzz_target: FuzzTarget) -> FuzzTarget:
    """The fuzz target, once its admin listener has served the document being fuzzed."""
    status, document = fuzz_target.admin_call("GET", "/openapi.json")
    assert (status, document) == (200, openapi.document())
    return fuzz_target


def target_of(case: Case[Any], target: FuzzTarget) -> tuple[str, dict[str, str]]:
    """The listener an operation is served on, and the credential it takes."""
    if case.path.startswith(ADMIN):
        return f"http://127.0.0.1:{target.admin_port}", target.process.admin_headers
    return f"http://127.0.0.1:{target.public_port}", target.key_auth


def negative(case: Case[Any], location: ParameterLocation) -> bool:
    """Whether schemathesis made this part of the case invalid on purpose."""
    component = case.meta.components.get(location) if case.meta is not None else None
    return component is not None and component.mode is GenerationMode.NEGATIVE


def aim_at_existing(case: Case[Any], target: FuzzTarget, count: int) -> None:
    """Every other valid path names a key or share that exists, to reach past the 404."""
    if count % 2 == 0 or negative(case, ParameterLocation.PATH):
        return
    parameters = dict(case.path_parameters or {})
    if "id" in parameters:
        parameters["id"] = target.new_key()
    if "uuid" in parameters:
        parameters["uuid"] = target.new_share()
    case.path_parameters = parameters


def assert_answer_sound(response: Response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response.headers.get("x-request-id"), response.headers
    for mark in TRACEBACK_MARKS:
        assert mark not in response.content, response.content[:500]
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict), body
        assert body.get("requestId") == response.headers["x-request-id"][0], body
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str)
        assert set(body) <= {"error", "message", "requestId", "field"}, body


@schema.parametrize()
def test_fuzz_openapi_operations(case: Case[Any], served: FuzzTarget) -> None:
    """No 5xx, the error body on every refusal, and answers as the document describes them."""
    label = f"openapi {case.method} {case.path}"
    CASES[label] += 1
    aim_at_existing(case, served, CASES[label])
    base_url, credential = target_of(case, served)
    if negative(case, ParameterLocation.HEADER):
        credential = {}  # The case's own, broken, Authorization header is what is tried.

    response = case.call(base_url=base_url, headers=credential)

    assert_answer_sound(response)
    excluded: list[CheckFunction] = (
        [positive_data_acceptance] if (case.method, case.path) in CROSS_FIELD_RULES else []
    )
    case.validate_response(response, headers=credential, excluded_checks=excluded)
