"""A local stand-in for Microsoft Entra ID and the Dataverse Web API, served on loopback.

It behaves as docs/website-visibility.md ("The Dynamics connection") describes the real thing.
It listens on two origins of 127.0.0.1 that share one state: `url`, Entra ID and the Web API
(and the stand-in's own `/_standin/` endpoints), and `gateway_url`, an API-management front of
the Web API. Each origin serves only its own part, as separate hosts would.

Entra ID
- `POST /{tenant}/oauth2/v2.0/token` issues bearer tokens for clients added with `add_client`
  (client credentials grant, `scope=<this url>/.default`); a wrong secret is 401
  `invalid_client`, a wrong grant or scope 400, each with `error` and `error_description`.

Web API (`/api/data/v9.2/...`): only Entra bearer tokens, as Dataverse. No token: 401 with code
`MissingCrmAuthenticationToken`; an unknown, expired or other environment's token: 401. Every
answer carries `x-ms-service-request-id`. Errors have Dataverse's shape,
`{"error": {"code": "0x...", "message": "..."}}`. The tables: `contacts` (contact),
`hlf_memberships` (hlf_membership), `hlf_courseenrollments` (hlf_courseenrollment), each with a
column schema (`TABLE_COLUMNS`, extended by the columns rows are added with).
- `GET /api/data/v9.2/WhoAmI` -> `{"UserId", "BusinessUnitId", "OrganizationId"}`: `UserId` is
  the caller's application user (`application_user_id(client_id)`, not the client id).
- `GET <set>(<guid>)`, `DELETE <set>(<guid>)`; `PATCH contacts(<guid>)` with the OData headers:
  with `If-Match: *` a missing row is 404; without it PATCH upserts (creates the row); 204. A
  value of the wrong type for a known column (a string for a boolean) is 400 (code 0x80048d19);
  with `columns=` given, a column outside that set is 400 too. `?tag=<t>` is kept with the
  request (Dataverse hands it to plug-ins as the shared variable `tag`).
- `$select`: a lookup is `_<column>_value` (selecting the lookup by its own name is 400, as in
  Dataverse); a column the table does not have is 400 (code 0x80060888). With
  `Prefer: odata.include-annotations="*"` lookups carry their table and display name annotations.
- `GET <set>?$select=a,b` reads the whole table in pages, in change order. `Prefer:` may hold
  `odata.maxpagesize=N` (default and maximum 5000) and `odata.track-changes`; the answer's
  `Preference-Applied` names those honoured. A page is `{"@odata.context", "value": [rows]}`,
  each row with `@odata.etag` (`W/"<versionnumber>"`) and its id column; a page that is not the
  last has `@odata.nextLink` (absolute URL, opaque `$skiptoken`; follow it as it is, the page size
  and tracking travel in it). The last page of a tracked read has `@odata.deltaLink`
  (`<url>/api/data/v9.2/<set>?$select=...&$deltatoken=<opaque>`). Calling a delta link returns
  the rows created or changed since the read began (current values, paged the same way, a new
  `@odata.deltaLink` on the last page) and deleted rows as
  `{"@odata.context": "<url>/api/data/v9.2/$metadata#<set>/$deletedEntity", "id": "<guid>",
  "reason": "deleted"}`. A row changed during a read may come again in the next delta (apply
  by modifiedon). Delta tokens expire after `delta_token_max_age_seconds` or when
  `expire_delta_tokens()` is called; an expired (or unknown, e.g. from before a restart) token is
  400 `{"error": {"code": "0x80044352", "message": "Version stamp associated with the client
  has expired. Please perform a full sync."}}`. Change tracking is per table
  (`set_change_tracking`): off, `odata.track-changes` is ignored (no delta link) and a delta
  token is 400.
- `GET <set>?$select=a,b&$filter=<id> eq <guid> or <id> eq <guid> ...` (`<id>` the table's
  primary key, e.g. `contactid`; GUIDs unquoted, as OData writes them) reads those rows in one
  answer, `{"@odata.context", "value": [rows]}` in id order, each row with its id column,
  the selected columns and `@odata.etag`; ids that do not exist are simply absent. That is the
  only `$filter` the stand-in understands: any other (another column or operator, a quoted
  GUID, `and`, parentheses) is 400, as are other query options (`$top`, `$orderby`, ...).
- Service protection (`limit_rate`: 429 with `Retry-After` once exceeded) and injected
  failures apply to every Web API request, reads (filtered ones too) included. Failures can be switched on from
  Python (`fail_next`) or over HTTP (`POST /_standin/failures {"kind": "429", "count": 2,
  "retry_after": 3}`, `DELETE /_standin/failures`).

Gateway (`gateway_url` = `http://127.0.0.1:<gateway_port>`, an origin without a path, so that
an administrator can enter it as a connection's base URL): an API-management front that checks a
subscription key (`add_api_key`; header `gateway_header`, `Ocp-Apim-Subscription-Key` by default)
instead of a token, then forwards `/api/data/v9.2/...` to the Web API as its own application
user (`GATEWAY_CLIENT_ID`). Paging links it returns point at the gateway. A missing or wrong key
is 401 and any other path 404, in APIM's shape (`{"statusCode": 401, "message": "..."}`). It has
no token endpoint and no `/_standin/` endpoints; the Web API's origin, in turn, accepts no key.

Webhooks (`post_webhooks(url, headers, drop_share=...)`): a change made through the Web API
(PATCH, DELETE) or with `update_row` / `delete_row` posts what HLF's asynchronous
post-operation steps post: HttpHeader auth (the given headers), the `x-ms-dynamics-*` headers and
a RemoteExecutionContext with Target (the columns sent), PreImage and PostImage, the caller's
application user (or, from Python, a person) as `InitiatingUserId` and the request's `tag` in
`SharedVariables`; tried once more after 502/503/504. `drop_share` (or `drop_webhooks`, or
`POST /_standin/webhooks {"drop_share": 0.5}`) loses that share of them, evenly;
`GET /_standin/webhooks` counts posted, dropped and failed ones. Seeding (`add_row`,
`load_members`, `put_row`) posts nothing.

Test and demo helpers: `add_contact`, `add_row`, `delete_contact`, `delete_row`, `contact`,
`row`, `rows`, `update_row` (a person's edit in Dynamics: a new version and `modifiedon`, the
webhook shows a person as the initiating user and carries no `tag`), `put_row`, `load_members(n)` (n contacts with a membership each;
100,000 in seconds), `issue_token`.
`served_seconds` is the time spent answering Web API requests (a benchmark's share of it).
`requests` logs every Entra / Web API request as (monotonic arrival time, method, path, status);
`received` keeps the headers and bodies too. `GET /_standin/contacts/<id>` shows a row,
`POST /_standin/contacts` adds one, `PUT /_standin/rows/<set>/<id>
{"columns": {...}, "lookups": {"hlf_contactid": ["contact", "<id>", "name"]}}` creates or changes
a row of any table (what `portal-sync send --sample` does under `make run`).

    standin = DataverseStandIn(port=0).start()
    standin.add_client("tenant", "client-id", "client-secret")
    standin.add_contact("7d3e...", firstname="Kari")
    ...
    standin.stop()
"""

