"""The local HTTP adapter (`make run`, the tests) answers as API Gateway does, over loopback."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from portal_sync_dev.local.lambda_http import LocalApiServer, LocalFunction

BODY = json.dumps({"code": 401, "message": "Missing authorization header"}).encode()


def _handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers every method alike (a Powertools resolver answers HEAD as any unknown route)."""
    return {
        "statusCode": 401,
        "headers": {"content-type": "application/json"},
        "body": BODY.decode(),
        "isBase64Encoded": False,
    }


@pytest.fixture
def server() -> Iterator[LocalApiServer]:
    api = LocalApiServer(
        "127.0.0.1", 0, [("/functions/v1/admin-api", LocalFunction("f", _handler))]
    )
    api.start()
    yield api
    api.shutdown()
    api.server_close()


def test_a_head_answer_has_headers_and_no_body(server: LocalApiServer) -> None:
    """Written after a HEAD answer, the body would be read as the next response's status line."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    path = "/functions/v1/admin-api/orgs/x/integration"

    connection.request("HEAD", path)
    head = connection.getresponse()
    assert head.status == 401
    assert head.getheader("content-length") == str(len(BODY))  # what GET would send
    assert head.read() == b""

    # The same connection: the next answer must start right after the HEAD answer's headers.
    connection.request("GET", path)
    get = connection.getresponse()
    assert get.status == 401
    assert get.read() == BODY
    connection.close()


def test_nothing_follows_a_head_answer_on_the_wire(server: LocalApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as raw:
        raw.sendall(b"HEAD /functions/v1/admin-api/x HTTP/1.1\r\nHost: local\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += raw.recv(4096)
        # Closing our side makes the server finish the connection: all it wrote is now here.
        raw.shutdown(socket.SHUT_WR)
        while chunk := raw.recv(4096):
            received += chunk

    headers, _, rest = received.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 401")
    assert f"content-length: {len(BODY)}".encode() in headers.lower()
    assert rest == b""
