"""Raw HTTP/1.1 over a socket: for bytes that an HTTP client library would refuse to send."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

HOST = "127.0.0.1"
TRACEBACK_MARKS = (b"Traceback", b'File "', b"Error:", b"aiohttp", b"Exception")
"""What a Python traceback or a framework error page would leave in an answer's body."""


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer as read off the socket."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class NoAnswer(AssertionError):
    """The server closed the connection without a byte of answer."""


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(data: bytes) -> RawAnswer:
    """An answer of a server that closes the connection after it (Connection: close)."""
    if not data:
        raise NoAnswer("the connection closed without an answer")
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no end of headers in {data[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    assert version in ("HTTP/1.1", "HTTP/1.0"), status_line
    headers = tuple(
        (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
    )
    answer = RawAnswer(int(status), headers, body)
    length = answer.header("Content-Length")
    if length is not None:
        assert len(body) == int(length), (len(body), length)
    return answer


def exchange(port: int, request: bytes, timeout_s: float = 10.0) -> RawAnswer:
    """Send one request's bytes as they are and read the whole answer."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
        sock.sendall(request)
        # No half-close: a server may take the end of input as the client going away.
        return parse_answer(_read_all(sock))


def request_bytes(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> bytes:
    """An HTTP/1.1 request with Host, Connection: close and, for a body, Content-Length."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + HOST.encode()]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_error_body(answer: RawAnswer) -> dict[str, object]:
    """A refusal: 4xx, the JSON error body, its requestId the X-Request-Id header."""
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.header("Content-Type") == "application/json; charset=utf-8", answer.headers
    body = json.loads(answer.body)
    assert isinstance(body, dict), body
    field = body.pop("field", None)
    assert field is None or isinstance(field, str), field
    request_id = body.pop("requestId", None)
    assert isinstance(request_id, str) and request_id == answer.header("X-Request-Id"), answer
    assert isinstance(body.pop("message", None), str), answer.body
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return {"error": body["error"], "field": field}


def assert_sound(answer: RawAnswer) -> None:
    """Any answer: never a 5xx made by the gateway, never a traceback, errors in the body."""
    assert answer.status < 500, (answer.status, answer.body[:300])
    for mark in TRACEBACK_MARKS:
        assert mark not in answer.body, answer.body[:500]
    assert answer.header("X-Request-Id"), answer.headers
    if answer.status >= 400:
        assert_error_body(answer)