from __future__ import annotations

import argparse
import base64
import bisect
import dataclasses
import json
import math
import queue
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx

API_PREFIX = "/api/data/v9.2/"
DEFAULT_GATEWAY_HEADER = "Ocp-Apim-Subscription-Key"
# The application user the gateway forwards requests as (it holds its own Entra credentials).
GATEWAY_CLIENT_ID = "standin-api-gateway"
TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
ROW_PATH = re.compile(r"^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
SET_PATH = re.compile(r"^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)$")
WHO_AM_I_PATH = re.compile(r"^/api/data/v9\.2/WhoAmI(\(\))?$")
# The tables the stand-in serves: entity set (URL) name -> logical name.
ENTITY_SETS = {
    "contacts": "contact",
    "hlf_memberships": "hlf_membership",
    "hlf_courseenrollments": "hlf_courseenrollment",
}
# Column types the stand-in checks written values against.
STRING, BOOLEAN, INTEGER, DATETIME, GUID, ANY = (
    "Edm.String",
    "Edm.Boolean",
    "Edm.Int32",
    "Edm.DateTimeOffset",
    "Edm.Guid",
    "any",
)
_COMMON_COLUMNS = {
    "statecode": INTEGER,
    "statuscode": INTEGER,
    "createdon": DATETIME,
    "modifiedon": DATETIME,
    "versionnumber": INTEGER,
    "_ownerid_value": GUID,
}
# The columns of each table as the Web API names them (a lookup as `_<column>_value`); rows
# added with other columns extend their table's schema.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "contact": {
        "contactid": GUID,
        "firstname": STRING,
        "lastname": STRING,
        "fullname": STRING,
        "emailaddress1": STRING,
        "mobilephone": STRING,
        "telephone1": STRING,
        "birthdate": DATETIME,
        "hlf_showonwebsite": BOOLEAN,
        **_COMMON_COLUMNS,
    },
    "hlf_membership": {
        "hlf_membershipid": GUID,
        "hlf_name": STRING,
        "_hlf_contactid_value": GUID,
        "hlf_role": INTEGER,
        **_COMMON_COLUMNS,
    },
    "hlf_courseenrollment": {
        "hlf_courseenrollmentid": GUID,
        "hlf_name": STRING,
        "_hlf_contactid_value": GUID,
        "_hlf_courseid_value": GUID,
        **_COMMON_COLUMNS,
    },
}
MAX_PAGE_SIZE = 5000
DELTA_TOKEN_MAX_AGE_SECONDS = 7 * 24 * 3600.0
CODE_VERSION_EXPIRED = "0x80044352"
VERSION_EXPIRED_MESSAGE = (
    "Version stamp associated with the client has expired. Please perform a full sync."
)
# The demo membership roles (inbound/dataverse/mapping.py DEFAULT_FIELD_MAPPING).
ROLE_MEMBER, ROLE_PEER_MENTOR, ROLE_COORDINATOR, ROLE_ADMIN = (
    100000000,
    100000001,
    100000002,
    100000003,
)
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
STANDIN_CONTACT_PATH = re.compile(r"^/_standin/contacts/([^/]+)$")
STANDIN_ROWS_PATH = re.compile(r"^/_standin/rows/([a-z_]+)/([^/]+)$")

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
    method: str | None = None  # only requests of this method fail; None: every request
    hold: threading.Event | None = None  # the answer waits until this is set


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
    schema: dict[str, dict[str, str]] = field(
        default_factory=lambda: {table: dict(cols) for table, cols in TABLE_COLUMNS.items()}
    )
    # Change tracking: every write takes the next version; per table an append-only log of
    # (version, row id) in write order, and each row's (or deleted row's) latest version.
    version: int = 0
    log_versions: dict[str, list[int]] = field(
        default_factory=lambda: {table: [] for table in ENTITY_SETS.values()}
    )
    log_ids: dict[str, list[str]] = field(
        default_factory=lambda: {table: [] for table in ENTITY_SETS.values()}
    )
    latest: dict[str, dict[str, int]] = field(
        default_factory=lambda: {table: {} for table in ENTITY_SETS.values()}
    )
    tracked: set[str] = field(default_factory=lambda: set(ENTITY_SETS.values()))
    webhooks: _WebhookSettings | None = None
    delta_tokens: dict[str, _DeltaToken] = field(default_factory=dict)


@dataclass
class _DeltaToken:
    table: str
    version: int
    issued_at: float
    expired: bool = False


