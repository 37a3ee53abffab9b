"""A local stand-in for Microsoft Entra ID and the Dataverse Web API, served on loopback.

It behaves as docs/website-visibility.md ("The Dynamics connection") describes the real thing:

- `POST /{tenant}/oauth2/v2.0/token` issues bearer tokens for clients added with `add_client`
  (client credentials grant, `scope=<this url>/.default`); anything else is 401 invalid_client.
- `PATCH /api/data/v9.2/contacts(<guid>)` needs a bearer token (or an API key added with
  `add_api_key`, as an API-management front would check) and the OData headers. With
  `If-Match: *` a missing row is 404; without it PATCH upserts (creates the row). 204 on success.
  `GET` and `DELETE` on the same URL work too, and on rows of the membership and enrolment
  tables (`hlf_memberships(<guid>)`, `hlf_courseenrollments(<guid>)`, added with `add_row`).
  `GET` honours `$select` (a lookup is `_<column>_value`; selecting the lookup by its own name is
  400, as in Dataverse) and, when `Prefer: odata.include-annotations` asks, the lookups' table
  and display name annotations.
- Errors have Dataverse's shape, `{"error": {"code": "0x...", "message": "..."}}`.
- Failures can be switched on from Python (`fail_next`) or over HTTP
  (`POST /_standin/failures {"kind": "429", "count": 2, "retry_after": 3}`,
  `DELETE /_standin/failures`); `limit_rate` adds a service protection limit (429 with
  `Retry-After` once exceeded).
- `requests` logs every Entra / Web API request as (monotonic arrival time, method, path,
  status); `received` keeps the headers and bodies too. `GET /_standin/contacts/<id>` shows a row.

    standin = DataverseStandIn(port=0).start()
    standin.add_client("tenant", "client-id", "client-secret")
    standin.add_contact("7d3e...", firstname="Kari")
    ...
    standin.stop()
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

API_PREFIX = "/api/data/v9.2/"
TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
ROW_PATH = re.compile(r"^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
# The tables the stand-in serves: entity set (URL) name -> logical name.
ENTITY_SETS = {
    "contacts": "contact",
    "hlf_memberships": "hlf_membership",
    "hlf_courseenrollments": "hlf_courseenrollment",
}
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
STANDIN_CONTACT_PATH = re.compile(r"^/_standin/contacts/([^/]+)$")

FAILURE_KINDS = ("400", "401", "403", "404", "412", "429", "500", "502", "503", "timeout")
THROTTLED_MESSAGE = "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
# Dataverse's error codes for the answers the stand-in gives.
CODE_NOT_FOUND = "0x80040217"
CODE_THROTTLED = "0x80072322"
CODE_BAD_REQUEST = "0x80060888"
CODE_RESOURCE_NOT_FOUND = "0x8006088a"
CODE_PRECONDITION = "0x80060882"
CODE_PAYLOAD = "0x80048d19"
CODE_PRIVILEGE = "0x80040220"
CODE_UNAVAILABLE = "0x80040216"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the stand-in saw it (headers lower-cased)."""

    time: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    retry_after: float | None = None
    query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass
class _Failure:
    kind: str
    remaining: int
    retry_after: float | None


@dataclass
class _Token:
    tenant: str
    client_id: str
    audience: str
    expires_at: float


@dataclass
class _State:
    clients: dict[tuple[str, str], str] = field(default_factory=dict)
    api_keys: set[str] = field(default_factory=set)
    tokens: dict[str, _Token] = field(default_factory=dict)
    # Per table logical name, rows by id.
    rows: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {table: {} for table in ENTITY_SETS.values()}
    )
    failures: deque[_Failure] = field(default_factory=deque)
    received: list[ReceivedRequest] = field(default_factory=list)
    served: deque[float] = field(default_factory=deque)  # arrival times within the rate window
    rate_limit: tuple[int, float] | None = None


