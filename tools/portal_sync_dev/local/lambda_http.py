"""Serves Lambda handlers over HTTP on loopback, the way API Gateway HTTP APIs (payload v2) do.

Each request becomes the same event API Gateway would send; the handler's answer becomes the
HTTP response. One lock per function mimics one Lambda execution environment per function.
Static sites (the admin console at /console/, docs/console.md) are served beside them, as
CloudFront would serve them in front of S3.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")


@dataclass
class LambdaContext:
    """The attributes of the real context that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 256
    timeout_seconds: int = 30
    aws_request_id: str = ""

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:eu-north-1:000000000000:function:{self.function_name}"
        )
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Route:
    prefix: str
    function_name: str
    handler: Handler


class LocalFunction:
    def __init__(self, name: str, handler: Handler, timeout_seconds: int = 30) -> None:
        self.name = name
        self._handler = handler
        self._timeout = timeout_seconds
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(
            self.name, timeout_seconds=self._timeout, aws_request_id=str(uuid.uuid4())
        )
        with self._lock:
            return self._handler(event, context)


def build_http_event(
    method: str, raw_url: str, headers: dict[str, str], body: bytes, source_ip: str
) -> dict[str, Any]:
    parts = urlsplit(raw_url)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    content_type = lowered.get("content-type", "")
    is_text = not body or content_type.startswith(TEXT_TYPES)
    text: str | None = None
    if is_text:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }
    if parts.query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    return event


# What a static site may serve, by file suffix: anything else (a lockfile, a README, a script
# of another kind) is not part of the site and answers 404.
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True)
class StaticAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class StaticSite:
    """The files of one folder under a path prefix, read-only (GET and HEAD).

    `documents` are files made per request (the console's config.json, from the running
    system); `files` are files kept elsewhere served under a name of the site (supabase-js's
    bundle from the npm install, as the deploy step uploads it); `excluded` names top-level
    entries of the folder that are not the site (its npm tooling). A request naming anything
    outside the folder, a hidden file or an unknown type answers 404, whatever its encoding.
    """

    prefix: str
    root: Path
    documents: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    def serves(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def answer(self, method: str, path: str) -> StaticAnswer:
        if method not in ("GET", "HEAD"):
            return self._plain(405, "Method not allowed", allow="GET, HEAD")
        if path == self.prefix:
            # Relative URLs in index.html resolve against the folder, not its parent.
            return StaticAnswer(301, {"location": self.prefix + "/"}, b"")
        name = unquote(path[len(self.prefix) + 1 :], errors="strict") or "index.html"
        if name.endswith("/"):
            name += "index.html"
        parts = name.split("/")
        if any(
            not part or part.startswith(".") or "\\" in part or "\x00" in part for part in parts
        ):
            return self._plain(404, "Not found")
        if parts[0] in self.excluded:
            return self._plain(404, "Not found")
        suffix = Path(parts[-1]).suffix
        if suffix not in STATIC_TYPES:
            return self._plain(404, "Not found")
        if name in self.documents:
            return self._file(STATIC_TYPES[suffix], self.documents[name]())
        if name in self.files:
            # Missing until `npm ci` in console/ (tools/browser/install-axe.sh) has run.
            if not self.files[name].is_file():
                return self._plain(404, "Not found")
            return self._file(STATIC_TYPES[suffix], self.files[name].read_bytes())
        root = self.root.resolve()
        candidate = root.joinpath(*parts).resolve()
        # resolve() follows symbolic links too: a link out of the folder is outside it.
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return self._plain(404, "Not found")
        return self._file(STATIC_TYPES[suffix], candidate.read_bytes())

    def _file(self, content_type: str, body: bytes) -> StaticAnswer:
        return StaticAnswer(
            200,
            {
                "content-type": content_type,
                # A console edited while `make run` runs is seen on the next load.
                "cache-control": "no-cache",
                "x-content-type-options": "nosniff",
                **self.headers,
            },
            body,
        )

    def _plain(self, status: int, message: str, **extra: str) -> StaticAnswer:
        headers = {"content-type": "text/plain; charset=utf-8", **extra}
        return StaticAnswer(status, headers, message.encode())


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalApiServer
    protocol_version = "HTTP/1.1"
    # The status line and headers, then the body, go out in two writes: with Nagle's algorithm
    # the body waits for the client's delayed ACK (up to 40 ms per response on loopback).
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        site = self.server.site_for(path)
        if site is not None:
            try:
                static = site.answer(self.command, path)
            except UnicodeDecodeError:  # a percent-encoding that is not UTF-8
                static = StaticAnswer(400, {"content-type": "text/plain"}, b"Bad request")
            self._send(static.status, static.headers, static.body)
            return
        function = self.server.function_for(path)
        if function is None:
            self._send(
                404, {"content-type": "application/json"}, b'{"code":404,"message":"Not found"}'
            )
            return
        # A header sent twice is one, its values joined with commas, as API Gateway joins them
        # (`dict(self.headers.items())` would keep the last one only).
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        event = build_http_event(self.command, self.path, headers, body, self.client_address[0])
        try:
            result = function.invoke(event)
        except Exception:  # a crashed handler is a 502 at API Gateway
            self.server.log_error_callback(function.name)
            self._send(
                502, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
            )
            return
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ",".join(values)
        self._send(int(result.get("statusCode", 200)), headers, data, result.get("cookies") or [])

    def _send(
        self, status: int, headers: dict[str, str], data: bytes, cookies: list[str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        # A HEAD answer is the GET answer's headers alone (RFC 9110 9.3.2): a body written after
        # it would be read by the client as the start of the next response on the connection.
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class LocalApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        host: str,
        port: int,
        routes: list[tuple[str, LocalFunction]],
        verbose: bool = False,
        sites: tuple[StaticSite, ...] = (),
    ) -> None:
        super().__init__((host, port), _RequestHandler)
        # Longest prefix first, as API Gateway picks the most specific route.
        self._routes = sorted(routes, key=lambda route: len(route[0]), reverse=True)
        self.verbose = verbose
        self.sites = sites

    def site_for(self, path: str) -> StaticSite | None:
        return next((site for site in self.sites if site.serves(path)), None)

    def function_for(self, path: str) -> LocalFunction | None:
        for prefix, function in self._routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return function
        return None

    def log_error_callback(self, name: str) -> None:
        import traceback

        traceback.print_exc()
        print(json.dumps({"level": "ERROR", "message": f"{name} raised"}))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="local-api", daemon=True)
        thread.start()
        return thread