class LoadedMember(NamedTuple):
    """A contact and its membership as `load_members` created them."""

    contact_id: str
    membership_id: str
    firstname: str
    lastname: str
    email: str
    role: int
    statecode: int


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
        gateway_port: int = 0,
        timeout_seconds: float = 15.0,
        token_lifetime_seconds: int = 3599,
        columns: set[str] | None = None,
        gateway_header: str = DEFAULT_GATEWAY_HEADER,
        delta_token_max_age_seconds: float = DELTA_TOKEN_MAX_AGE_SECONDS,
        organization_id: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.gateway_port = gateway_port
        # How long a "timeout" failure keeps the client waiting (longer than its timeout).
        self.timeout_seconds = timeout_seconds
        self.token_lifetime_seconds = token_lifetime_seconds
        # None accepts PATCHes of any contact column; a set rejects others with 400.
        self.columns = set(columns) if columns is not None else None
        self.gateway_header = gateway_header
        self.delta_token_max_age_seconds = delta_token_max_age_seconds
        self.organization_id = _guid(organization_id) or str(uuid.uuid4())
        self.business_unit_id = str(uuid.uuid5(uuid.UUID(self.organization_id), "root-bu"))
        self.verbose = verbose
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # The Web API's server and the gateway's, each served by a thread of its own.
        self._servers: list[tuple[_Server, threading.Thread]] = []
        self._outbox: queue.Queue[_Change | None] = queue.Queue()
        # Time spent answering Web API requests, summed over the server's threads.
        self.served_seconds = 0.0
        self._poster: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DataverseStandIn:
        web_api = _Server((self.host, self.port), _Handler, self, serves_gateway=False)
        try:
            gateway = _Server((self.host, self.gateway_port), _Handler, self, serves_gateway=True)
        except OSError:
            web_api.server_close()
            raise
        self.port = web_api.server_address[1]
        self.gateway_port = gateway.server_address[1]
        self._stopping.clear()
        for server, name in (
            (web_api, "dataverse-standin"),
            (gateway, "dataverse-standin-gateway"),
        ):
            thread = threading.Thread(
                target=server.serve_forever, args=(0.05,), name=name, daemon=True
            )
            thread.start()
            self._servers.append((server, thread))
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes "timeout" answers that are still waiting
        if self._poster is not None:
            self._outbox.put(None)
            self._poster.join(timeout=5)
            self._poster = None
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers = []

    def __enter__(self) -> DataverseStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def gateway_url(self) -> str:
        """The API-management front, on its own origin: a subscription key instead of a
        token."""
        return f"http://{self.host}:{self.gateway_port}"

    # -- configuration ---------------------------------------------------------------------

    def post_webhooks(
        self,
        url: str | None,
        headers: dict[str, str] | None = None,
        *,
        drop_share: float = 0.0,
        run_as_user_id: str | None = None,
    ) -> None:
        """Changes made through the Web API (and `update_row` / `delete_row`) post the webhook
        HLF's registered steps would: an asynchronous post-operation step per table, HttpHeader
        auth (`headers`), a RemoteExecutionContext with Target, PreImage and PostImage, and the
        request's `tag` in SharedVariables. `drop_share` of them (0..1) are lost on the way, as
        webhooks are, for reconciliation to heal. `run_as_user_id`: the step runs as this user
        (its `UserId`), else as the calling user. None switches webhooks off."""
        with self._lock:
            self._state.webhooks = (
                None
                if url is None
                else _WebhookSettings(url, dict(headers or {}), drop_share, run_as_user_id)
            )
            if url is not None and self._poster is None:
                self._poster = threading.Thread(
                    target=self._post_loop, name="dataverse-standin-webhooks", daemon=True
                )
                self._poster.start()

    def drop_webhooks(self, share: float) -> None:
        """From now on this share (0..1) of webhooks is lost."""
        if not 0 <= share <= 1:
            raise ValueError("share must be between 0 and 1")
        with self._lock:
            if self._state.webhooks is not None:
                self._state.webhooks.drop_share = share

    def webhook_stats(self) -> dict[str, Any]:
        """Posted, dropped and failed webhooks so far (no URL or headers: they hold the key)."""
        with self._lock:
            hooks = self._state.webhooks
            if hooks is None:
                return {"enabled": False}
            return {
                "enabled": True,
                "drop_share": hooks.drop_share,
                "posted": hooks.posted,
                "dropped": hooks.dropped,
                "failed": hooks.failed,
            }

    def wait_for_webhooks(self) -> None:
        """Returns once every webhook of the changes so far has been posted (or dropped)."""
        self._outbox.join()

    def add_client(self, tenant: str, client_id: str, secret: str) -> None:
        with self._lock:
            self._state.clients[(tenant, client_id)] = secret

    def issue_token(self, tenant: str, client_id: str, lifetime_seconds: float = 30 * 86400) -> str:
        """A bearer token for a known client without the token endpoint (for a person with
        curl: `.local/run.json`'s `dynamics_sandbox_token`)."""
        with self._lock:
            if (tenant, client_id) not in self._state.clients:
                raise KeyError(f"no client {client_id} in {tenant}")
            token = secrets.token_urlsafe(32)
            self._state.tokens[token] = _Token(
                tenant, client_id, self.url, time.monotonic() + lifetime_seconds
            )
        return token

    def application_user_id(self, client_id: str) -> str:
        """The `systemuserid` of the application user a client id signs in as (what `WhoAmI`
        answers and what webhooks show as `InitiatingUserId` for its changes)."""
        return str(uuid.uuid5(uuid.UUID(self.organization_id), f"application-user:{client_id}"))

    def add_api_key(self, key: str) -> None:
        """A subscription key the gateway front accepts (the Web API itself accepts none)."""
        with self._lock:
            self._state.api_keys.add(key)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (as after a revocation)."""
        with self._lock:
            self._state.tokens.clear()

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far is refused (as after the retention period)."""
        with self._lock:
            for token in self._state.delta_tokens.values():
                token.expired = True

    def set_change_tracking(self, entity_set: str, enabled: bool) -> None:
        table = ENTITY_SETS[entity_set]
        with self._lock:
            if enabled:
                self._state.tracked.add(table)
            else:
                self._state.tracked.discard(table)

    def add_columns(self, *names: str) -> None:
        with self._lock:
            if self.columns is not None:
                self.columns.update(names)

    def add_contact(self, contact_id: str, **columns: Any) -> None:
        key = _guid(contact_id)
        if key is None:
            raise ValueError(f"not a GUID: {contact_id!r}")
        with self._lock:
            row = {"contactid": key, "statecode": 0, "createdon": _now_text()}
            row.update(columns)
            self._write("contact", key, row)
            if self.columns is not None:
                self.columns.update(columns)

    def delete_contact(self, contact_id: str) -> None:
        self.delete_row("contacts", contact_id, post_webhook=False)

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        return self.row("contacts", contact_id)

    def add_row(
        self,
        entity_set: str,
        row_id: str,
        columns: dict[str, Any] | None = None,
        *,
        lookups: dict[str, tuple[str, str, str | None]] | None = None,
    ) -> None:
        """A row of a membership or enrolment table (or a contact), created or replaced.
        `lookups`: column -> (table, id, display name), stored as the Web API shows them
        (`_<column>_value`)."""
        table = ENTITY_SETS[entity_set]
        key = _guid(row_id)
        if key is None:
            raise ValueError(f"not a GUID: {row_id!r}")
        row: dict[str, Any] = {f"{table}id": key, "statecode": 0, "createdon": _now_text()}
        row.update(columns or {})
        for column, (target, target_id, name) in (lookups or {}).items():
            row[f"_{column}_value"] = _guid(target_id)
            row[f"_{column}_value@{LOOKUP_LOGICAL_NAME}"] = target
            if name is not None:
                row[f"_{column}_value@{FORMATTED_VALUE}"] = name
        with self._lock:
            self._write(table, key, row)

    def update_row(
        self, entity_set: str, row_id: str, *, post_webhook: bool = True, **columns: Any
    ) -> None:
        """Changes columns of an existing row, as a person's edit in Dynamics would (a new
        version, and its webhook when `post_webhooks` is on)."""
        table = ENTITY_SETS[entity_set]
        key = _guid(row_id)
        with self._lock:
            stored = self._state.rows[table].get(key or "")
            if key is None or stored is None:
                raise KeyError(f"no {table} {row_id}")
            before = dict(stored)
            self._write(table, key, {**stored, **columns})
            after = dict(self._state.rows[table][key])
        if post_webhook:
            self._emit(_Change("Update", table, key, before, after, columns, HUMAN_USER_ID, None))

    def put_row(
        self,
        entity_set: str,
        row_id: str,
        columns: dict[str, Any],
        *,
        lookups: dict[str, tuple[str, str, str | None]] | None = None,
    ) -> None:
        """Creates the row, or changes the given columns of an existing one."""
        if self.row(entity_set, row_id) is None:
            self.add_row(entity_set, row_id, columns, lookups=lookups)
            return
        changed = dict(columns)
        for column, (target, target_id, name) in (lookups or {}).items():
            changed[f"_{column}_value"] = _guid(target_id)
            changed[f"_{column}_value@{LOOKUP_LOGICAL_NAME}"] = target
            if name is not None:
                changed[f"_{column}_value@{FORMATTED_VALUE}"] = name
        self.update_row(entity_set, row_id, post_webhook=False, **changed)

    def delete_row(self, entity_set: str, row_id: str, *, post_webhook: bool = True) -> None:
        table = ENTITY_SETS[entity_set]
        key = _guid(row_id) or row_id
        with self._lock:
            before = self._state.rows[table].pop(key, None)
            if before is not None:
                self._log_change(table, key)
        if before is not None and post_webhook:
            self._emit(_Change("Delete", table, key, before, None, {}, HUMAN_USER_ID, None))

    def row(self, entity_set: str, row_id: str) -> dict[str, Any] | None:
        key = _guid(row_id)
        with self._lock:
            row = self._state.rows[ENTITY_SETS[entity_set]].get(key) if key else None
            return dict(row) if row is not None else None

    def rows(self, entity_set: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._state.rows[ENTITY_SETS[entity_set]].values()]

    def load_members(
        self, count: int, *, start: int = 0, inactive_every: int = 20
    ) -> list[LoadedMember]:
        """`count` contacts, each with a membership of this environment, written in one go
        (100,000 take a few seconds). Ids and names follow from the index (`start`...), so a
        second call with the same arguments replaces the same rows. Roles: every 10th a peer
        mentor, every 50th a coordinator, every 250th an admin, the rest members; every
        `inactive_every`-th membership is inactive (statecode 1)."""
        now = _now_text()
        members: list[LoadedMember] = []
        for index in range(start, start + count):
            role = (
                ROLE_ADMIN
                if index % 250 == 249
                else ROLE_COORDINATOR
                if index % 50 == 49
                else ROLE_PEER_MENTOR
                if index % 10 == 9
                else ROLE_MEMBER
            )
            members.append(
                LoadedMember(
                    str(uuid.UUID(int=(0xC0 << 120) | index)),
                    str(uuid.UUID(int=(0x3E << 120) | index)),
                    f"Member{index}",
                    f"Nordmann{index}",
                    f"member{index}@example.org",
                    role,
                    1 if inactive_every and index % inactive_every == inactive_every - 1 else 0,
                )
            )
        with self._lock:
            for m in members:
                self._write(
                    "contact",
                    m.contact_id,
                    {
                        "contactid": m.contact_id,
                        "firstname": m.firstname,
                        "lastname": m.lastname,
                        "emailaddress1": m.email,
                        "statecode": 0,
                        "createdon": now,
                    },
                    now,
                )
                self._write(
                    "hlf_membership",
                    m.membership_id,
                    {
                        "hlf_membershipid": m.membership_id,
                        "hlf_role": m.role,
                        "statecode": m.statecode,
                        "statuscode": 2 if m.statecode else 1,
                        "createdon": now,
                        "_hlf_contactid_value": m.contact_id,
                        f"_hlf_contactid_value@{LOOKUP_LOGICAL_NAME}": "contact",
                        f"_hlf_contactid_value@{FORMATTED_VALUE}": f"{m.firstname} {m.lastname}",
                    },
                    now,
                )
        return members

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        retry_after: float | None = None,
        method: str | None = None,
        hold: threading.Event | None = None,
    ) -> None:
        """The next `count` Web API requests fail this way (queued after earlier failures);
        with `method`, only requests of that method (e.g. the PATCHes of a delivery, not the
        WhoAmI that follows a successful one); with `hold`, each is answered only once the
        test sets that event (a request in flight for exactly as long as a test needs)."""
        kind = str(kind)
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; one of {', '.join(FAILURE_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._state.failures.append(_Failure(kind, count, retry_after, method, hold))

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

    # -- storage (callers hold the lock) ---------------------------------------------------

    def _write(self, table: str, key: str, row: dict[str, Any], now: str | None = None) -> None:
        """Stores a row as a new version, as Dataverse does for every write."""
        row["modifiedon"] = now or _now_text()
        row["versionnumber"] = self._log_change(table, key)
        self._state.rows[table][key] = row
        schema = self._state.schema[table]
        for name, value in row.items():
            if "@" not in name and name not in schema:
                schema[name] = _type_of(value)

    def _log_change(self, table: str, key: str) -> int:
        state = self._state
        state.version += 1
        state.log_versions[table].append(state.version)
        state.log_ids[table].append(key)
        state.latest[table][key] = state.version
        return state.version

    # -- webhooks --------------------------------------------------------------------------

    def _emit(self, change: _Change) -> None:
        with self._lock:
            hooks = self._state.webhooks
            if hooks is None:
                return
            # Exactly this share is lost, spread evenly (a test can count on it).
            hooks.drop_credit += hooks.drop_share
            if hooks.drop_credit >= 1:
                hooks.drop_credit -= 1
                hooks.dropped += 1
                return
        self._outbox.put(change)

    def _post_loop(self) -> None:
        with httpx.Client(timeout=60.0) as client:  # Dataverse waits 60 s for an answer
            while (change := self._outbox.get()) is not None:
                try:
                    self._post(client, change)
                finally:
                    self._outbox.task_done()
            self._outbox.task_done()

    def _post(self, client: httpx.Client, change: _Change) -> None:
        with self._lock:
            hooks = self._state.webhooks
            if hooks is None:
                return
            url, headers, run_as = hooks.url, dict(hooks.headers), hooks.run_as_user_id
        body = execution_context(change, self.organization_id, self.business_unit_id, run_as)
        headers |= {
            "Content-Type": "application/json",
            "x-ms-dynamics-organization": f"{self.host}:{self.port}",
            "x-ms-dynamics-entity-name": change.table,
            "x-ms-dynamics-request-name": change.message,
            "x-ms-correlation-request-id": body["CorrelationId"],
        }
        ok = False
        # Dataverse tries once more, and only after 502, 503 or 504.
        for _ in range(2):
            try:
                answer = client.post(url, content=json.dumps(body), headers=headers)
            except httpx.HTTPError:
                break
            ok = answer.is_success
            if answer.status_code not in (502, 503, 504):
                break
        with self._lock:
            if self._state.webhooks is not None:
                if ok:
                    self._state.webhooks.posted += 1
                else:
                    self._state.webhooks.failed += 1

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

    def _authorise(self, request: ReceivedRequest) -> str:
        """The client id of the caller's bearer token; Dataverse accepts nothing else."""
        headers = request.headers
        challenge = {
            "WWW-Authenticate": f'Bearer authorization_uri="{self.url}", resource_id="{self.url}"'
        }
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _dataverse_error(
                401,
                "MissingCrmAuthenticationToken",
                "The request does not carry an Entra bearer token; the Web API accepts no other "
                "credentials.",
                challenge,
            )
        unauthorised = _dataverse_error(401, "", "The user is not authenticated.", challenge)
        with self._lock:
            token = self._state.tokens.get(credentials.strip())
        if token is None or time.monotonic() >= token.expires_at:
            raise unauthorised
        # A token issued for another organisation is not valid here.
        audiences = {self.url, f"http://{headers.get('host', '')}"}
        if token.audience not in audiences:
            raise unauthorised
        return token.client_id

    def _gateway(self, request: ReceivedRequest, path: str) -> _Answer:
        """API management in front of the Web API: a subscription key, then forwarded as the
        gateway's own application user."""
        key = request.headers.get(self.gateway_header.lower())
        with self._lock:
            known = key is not None and any(
                secrets.compare_digest(key.encode(), k.encode()) for k in self._state.api_keys
            )
        if not known:
            missing = key is None
            raise _Answer(
                401,
                {
                    "statusCode": 401,
                    "message": "Access denied due to missing subscription key. Make sure to "
                    "include subscription key when making requests to an API."
                    if missing
                    else "Access denied due to invalid subscription key. Make sure to provide "
                    "a valid key for an active subscription.",
                },
            )
        return self._web_api(request, path, self.gateway_url, GATEWAY_CLIENT_ID)

    def _next_failure(self, method: str) -> _Failure | None:
        with self._lock:
            failures = self._state.failures
            if not failures or failures[0].method not in (None, method):
                return None
            failure = failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                failures.popleft()
            return _Failure(failure.kind, 1, failure.retry_after, failure.method, failure.hold)

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
        while failure.hold is not None and not failure.hold.wait(0.05):
            if self._stopping.is_set():
                break
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

    def _web_api(
        self, request: ReceivedRequest, path: str, base: str, caller: str | None = None
    ) -> _Answer:
        """`base`: the URL the caller reached (links in answers point there)."""
        who_am_i = WHO_AM_I_PATH.match(path)
        match = ROW_PATH.match(path)
        collection = SET_PATH.match(path) if who_am_i is None else None
        found = match or collection
        entity_set = found.group(1) if found is not None else None
        if who_am_i is None and entity_set not in ENTITY_SETS:
            segment = path[len(API_PREFIX) :].split("(")[0].split("/")[0]
            raise _dataverse_error(
                404, CODE_RESOURCE_NOT_FOUND, f"Resource not found for the segment '{segment}'."
            )
        table = ENTITY_SETS.get(entity_set or "", "")
        raw_id = unquote(match.group(2)) if match else ""
        row_id = _guid(raw_id)

        client_id = caller if caller is not None else self._authorise(request)
        failure = self._next_failure(request.method)
        if failure is not None:
            injected = self._injected(failure, table, row_id or raw_id)
            if injected is not None:
                raise injected
        self._throttle(request.time)

        headers = request.headers
        for name in ("odata-maxversion", "odata-version"):
            if headers.get(name) is not None and headers[name].strip() != "4.0":
                raise _dataverse_error(
                    400, CODE_BAD_REQUEST, f"The {name} header value is not supported."
                )
        if who_am_i is not None:
            if request.method != "GET":
                raise _dataverse_error(405, CODE_BAD_REQUEST, "The HTTP method is not allowed.")
            return _Answer(
                200,
                {
                    "@odata.context": f"{base}{API_PREFIX}$metadata"
                    "#Microsoft.Dynamics.CRM.WhoAmIResponse",
                    "BusinessUnitId": self.business_unit_id,
                    "UserId": self.application_user_id(client_id),
                    "OrganizationId": self.organization_id,
                },
            )
        assert entity_set is not None
        if collection is not None:
            if request.method != "GET":
                raise _dataverse_error(405, CODE_BAD_REQUEST, "The HTTP method is not allowed.")
            return self._read_set(request, entity_set, base)
        if row_id is None:
            raise _dataverse_error(400, CODE_BAD_REQUEST, "Bad Request - Error in query syntax.")
        if request.method == "GET":
            return self._get_row(request, entity_set, row_id, base)
        if request.method == "DELETE":
            with self._lock:
                before = self._state.rows[table].pop(row_id, None)
                if before is None:
                    raise _dataverse_error(404, CODE_NOT_FOUND, _not_found(table, row_id))
                self._log_change(table, row_id)
            user = self.application_user_id(client_id)
            tag = dict(parse_qsl(request.query)).get("tag")
            self._emit(_Change("Delete", table, row_id, before, None, {}, user, tag))
            return _Answer(204)
        # Only contacts are written (website visibility); the other tables are read.
        if request.method != "PATCH" or table != "contact":
            raise _dataverse_error(405, "0x80060888", "The HTTP method is not allowed.")
        return self._patch_contact(request, row_id, base, client_id)

    def _selected(self, table: str, select: str | None) -> list[str] | None:
        """The `$select` columns, or None for all; 400 for a column the table does not have."""
        if not select:
            return None
        with self._lock:
            schema = dict(self._state.schema[table])
        names = [column.strip() for column in select.split(",")]
        for name in names:
            # A lookup is selected as `_<column>_value`, never by its own name.
            if name not in schema or f"_{name}_value" in schema:
                raise _dataverse_error(
                    400,
                    CODE_BAD_REQUEST,
                    f"Could not find a property named '{name}' on type "
                    f"'Microsoft.Dynamics.CRM.{table}'.",
                )
        return names

    def _shown(
        self, table: str, row: dict[str, Any], columns: list[str] | None, annotations: str | None
    ) -> dict[str, Any]:
        """A row as the Web API shows it: the selected columns (null when without a value),
        its id and etag, and the lookups' annotations when asked for."""
        values = {key: value for key, value in row.items() if "@" not in key}
        if columns is not None:
            chosen = {f"{table}id": row[f"{table}id"]}
            chosen.update({name: values.get(name) for name in columns})
            values = chosen
        if annotations is not None:
            for key in [k for k in values if _LOOKUP_VALUE.match(k)]:
                for annotation in (LOOKUP_LOGICAL_NAME, FORMATTED_VALUE):
                    wanted = annotations in ("*", "") or annotation in annotations
                    if f"{key}@{annotation}" in row and wanted:
                        values[f"{key}@{annotation}"] = row[f"{key}@{annotation}"]
        return {"@odata.etag": f'W/"{row.get("versionnumber", 1)}"', **values}

    def _get_row(
        self, request: ReceivedRequest, entity_set: str, row_id: str, base: str
    ) -> _Answer:
        table = ENTITY_SETS[entity_set]
        query = dict(parse_qsl(request.query))
        columns = self._selected(table, query.get("$select"))
        with self._lock:
            stored = self._state.rows[table].get(row_id)
            row = dict(stored) if stored is not None else None
        if row is None:
            raise _dataverse_error(404, CODE_NOT_FOUND, _not_found(table, row_id))
        preferences = _preferences(request.headers.get("prefer", ""))
        annotations = preferences.get("odata.include-annotations")
        headers: dict[str, str] = {}
        if annotations is not None:
            headers["Preference-Applied"] = f'odata.include-annotations="{annotations}"'
        return _Answer(
            200,
            {
                "@odata.context": f"{base}{API_PREFIX}$metadata#{entity_set}/$entity",
                **self._shown(table, row, columns, annotations),
            },
            headers,
        )

    def _read_set(self, request: ReceivedRequest, entity_set: str, base: str) -> _Answer:
        """A page of a whole-table read or of a delta read, or the rows a `$filter` names (see
        the module docstring)."""
        table = ENTITY_SETS[entity_set]
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        if "$filter" in query:
            return self._read_filtered(request, entity_set, query, base)
        unsupported = [k for k in query if k.startswith("$") and k not in _SET_OPTIONS]
        if unsupported:
            raise _dataverse_error(
                400,
                CODE_BAD_REQUEST,
                f"The query option '{unsupported[0]}' is not supported by the stand-in.",
            )
        select = query.get("$select")
        columns = self._selected(table, select)
        preferences = _preferences(request.headers.get("prefer", ""))
        annotations = preferences.get("odata.include-annotations")
        page_size = MAX_PAGE_SIZE
        if "odata.maxpagesize" in preferences:
            try:
                page_size = max(1, min(MAX_PAGE_SIZE, int(preferences["odata.maxpagesize"])))
            except ValueError:
                raise _dataverse_error(
                    400, CODE_BAD_REQUEST, "The odata.maxpagesize preference is not a number."
                ) from None
        with self._lock:
            tracked = table in self._state.tracked
        if "$skiptoken" in query:
            cursor = _decode_cursor(query["$skiptoken"], table)
            if "odata.maxpagesize" not in preferences:
                page_size = cursor.page_size
        elif "$deltatoken" in query:
            if not tracked:
                raise _dataverse_error(
                    400,
                    CODE_BAD_REQUEST,
                    f"Change tracking is not enabled for the entity '{table}'.",
                )
            since = self._delta_since(query["$deltatoken"], table)
            with self._lock:
                start = self._state.version
            cursor = _Cursor(table, since, since, start, page_size, True, True)
        else:
            with self._lock:
                start = self._state.version
            track = tracked and "odata.track-changes" in preferences
            cursor = _Cursor(table, 0, 0, start, page_size, track, False)

        with self._lock:
            items, after, more = self._page(cursor, page_size)
            rows = self._state.rows[table]
            shown = [
                self._shown(table, rows[key], columns, annotations)
                if key in rows
                else {
                    "@odata.context": f"{base}{API_PREFIX}$metadata#{entity_set}/$deletedEntity",
                    "id": key,
                    "reason": "deleted",
                }
                for key in items
            ]
        link = f"{base}{API_PREFIX}{entity_set}?" + (
            f"$select={quote(select, safe=',')}&" if select else ""
        )
        context = f"{base}{API_PREFIX}$metadata#{entity_set}"
        if columns is not None:
            context += f"({','.join(columns)})"
        body: dict[str, Any] = {
            "@odata.context": context + ("/$delta" if cursor.delta else ""),
            "value": shown,
        }
        if more:
            following = dataclasses.replace(cursor, after=after, page_size=page_size)
            body["@odata.nextLink"] = f"{link}$skiptoken={_encode_cursor(following)}"
        elif cursor.track:
            token = secrets.token_urlsafe(18)
            with self._lock:
                self._state.delta_tokens[token] = _DeltaToken(table, cursor.start, time.monotonic())
            body["@odata.deltaLink"] = f"{link}$deltatoken={token}"
        applied = [f"odata.maxpagesize={page_size}"] if "odata.maxpagesize" in preferences else []
        if cursor.track and "odata.track-changes" in preferences:
            applied.append("odata.track-changes")
        if annotations is not None:
            applied.append(f'odata.include-annotations="{annotations}"')
        headers = {"Preference-Applied": ",".join(applied)} if applied else {}
        return _Answer(200, body, headers)

    def _read_filtered(
        self, request: ReceivedRequest, entity_set: str, query: dict[str, str], base: str
    ) -> _Answer:
        """The rows whose ids an `or`-chain of `<primary key> eq <guid>` names, in one answer;
        ids without a row are absent."""
        table = ENTITY_SETS[entity_set]
        unsupported = [k for k in query if k.startswith("$") and k not in ("$select", "$filter")]
        if unsupported:
            raise _dataverse_error(
                400,
                CODE_BAD_REQUEST,
                f"The query option '{unsupported[0]}' is not supported by the stand-in "
                "with $filter.",
            )
        ids = _filtered_ids(query["$filter"], f"{table}id")
        if ids is None:
            raise _dataverse_error(
                400,
                CODE_BAD_REQUEST,
                "The $filter is not supported by the stand-in: only "
                f"'{table}id eq <guid> or {table}id eq <guid> ...' is.",
            )
        select = query.get("$select")
        columns = self._selected(table, select)
        annotations = _preferences(request.headers.get("prefer", "")).get(
            "odata.include-annotations"
        )
        with self._lock:
            rows = self._state.rows[table]
            shown = [
                self._shown(table, rows[key], columns, annotations)
                for key in sorted(set(ids))
                if key in rows
            ]
        context = f"{base}{API_PREFIX}$metadata#{entity_set}"
        if columns is not None:
            context += f"({','.join(columns)})"
        headers = (
            {"Preference-Applied": f'odata.include-annotations="{annotations}"'}
            if annotations is not None
            else {}
        )
        return _Answer(200, {"@odata.context": context, "value": shown}, headers)

    def _delta_since(self, token_text: str, table: str) -> int:
        with self._lock:
            token = self._state.delta_tokens.get(token_text)
            if (
                token is None
                or token.table != table
                or token.expired
                or time.monotonic() - token.issued_at > self.delta_token_max_age_seconds
            ):
                raise _dataverse_error(400, CODE_VERSION_EXPIRED, VERSION_EXPIRED_MESSAGE)
            return token.version

    def _page(self, cursor: _Cursor, limit: int) -> tuple[list[str], int, bool]:
        """Up to `limit` row ids after `cursor.after` in version order, each at its latest
        version: rows (and, for a delta read, deleted rows). Callers hold the lock."""
        table = cursor.table
        versions = self._state.log_versions[table]
        ids = self._state.log_ids[table]
        latest = self._state.latest[table]
        rows = self._state.rows[table]
        index = bisect.bisect_right(versions, cursor.after)
        items: list[str] = []
        after = cursor.after
        while index < len(versions):
            version, key = versions[index], ids[index]
            index += 1
            if latest.get(key) != version:
                continue  # an older version of a row written again later
            if key not in rows and (not cursor.include_deleted or version <= cursor.since):
                continue
            if len(items) == limit:
                return items, after, True
            items.append(key)
            after = version
        return items, after, False

    def _patch_contact(
        self, request: ReceivedRequest, contact_id: str, base: str, client_id: str
    ) -> _Answer:
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
            schema = self._state.schema["contact"]
            for name, value in columns.items():
                if name.startswith("@") or (known is not None and name not in known):
                    raise _dataverse_error(
                        400,
                        CODE_BAD_REQUEST,
                        f"Invalid property '{name}' was found in entity "
                        "'Microsoft.Dynamics.CRM.contact'.",
                    )
                expected = schema.get(name, ANY)
                if not _fits(expected, value):
                    raise _dataverse_error(
                        400,
                        CODE_PAYLOAD,
                        "Error identified in Payload provided by the user for Entity "
                        ":'contacts', For more information on this error please follow this "
                        "help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  "
                        "InnerException : Microsoft.OData.ODataException: Cannot convert a "
                        f"primitive value to the expected type '{expected}'. See the inner "
                        "exception for more details.",
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
            # No If-Match: PATCH is an upsert and creates the row.
            before = dict(row) if row is not None else None
            updated = dict(row) if row is not None else {"createdon": _now_text(), "statecode": 0}
            updated.update(columns)
            updated["contactid"] = contact_id
            self._write("contact", contact_id, updated)
            after = dict(updated)
        self._emit(
            _Change(
                "Update" if before is not None else "Create",
                "contact",
                contact_id,
                before,
                after,
                columns,
                self.application_user_id(client_id),
                dict(parse_qsl(request.query)).get("tag"),
            )
        )
        return _Answer(204, headers={"OData-EntityId": f"{base}{API_PREFIX}contacts({contact_id})"})

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
        if path == "/_standin/webhooks":
            if request.method == "POST":
                try:
                    self.drop_webhooks(float(json.loads(request.body or b"{}")["drop_share"]))
                except (ValueError, TypeError, KeyError) as exc:
                    raise _Answer(400, {"error": str(exc)}) from None
            if request.method in ("GET", "POST"):
                return _Answer(200, self.webhook_stats())
        rows_path = STANDIN_ROWS_PATH.match(path)
        if rows_path is not None and request.method == "PUT":
            entity_set, row_id = rows_path.group(1), unquote(rows_path.group(2))
            try:
                spec = json.loads(request.body or b"{}")
                lookups = {
                    column: (str(target), str(target_id), None if name is None else str(name))
                    for column, (target, target_id, name) in dict(spec.get("lookups", {})).items()
                }
                self.put_row(entity_set, row_id, dict(spec.get("columns", {})), lookups=lookups)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise _Answer(400, {"error": str(exc)}) from None
            return _Answer(200, self.row(entity_set, row_id))
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
            return self._web_api(request, path, self.url)
        raise _Answer(404, {"error": {"code": "", "message": "Not found"}})

    def _handle_gateway(self, request: ReceivedRequest) -> _Answer:
        """The gateway's origin: only the Web API behind it (no token endpoint, no
        `/_standin/`), as APIM exposes only the operations of the APIs it publishes."""
        path = urlsplit(request.path).path
        if path.startswith(API_PREFIX):
            return self._gateway(request, path)
        raise _Answer(404, {"statusCode": 404, "message": "Resource not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        standin: DataverseStandIn,
        *,
        serves_gateway: bool,
    ) -> None:
        super().__init__(address, handler)
        self.standin = standin
        # Which origin this server is: the gateway front or the Web API (and Entra ID).
        self.serves_gateway = serves_gateway


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
        gateway = self.server.serves_gateway
        logged = gateway or not request.path.startswith("/_standin/")
        index = standin._log_arrival(request) if logged else -1
        try:
            answer = standin._handle_gateway(request) if gateway else standin._handle(request)
        except _Answer as raised:
            answer = raised
        except Exception:  # a bug in the stand-in: answer like a failing server
            import traceback

            traceback.print_exc()
            answer = _dataverse_error(500, "", "The stand-in failed.")
        if request.path.startswith(API_PREFIX):
            # Dataverse names every answer, so that its support can find the request.
            answer.headers.setdefault("x-ms-service-request-id", str(uuid.uuid4()))
        retry_after = answer.headers.get("Retry-After")
        if logged:
            standin._log_answer(
                index, answer.status, float(retry_after) if retry_after is not None else None
            )
        try:
            self._send(answer)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True
        if logged:
            with standin._lock:
                standin.served_seconds += time.monotonic() - arrived

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
_SET_OPTIONS = ("$select", "$skiptoken", "$deltatoken")


@dataclass(frozen=True)
class _Cursor:
    """Where a paged read is, carried in its `$skiptoken`."""

    table: str
    after: int  # the version of the last row served
    since: int  # delta reads: deleted rows after this version are shown
    start: int  # the version the read began at: the next delta link starts there
    page_size: int
    track: bool
    delta: bool

    @property
    def include_deleted(self) -> bool:
        return self.delta


def _encode_cursor(cursor: _Cursor) -> str:
    fields = [cursor.table, cursor.after, cursor.since, cursor.start, cursor.page_size]
    fields += [int(cursor.track), int(cursor.delta)]
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def _decode_cursor(text: str, table: str) -> _Cursor:
    try:
        fields = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        cursor = _Cursor(
            str(fields[0]),
            int(fields[1]),
            int(fields[2]),
            int(fields[3]),
            int(fields[4]),
            bool(fields[5]),
            bool(fields[6]),
        )
    except (ValueError, TypeError, IndexError, KeyError):
        cursor = None
    if cursor is None or cursor.table != table or cursor.page_size < 1:
        raise _dataverse_error(400, CODE_BAD_REQUEST, "The $skiptoken is not valid.")
    return cursor


_GUID_TEXT = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"


def _filtered_ids(text: str, key: str) -> list[str] | None:
    """The GUIDs of `<key> eq <guid> or <key> eq <guid> ...` (canonical), or None when the
    filter is anything else."""
    term = rf"{re.escape(key)}\s+eq\s+({_GUID_TEXT})"
    terms = re.split(r"\s+or\s+", text.strip())
    ids = []
    for part in terms:
        found = re.fullmatch(term, part)
        if found is None:
            return None
        ids.append(str(uuid.UUID(found.group(1))))
    return ids


def _preferences(header: str) -> dict[str, str]:
    """`Prefer: a, b=1, c="x,y"` -> {"a": "", "b": "1", "c": "x,y"}."""
    found: dict[str, str] = {}
    for part in re.findall(r'(?:[^,"]|"[^"]*")+', header):
        name, _, value = part.strip().partition("=")
        if name:
            found[name.strip().lower()] = value.strip().strip('"')
    return found


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    return STRING if isinstance(value, str) else ANY


def _fits(expected: str, value: Any) -> bool:
    """Whether Dataverse would accept `value` for a column of this type (null always fits)."""
    if value is None or expected == ANY:
        return True
    if expected == BOOLEAN:
        return isinstance(value, bool)
    if expected == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == GUID:
        return isinstance(value, str) and _guid(value) is not None
    if expected == DATETIME:
        return isinstance(value, str) and _parse_time(value) is not None
    return isinstance(value, str)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _not_found(table: str, row_id: str) -> str:
    return f"{table} With Id = {row_id} Does Not Exist"


def _guid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value).strip().strip("{}")))
    except (ValueError, TypeError):
        return None


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- webhooks: what HLF's registered steps post (docs/website-visibility.md) -------------------

_CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
_OPTION_COLUMNS = ("statecode", "statuscode", "hlf_role")
_DATE_COLUMNS = ("modifiedon", "createdon", "birthdate")
# Who a change made from Python (not through the Web API) is shown as: a person in Dynamics.
HUMAN_USER_ID = "6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


@dataclass
class _WebhookSettings:
    url: str
    headers: dict[str, str]
    drop_share: float
    run_as_user_id: str | None
    posted: int = 0
    dropped: int = 0
    failed: int = 0
    drop_credit: float = 0.0


@dataclass(frozen=True)
class _Change:
    message: str  # Create, Update, Delete
    table: str
    row_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    sent: dict[str, Any]  # the columns the request sent (an Update's Target)
    initiating_user_id: str
    tag: str | None


def _wire_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _OPTION_COLUMNS and isinstance(value, int):
        return {"__type": f"OptionSetValue:{_CONTRACTS}", "Value": value}
    if name in _DATE_COLUMNS and isinstance(value, str):
        moment = _parse_time(value)
        if moment is not None:
            return f"/Date({int(moment.timestamp() * 1000)})/"
    return value


def _entity(table: str, row_id: str, row: dict[str, Any], names: list[str] | None = None) -> Any:
    """A row as the plug-in pipeline serialises an Entity (lookups as EntityReferences)."""
    attributes: list[dict[str, Any]] = []
    for name, value in row.items():
        if "@" in name or name == "versionnumber":
            continue
        lookup = _LOOKUP_VALUE.match(name)
        column = name[1:-6] if lookup else name
        if names is not None and column not in names and name not in names:
            continue
        if lookup:
            wire = (
                None
                if value is None
                else {
                    "__type": f"EntityReference:{_CONTRACTS}",
                    "Id": value,
                    "KeyAttributes": [],
                    "LogicalName": row.get(f"{name}@{LOOKUP_LOGICAL_NAME}"),
                    "Name": row.get(f"{name}@{FORMATTED_VALUE}"),
                    "RowVersion": None,
                }
            )
            attributes.append({"key": column, "value": wire})
        else:
            attributes.append({"key": name, "value": _wire_value(name, value)})
    return {
        "__type": f"Entity:{_CONTRACTS}",
        "Attributes": attributes,
        "EntityState": None,
        "FormattedValues": [],
        "Id": row_id,
        "KeyAttributes": [],
        "LogicalName": table,
        "RelatedEntities": [],
        "RowVersion": str(row.get("versionnumber")) if row.get("versionnumber") else None,
    }


def execution_context(
    change: _Change, organization_id: str, business_unit_id: str, run_as: str | None
) -> dict[str, Any]:
    """The RemoteExecutionContext an asynchronous post-operation step (with a pre- and a
    post-image) posts for a change."""
    now_ms = int(time.time() * 1000)
    if change.message == "Delete":
        target: Any = {
            "__type": f"EntityReference:{_CONTRACTS}",
            "Id": change.row_id,
            "KeyAttributes": [],
            "LogicalName": change.table,
            "Name": None,
            "RowVersion": None,
        }
    elif change.message == "Create":
        assert change.after is not None
        target = _entity(change.table, change.row_id, change.after)
    else:
        assert change.after is not None
        sent = [*change.sent, f"{change.table}id", "modifiedon"]
        target = _entity(change.table, change.row_id, change.after, sent)
    pre = (
        [{"key": "PreImage", "value": _entity(change.table, change.row_id, change.before)}]
        if change.before is not None and change.message != "Create"
        else []
    )
    post = (
        [{"key": "PostImage", "value": _entity(change.table, change.row_id, change.after)}]
        if change.after is not None
        else []
    )
    output = [{"key": "id", "value": change.row_id}] if change.message == "Create" else []
    return {
        "BusinessUnitId": business_unit_id,
        "CorrelationId": str(uuid.uuid4()),
        "Depth": 1,
        "InitiatingUserId": change.initiating_user_id,
        "InputParameters": [{"key": "Target", "value": target}],
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": change.message,
        "Mode": 1,
        "OperationCreatedOn": f"/Date({now_ms})/",
        "OperationId": str(uuid.uuid4()),
        "OrganizationId": organization_id,
        "OrganizationName": "hlfstandin",
        "OutputParameters": output,
        "OwningExtension": {
            "Id": str(uuid.uuid5(uuid.UUID(organization_id), f"step:{change.table}")),
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": None,
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": post,
        "PreEntityImages": pre,
        "PrimaryEntityId": change.row_id,
        "PrimaryEntityName": change.table,
        "RequestId": None,
        "SecondaryEntityName": "none",
        "SharedVariables": [{"key": "tag", "value": change.tag}] if change.tag else [],
        "Stage": 40,
        "UserId": run_as or change.initiating_user_id,
    }


def main() -> None:
    """Serves a stand-in on its own: `python -m portal_sync_dev.local.dataverse_standin`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gateway-port", type=int, default=0)
    parser.add_argument("--tenant", default="00000000-0000-0000-0000-000000000001")
    parser.add_argument("--client-id", default="portal-sync-local")
    parser.add_argument("--client-secret", default="local-secret")
    args = parser.parse_args()
    standin = DataverseStandIn(port=args.port, gateway_port=args.gateway_port, verbose=True).start()
    standin.add_client(args.tenant, args.client_id, args.client_secret)
    print(
        json.dumps(
            {
                "url": standin.url,
                "gateway_url": standin.gateway_url,
                "tenant": args.tenant,
                "client_id": args.client_id,
            }
        )
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