class _Answer(Exception):
    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _dataverse_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> _Answer:
    return _Answer(status, {"error": {"code": code, "message": message}}, headers)


def _format_seconds(seconds: float) -> str:
    # Dataverse sends whole seconds; fractions are kept only when a test asks for them.
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class DataverseStandIn:
    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        timeout_seconds: float = 15.0,
        token_lifetime_seconds: int = 3599,
        columns: set[str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        # How long a "timeout" failure keeps the client waiting (longer than its timeout).
        self.timeout_seconds = timeout_seconds
        self.token_lifetime_seconds = token_lifetime_seconds
        # None accepts any column; a set rejects others with 400, as Dataverse does.
        self.columns = set(columns) if columns is not None else None
        self.verbose = verbose
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DataverseStandIn:
        server = _Server((self.host, self.port), _Handler, self)
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="dataverse-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes "timeout" answers that are still waiting
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DataverseStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- configuration ---------------------------------------------------------------------

    def add_client(self, tenant: str, client_id: str, secret: str) -> None:
        with self._lock:
            self._state.clients[(tenant, client_id)] = secret

    def add_api_key(self, key: str) -> None:
        with self._lock:
            self._state.api_keys.add(key)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (as after a revocation)."""
        with self._lock:
            self._state.tokens.clear()

    def add_columns(self, *names: str) -> None:
        with self._lock:
            if self.columns is not None:
                self.columns.update(names)

    def add_contact(self, contact_id: str, **columns: Any) -> None:
        key = _guid(contact_id)
        if key is None:
            raise ValueError(f"not a GUID: {contact_id!r}")
        with self._lock:
            row = {"contactid": key, "modifiedon": _now_text(), "versionnumber": 1}
            row.update(columns)
            self._state.rows["contact"][key] = row
            if self.columns is not None:
                self.columns.update(columns)

    def delete_contact(self, contact_id: str) -> None:
        with self._lock:
            self._state.rows["contact"].pop(_guid(contact_id) or contact_id, None)

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        key = _guid(contact_id)
        with self._lock:
            row = self._state.rows["contact"].get(key) if key else None
            return dict(row) if row is not None else None

    def add_row(
        self,
        entity_set: str,
        row_id: str,
        columns: dict[str, Any] | None = None,
        *,
        lookups: dict[str, tuple[str, str, str | None]] | None = None,
    ) -> None:
        """A row of a membership or enrolment table (or a contact). `lookups`: column ->
        (table, id, display name), stored as the Web API shows them (`_<column>_value`)."""
        table = ENTITY_SETS[entity_set]
        key = _guid(row_id)
        if key is None:
            raise ValueError(f"not a GUID: {row_id!r}")
        row: dict[str, Any] = {
            f"{table}id": key,
            "modifiedon": _now_text(),
            "versionnumber": 1,
            "statecode": 0,
        }
        row.update(columns or {})
        for column, (target, target_id, name) in (lookups or {}).items():
            row[f"_{column}_value"] = _guid(target_id)
            row[f"_{column}_value@{LOOKUP_LOGICAL_NAME}"] = target
            if name is not None:
                row[f"_{column}_value@{FORMATTED_VALUE}"] = name
        with self._lock:
            self._state.rows[table][key] = row

    def delete_row(self, entity_set: str, row_id: str) -> None:
        with self._lock:
            self._state.rows[ENTITY_SETS[entity_set]].pop(_guid(row_id) or row_id, None)

    def row(self, entity_set: str, row_id: str) -> dict[str, Any] | None:
        key = _guid(row_id)
        with self._lock:
            row = self._state.rows[ENTITY_SETS[entity_set]].get(key) if key else None
            return dict(row) if row is not None else None

    def fail_next(self, kind: str, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` Web API requests fail this way (queued after earlier failures)."""
        kind = str(kind)
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; one of {', '.join(FAILURE_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._state.failures.append(_Failure(kind, count, retry_after))

    def clear_failures(self) -> None:
        with self._lock:
            self._state.failures.clear()

    def pending_failures(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"kind": f.kind, "count": f.remaining, "retry_after": f.retry_after}
                for f in self._state.failures
            ]

    def limit_rate(self, requests: int | None, per_seconds: float = 300.0) -> None:
        """Service protection: more than `requests` Web API requests within `per_seconds` are
        answered 429 with `Retry-After` (None switches the limit off)."""
        with self._lock:
            self._state.rate_limit = None if requests is None else (requests, per_seconds)
            self._state.served.clear()

    @property
    def requests(self) -> list[tuple[float, str, str, int | None]]:
        """(monotonic arrival time, method, path, status) of every Entra / Web API request;
        status is None while a request is still being answered."""
        with self._lock:
            return [(r.time, r.method, r.path, r.status) for r in self._state.received]

    @property
    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._state.received)

    def reset_log(self) -> None:
        with self._lock:
            self._state.received.clear()

    # -- request handling (called from the server's threads) -------------------------------

    def _log_arrival(self, entry: ReceivedRequest) -> int:
        with self._lock:
            self._state.received.append(entry)
            return len(self._state.received) - 1

    def _log_answer(self, index: int, status: int, retry_after: float | None) -> None:
        with self._lock:
            received = self._state.received
            if index < len(received):
                old = received[index]
                received[index] = dataclasses.replace(old, status=status, retry_after=retry_after)

    def _issue_token(self, tenant: str, request: ReceivedRequest) -> _Answer:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            raise _Answer(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "AADSTS900144: The request body must contain the "
                    "following parameter: 'grant_type'.",
                },
            )
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            raise _Answer(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "AADSTS70003: The app requested an unsupported grant "
                    "type.",
                },
            )
        client_id = form.get("client_id", "")
        with self._lock:
            expected = self._state.clients.get((tenant, client_id))
        if expected is None or not secrets.compare_digest(
            expected.encode(), form.get("client_secret", "").encode()
        ):
            raise _Answer(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            raise _Answer(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": "AADSTS1002012: The provided value for scope is not "
                    "valid. Client credential flows must have a scope value with /.default.",
                },
            )
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._state.tokens[access_token] = _Token(
                tenant,
                client_id,
                scope.removesuffix("/.default").rstrip("/"),
                time.monotonic() + self.token_lifetime_seconds,
            )
        return _Answer(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_seconds,
                "ext_expires_in": self.token_lifetime_seconds,
                "access_token": access_token,
            },
        )

    def _authorise(self, request: ReceivedRequest) -> None:
        headers = request.headers
        key = headers.get("x-api-key")
        unauthorised = _dataverse_error(
            401,
            "",
            "The user is not authenticated.",
            {
                "WWW-Authenticate": f'Bearer authorization_uri="{self.url}", resource_id="{self.url}"'
            },
        )
        if key is not None:
            with self._lock:
                if key in self._state.api_keys:
                    return
            raise unauthorised
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise unauthorised
        with self._lock:
            token = self._state.tokens.get(credentials.strip())
        if token is None or time.monotonic() >= token.expires_at:
            raise unauthorised
        # A token issued for another organisation is not valid here.
        audiences = {self.url, f"http://{headers.get('host', '')}"}
        if token.audience not in audiences:
            raise unauthorised

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            failures = self._state.failures
            if not failures:
                return None
            failure = failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                failures.popleft()
            return _Failure(failure.kind, 1, failure.retry_after)

    def _throttle(self, arrived: float) -> None:
        """Service protection: counts the Web API requests answered within the window."""
        with self._lock:
            limit = self._state.rate_limit
            if limit is None:
                return
            allowed, window = limit
            served = self._state.served
            while served and served[0] <= arrived - window:
                served.popleft()
            if len(served) >= allowed:
                wait = max(1, math.ceil(served[0] + window - arrived))
                raise _dataverse_error(
                    429, CODE_THROTTLED, THROTTLED_MESSAGE, {"Retry-After": str(wait)}
                )
            served.append(arrived)

    def _injected(self, failure: _Failure, table: str, row_id: str) -> _Answer | None:
        kind = failure.kind
        if kind == "timeout":
            # Longer than the client waits; then the request is served after all, as a slow
            # Dataverse would (the change may be applied although the client gave up).
            self._stopping.wait(self.timeout_seconds)
            return None
        if kind == "429":
            retry_after = failure.retry_after if failure.retry_after is not None else 5
            return _dataverse_error(
                429,
                CODE_THROTTLED,
                THROTTLED_MESSAGE,
                {"Retry-After": _format_seconds(retry_after)},
            )
        headers = (
            {"Retry-After": _format_seconds(failure.retry_after)}
            if failure.retry_after is not None
            else {}
        )
        messages = {
            "400": (CODE_BAD_REQUEST, "Bad Request - Error in query syntax."),
            "401": ("", "The user is not authenticated."),
            "403": (
                CODE_PRIVILEGE,
                "Principal user is missing prvWriteContact privilege.",
            ),
            "404": (CODE_NOT_FOUND, _not_found(table, row_id)),
            "412": (
                CODE_PRECONDITION,
                "The version of the existing record doesn't match the RowVersion property "
                "provided.",
            ),
            "500": ("0x80040265", "An unexpected error occurred."),
            "502": ("", "Bad Gateway"),
            "503": (CODE_UNAVAILABLE, "The service is temporarily unavailable."),
        }
        code, message = messages[kind]
        return _dataverse_error(int(kind), code, message, headers)

    def _web_api(self, request: ReceivedRequest, path: str) -> _Answer:
        match = ROW_PATH.match(path)
        if match is None or match.group(1) not in ENTITY_SETS:
            segment = path[len(API_PREFIX) :].split("(")[0].split("/")[0]
            raise _dataverse_error(
                404, CODE_RESOURCE_NOT_FOUND, f"Resource not found for the segment '{segment}'."
            )
        entity_set = match.group(1)
        table = ENTITY_SETS[entity_set]
        raw_id = unquote(match.group(2))
        row_id = _guid(raw_id)

        self._authorise(request)
        failure = self._next_failure()
        if failure is not None:
            injected = self._injected(failure, table, row_id or raw_id)
            if injected is not None:
                raise injected
        self._throttle(request.time)

        if row_id is None:
            raise _dataverse_error(400, CODE_BAD_REQUEST, "Bad Request - Error in query syntax.")
        headers = request.headers
        for name in ("odata-maxversion", "odata-version"):
            if headers.get(name) is not None and headers[name].strip() != "4.0":
                raise _dataverse_error(
                    400, CODE_BAD_REQUEST, f"The {name} header value is not supported."
                )
        if request.method == "GET":
            return self._get_row(request, entity_set, row_id)
        if request.method == "DELETE":
            with self._lock:
                if self._state.rows[table].pop(row_id, None) is None:
                    raise _dataverse_error(404, CODE_NOT_FOUND, _not_found(table, row_id))
            return _Answer(204)
        # Only contacts are written (website visibility); the other tables are read.
        if request.method != "PATCH" or table != "contact":
            raise _dataverse_error(405, "0x80060888", "The HTTP method is not allowed.")
        return self._patch_contact(request, row_id)

    def _get_row(self, request: ReceivedRequest, entity_set: str, row_id: str) -> _Answer:
        table = ENTITY_SETS[entity_set]
        with self._lock:
            stored = self._state.rows[table].get(row_id)
            row = dict(stored) if stored is not None else None
        if row is None:
            raise _dataverse_error(404, CODE_NOT_FOUND, _not_found(table, row_id))
        values = {key: value for key, value in row.items() if "@" not in key}
        select = dict(parse_qsl(request.query)).get("$select")
        if select:
            chosen: dict[str, Any] = {f"{table}id": row_id}
            for name in (column.strip() for column in select.split(",")):
                # A lookup is selected as `_<column>_value`, never by its own name.
                if f"_{name}_value" in values or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise _dataverse_error(
                        400,
                        CODE_BAD_REQUEST,
                        f"Could not find a property named '{name}' on type "
                        f"'Microsoft.Dynamics.CRM.{table}'.",
                    )
                chosen[name] = values.get(name)  # a column without a value is null
            values = chosen
        preference = request.headers.get("prefer", "")
        headers: dict[str, str] = {}
        if "odata.include-annotations" in preference:
            headers["Preference-Applied"] = preference
            wanted = preference.partition("odata.include-annotations=")[2].strip('"')
            for key in [k for k in values if _LOOKUP_VALUE.match(k)]:
                for annotation in (LOOKUP_LOGICAL_NAME, FORMATTED_VALUE):
                    if f"{key}@{annotation}" in row and (wanted == "*" or annotation in wanted):
                        values[f"{key}@{annotation}"] = row[f"{key}@{annotation}"]
        return _Answer(
            200,
            {
                "@odata.context": f"{self.url}{API_PREFIX}$metadata#{entity_set}/$entity",
                "@odata.etag": f'W/"{row.get("versionnumber", 1)}"',
                **values,
            },
            headers,
        )

    def _patch_contact(self, request: ReceivedRequest, contact_id: str) -> _Answer:
        headers = request.headers
        if headers.get("odata-maxversion") is None or headers.get("odata-version") is None:
            raise _dataverse_error(
                400,
                CODE_BAD_REQUEST,
                "The OData-MaxVersion and OData-Version headers are required (4.0).",
            )
        if not headers.get("content-type", "").lower().startswith("application/json"):
            raise _dataverse_error(
                415, CODE_PAYLOAD, "The content type of the request must be application/json."
            )
        try:
            columns = json.loads(request.body or b"{}")
        except ValueError:
            raise _dataverse_error(
                400, CODE_PAYLOAD, "Error identified in Payload provided by the user for Entity"
            ) from None
        if not isinstance(columns, dict):
            raise _dataverse_error(
                400, CODE_PAYLOAD, "Error identified in Payload provided by the user for Entity"
            )
        with self._lock:
            known = self.columns
            for name in columns:
                if name.startswith("@") or (known is not None and name not in known):
                    raise _dataverse_error(
                        400,
                        CODE_BAD_REQUEST,
                        f"Invalid property '{name}' was found in entity "
                        "'Microsoft.Dynamics.CRM.contact'.",
                    )
            row = self._state.rows["contact"].get(contact_id)
            if_match = headers.get("if-match")
            if_none_match = headers.get("if-none-match")
            if if_match is not None:
                if row is None:
                    raise _dataverse_error(
                        404, CODE_NOT_FOUND, f"contact With Id = {contact_id} Does Not Exist"
                    )
                if if_match.strip() != "*" and if_match.strip() != f'W/"{row["versionnumber"]}"':
                    raise _dataverse_error(
                        412,
                        CODE_PRECONDITION,
                        "The version of the existing record doesn't match the RowVersion "
                        "property provided.",
                    )
            if if_none_match is not None and if_none_match.strip() == "*" and row is not None:
                raise _dataverse_error(
                    412, CODE_PRECONDITION, "A record with matching key values already exists."
                )
            if row is None:  # no If-Match: PATCH is an upsert and creates the row
                row = {"contactid": contact_id, "versionnumber": 0}
                self._state.rows["contact"][contact_id] = row
            row.update(columns)
            row["contactid"] = contact_id
            row["modifiedon"] = _now_text()
            row["versionnumber"] = int(row.get("versionnumber", 0)) + 1
        return _Answer(
            204, headers={"OData-EntityId": f"{self.url}{API_PREFIX}contacts({contact_id})"}
        )

    def _control(self, request: ReceivedRequest, path: str) -> _Answer:
        """The stand-in's own endpoints (not logged as Dataverse traffic)."""
        if path == "/_standin/failures":
            if request.method == "GET":
                return _Answer(200, {"failures": self.pending_failures()})
            if request.method == "DELETE":
                self.clear_failures()
                return _Answer(204)
            if request.method == "POST":
                try:
                    spec = json.loads(request.body or b"{}")
                    retry_after = spec.get("retry_after")
                    self.fail_next(
                        str(spec.get("kind")),
                        int(spec.get("count", 1)),
                        float(retry_after) if retry_after is not None else None,
                    )
                except (ValueError, TypeError, AttributeError) as exc:
                    raise _Answer(400, {"error": str(exc)}) from None
                return _Answer(201, {"failures": self.pending_failures()})
        match = STANDIN_CONTACT_PATH.match(path)
        if match is not None and request.method == "GET":
            row = self.contact(unquote(match.group(1)))
            if row is None:
                raise _Answer(404, {"error": "no such contact"})
            return _Answer(200, row)
        if path == "/_standin/contacts" and request.method == "POST":
            try:
                spec = json.loads(request.body or b"{}")
                columns = dict(spec)
                contact_id = str(columns.pop("contactid", None) or uuid.uuid4())
                self.add_contact(contact_id, **columns)
            except (ValueError, TypeError) as exc:
                raise _Answer(400, {"error": str(exc)}) from None
            return _Answer(201, self.contact(contact_id))
        raise _Answer(404, {"error": "not found"})

    def _handle(self, request: ReceivedRequest) -> _Answer:
        path = urlsplit(request.path).path
        if path.startswith("/_standin/"):
            return self._control(request, path)
        token_path = TOKEN_PATH.match(path)
        if token_path is not None and request.method == "POST":
            return self._issue_token(unquote(token_path.group(1)), request)
        if path.startswith(API_PREFIX):
            return self._web_api(request, path)
        raise _Answer(404, {"error": {"code": "", "message": "Not found"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        standin: DataverseStandIn,
    ) -> None:
        super().__init__(address, handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        arrived = time.monotonic()
        standin = self.server.standin
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = ReceivedRequest(
            arrived,
            self.command,
            urlsplit(self.path).path,
            {name.lower(): value for name, value in self.headers.items()},
            body,
            query=urlsplit(self.path).query,
        )
        logged = not request.path.startswith("/_standin/")
        index = standin._log_arrival(request) if logged else -1
        try:
            answer = standin._handle(request)
        except _Answer as raised:
            answer = raised
        except Exception:  # a bug in the stand-in: answer like a failing server
            import traceback

            traceback.print_exc()
            answer = _dataverse_error(500, "", "The stand-in failed.")
        retry_after = answer.headers.get("Retry-After")
        if logged:
            standin._log_answer(
                index, answer.status, float(retry_after) if retry_after is not None else None
            )
        try:
            self._send(answer)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.status == 204 or answer.body is None:
            if answer.status != 204:
                self.send_header("Content-Length", "0")
            self.send_header("OData-Version", "4.0")
            self.end_headers()
            return
        data = json.dumps(answer.body).encode()
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("OData-Version", "4.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.verbose:
            super().log_message(format, *args)


_LOOKUP_VALUE = re.compile(r"^_.+_value$")


def _not_found(table: str, row_id: str) -> str:
    return f"{table} With Id = {row_id} Does Not Exist"


def _guid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value).strip().strip("{}")))
    except (ValueError, TypeError):
        return None


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    """Serves a stand-in on its own: `python -m portal_sync_dev.local.dataverse_standin`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tenant", default="00000000-0000-0000-0000-000000000001")
    parser.add_argument("--client-id", default="portal-sync-local")
    parser.add_argument("--client-secret", default="local-secret")
    args = parser.parse_args()
    standin = DataverseStandIn(port=args.port, verbose=True).start()
    standin.add_client(args.tenant, args.client_id, args.client_secret)
    print(json.dumps({"url": standin.url, "tenant": args.tenant, "client_id": args.client_id}))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
