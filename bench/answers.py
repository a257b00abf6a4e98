"""Single HTTP requests from the benchmark itself: admin calls and first answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request_json(url: str, method: str, headers: dict[str, str], body: object = None) -> Any:
    """Send one request and answer its JSON; anything but 2xx raises RuntimeError."""
    data = None if body is None else json.dumps(body).encode()
    sent = dict(headers)
    if data is not None:
        sent["Content-Type"] = "application/json"
    # Only http://127.0.0.1 URLs of the benchmark's own servers get here.
    request = urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url}: {exc.code} {exc.read()[:300]!r}") from None


def check_share_answer(url: str, authorization: str) -> None:
    """GET `url` once: it must answer 200 with a JSON share object."""
    request = urllib.request.Request(url, headers={"Authorization": authorization})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status, media_type = response.status, response.headers.get_content_type()
            share = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"GET {url}: {exc.code} {exc.read()[:300]!r}") from None
    if status != 200 or media_type != "application/json" or "uuid" not in share:
        raise RuntimeError(f"GET {url}: {status} {media_type}, not a share: {share!r:.300}")
