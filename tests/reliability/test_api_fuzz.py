"""Hostile requests to the JWT APIs (admin-api, website-sync) over real HTTP on loopback.

docs/security.md, "Authentication first, and never a 500": authentication comes first, so without a valid JWT every request is a 401
whatever its body, content type or size (CORS preflights and the public openapi.json aside); and
no input is ever answered 500 (a 500 pages on-call).

Hypothesis builds requests to every route of both APIs (both website-sync prefixes) and to
unknown paths under them: any method, content types right and wrong, bodies of random bytes,
text in several encodings (invalid UTF-8 included), base64 text, JSON of every kind and of the
routes' own shapes, nesting up to 5,000 deep, numbers of thousands of digits, sizes up to ~1 MB,
random query strings and headers. Anonymous requests carry no token or a bad one: junk, expired,
another project's secret, `alg: none`, the wrong audience, a junk signature naming a real JWKS key
with another algorithm (the system's functions get a JWKS for these tests). Authenticated ones
carry a valid token of the demo organisation's administrator or of the platform administrator.

The fixed cases of the issue (token-less `text/plain`, `application/xml`, 1,200-deep and
schema-failing bodies; the same bodies authenticated; RS256 on an ES256 key; a JWKS that is down;
the CORS preflight) are pinned one by one first.

The answers the authenticated APIs give to what they cannot read (portal_sync.entrypoints.http.responses):
415 for a body that is not JSON by its content type, 422 with `errors` for a body that is
unreadable JSON (malformed, not UTF-8, nested deeper than 32 levels, numbers out of range) or
fails the schema.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import jwt
import pytest
from conftest import Database, eventually
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from portal_sync.entrypoints.http.responses import SUPABASE_CORS_HEADERS
from portal_sync_dev.local.seed import DEMO_ADMIN_USER_ID, DEMO_ORG_ADMIN_USER_ID
from support import jwks_document, jwks_url, serve_on_loopback

ADMIN = "/functions/v1/admin-api"
WEBSITE = ("/api/v1/website-sync", "/functions/v1/website-sync")
OPENAPI = f"{ADMIN}/openapi.json"
MISSING = {"code": 401, "message": "Missing authorization header"}
INVALID = {"code": 401, "message": "Invalid JWT"}
UNAVAILABLE_MESSAGES = {
    "The database is unavailable; try again shortly",
    "Tokens cannot be verified right now; try again shortly",
}
# docs/security.md, "Authentication first, and never a 500": what supabase-js may send, which CORS must allow.
CONTRACT_CORS_HEADERS = {
    "authorization",
    "x-client-info",
    "apikey",
    "content-type",
    "x-retry-count",
    "traceparent",
    "tracestate",
    "baggage",
}

# (method, path under the prefix, what its body is); {org}, {event}, {mentor} are filled in.
ADMIN_ROUTES = [
    ("GET", "/orgs/{org}/integration", None),
    ("PUT", "/orgs/{org}/integration", "integration"),
    ("POST", "/orgs/{org}/integration/webhook-secret", "rotation"),
    ("POST", "/orgs/{org}/integration/webhook-secret/test", None),
    ("GET", "/orgs/{org}/sync/status", None),
    ("GET", "/orgs/{org}/sync/events", None),
    ("POST", "/orgs/{org}/sync/events/{event}/reprocess", None),
    ("GET", "/orgs/{org}/webhook-health", None),
    ("POST", "/orgs", "organization"),
    ("GET", "/orgs/{org}/features", None),
    ("GET", "/orgs/{org}/members", None),
    ("GET", "/orgs/{org}/members/{mentor}", None),
    ("GET", "/orgs/{org}/audit-log", None),
    ("GET", "/me", None),
    ("GET", "/orgs", None),
    ("GET", "/onboarding-template", None),
]
WEBSITE_ROUTES = [
    ("GET", "/{mentor}/status", None),
    ("POST", "/{mentor}/sync-visibility", None),
    ("POST", "/{mentor}/hide", None),
    ("POST", "/{mentor}/restore", None),
    ("POST", "/{mentor}/pause", None),
    ("POST", "/{mentor}/resume", None),
    ("PUT", "/{mentor}/certificate", "certificate"),
    ("POST", "/{mentor}/retry", None),
]
ROUTES = [(ADMIN, *route) for route in ADMIN_ROUTES] + [
    (prefix, *route) for prefix in WEBSITE for route in WEBSITE_ROUTES
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
LAMBDA_RECURSION_LIMIT = 1000  # CPython's default; the Lambda runtime keeps it

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- the system under test, with a JWKS -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    org_id: uuid.UUID
    mentor_id: uuid.UUID
    event_id: uuid.UUID
    jwt_secret: str
    admin_tokens: tuple[str, ...]  # valid: the demo organisation's admin, the platform admin


def _use_jwks(url: str | None) -> None:
    """Points the functions (in this process, behind the loopback server) at a JWKS."""
    import importlib

    from portal_sync import bootstrap

    if url is None:
        os.environ.pop("SUPABASE_JWKS_URL", None)
    else:
        os.environ["SUPABASE_JWKS_URL"] = url
    bootstrap.reset()
    for name in ("admin_api", "website_sync"):
        importlib.import_module(f"functions.{name}.app").verifier.cache_clear()


@pytest.fixture
def target(system: Any, db: Database) -> Iterator[Target]:
    """The demo organisation, with an ES256 and an RS256 key in the project's JWKS."""
    jwks = serve_on_loopback(jwks_document({"ec-1": EC_KEY, "rsa-1": RSA_KEY}))
    _use_jwks(jwks_url(jwks))
    with db.connect() as conn:
        event = conn.execute(
            "insert into portal_sync_events (organization_id, event_id, event_type, status,"
            " message, received_at) values (%s, 'msg_fuzz', 'membership.created', 'error',"
            " 'The portal event is invalid', now()) returning id",
            (system.seed.org_id,),
        ).fetchone()
    assert system.seed.mentor_id is not None
    yield Target(
        system.base_url,
        system.seed.org_id,
        system.seed.mentor_id,
        event["id"],
        system.jwt_secret,
        (system.seed.org_admin_token, system.seed.admin_token),
    )
    _use_jwks(None)
    jwks.shutdown()


def hs256(target: Target, user: uuid.UUID, **overrides: Any) -> str:
    claims = {"sub": str(user), "aud": "authenticated", "exp": int(time.time()) + 600}
    claims.update(overrides)
    secret = claims.pop("_secret", target.jwt_secret)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, "HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def junk_signed(header: dict[str, Any] | bytes, user: uuid.UUID = DEMO_ORG_ADMIN_USER_ID) -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    claims = {"sub": str(user), "aud": "authenticated", "exp": int(time.time()) + 600}
    return f"{_b64(raw)}.{_b64(json.dumps(claims).encode())}.{_b64(b'junk' * 8)}"


def bad_tokens(target: Target) -> list[str]:
    """Tokens that must all be `Invalid JWT`, several of them for the rightful users."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"sub": str(DEMO_ORG_ADMIN_USER_ID), "aud": "authenticated", "exp": now + 600}
    tokens = []
    for user in (DEMO_ORG_ADMIN_USER_ID, DEMO_ADMIN_USER_ID):
        tokens += [
            hs256(target, user, exp=now - 60),
            hs256(target, user, _secret="another-projects-secret-long-enough-for-hs256!"),
            hs256(target, user, aud="anon"),
            hs256(target, user, exp=None),
            jwt.encode({**claims, "sub": str(user)}, None, "none"),
            hs256(target, user) + "x",  # the signature no longer matches
        ]
    return [
        *tokens,
        hs256(target, DEMO_ORG_ADMIN_USER_ID, sub="not-a-user-id"),
        junk_signed({"alg": "RS256", "typ": "JWT", "kid": "ec-1"}),
        junk_signed({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"}),
        junk_signed({"alg": "ES256", "kid": ["ec-1"]}),
        junk_signed(b'{"alg": "ES256", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
        junk_signed({"alg": "HS512"}),
        jwt.encode(claims, RSA_KEY, "RS256", headers={"kid": "ec-1"}),
        jwt.encode(claims, stranger, "ES256", headers={"kid": "ec-1"}),
        jwt.encode(claims, EC_KEY, "ES256", headers={"kid": "not-in-the-jwks"}),
        "not-a-jwt",
        "a.b.c",
    ]


# -- strategies --------------------------------------------------------------------------------

sendable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60)
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
odd_text = st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff", "é", "💥", " ", "", "%00"])
# What a URL can carry (percent-encoded UTF-8): no lone surrogates.
odd_url_text = st.sampled_from(
    ["\x00", "a\x00b", "é", "💥", " ", "", "%00", "..%2F", "openapi.json"]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | any_text
    | odd_text
    | st.integers(-(2**300), 2**300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text | odd_text, children, max_size=4)
    ),
    max_leaves=12,
)
# The routes' own fields, so that some bodies get past the schema into the services.
SHAPES = {
    "integration": [
        "enabled",
        "source_id",
        "signature_mode",
        "header_name",
        "dataverse_organization_id",
        "application_user_ids",
        "dynamics",
        "website_visibility_column",
        "field_mapping",
        "feature_ownership",
        "deep_links",
    ],
    "rotation": ["grace_period_hours"],
    "organization": ["name", "source_id", "dataverse_organization_id"],
    "certificate": ["certified_until"],
}
field_values = st.one_of(
    json_values,
    st.sampled_from(
        [
            True,
            "2030-01-01",
            "0001-01-01",
            "9999-12-31",
            "demo-portal",
            "standard-webhooks",
            "header-key",
            str(uuid.uuid4()),
            {"tables": {"contact": {"kind": "member"}}},
            {"base_url": "https://169.254.169.254", "auth_type": "api_key", "api_key": "k"},
            {"app": "portal"},
            {"events": "https://example.org/{contact_id}"},
            10**4000,
            -1,
            1e308,
        ]
    ),
)


def shaped(kind: str) -> st.SearchStrategy[Any]:
    names = st.sampled_from(SHAPES[kind]) | any_text
    return st.dictionaries(names, field_values, max_size=5)


def encodings(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.tuples(values, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"])).map(
        lambda pair: json.dumps(pair[0]).encode(pair[1])
    )


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


depths = st.integers(1, 40) | st.integers(800, 5000)
# JSON that breaks parsers and recursive code: nesting (also inside a field of the routes'
# shapes), numbers of thousands of digits or out of float range, NaN.
hostile_json = st.one_of(
    st.tuples(depths, st.sampled_from(["array", "object"])).map(lambda pair: nested(*pair)),
    st.tuples(st.sampled_from([f for fields in SHAPES.values() for f in fields]), depths).map(
        lambda pair: b'{"%s": ' % pair[0].encode() + nested(pair[1], "object") + b"}"
    ),
    st.integers(1, 10000).map(lambda n: b'{"enabled": ' + b"9" * n + b"}"),
    st.integers(1, 10000).map(lambda n: b'{"grace_period_hours": 0.' + b"1" * n + b"e99999}"),
    st.sampled_from([b"NaN", b"-Infinity", b'{"grace_period_hours": 1e999}', b"[1e-99999]"]),
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.text(st.characters(codec="latin-1"), max_size=200).map(lambda t: t.encode("latin-1")),
    encodings(json_values),
    st.sampled_from(sorted(SHAPES)).flatmap(shaped).map(lambda v: json.dumps(v).encode()),
    encodings(st.sampled_from(sorted(SHAPES)).flatmap(shaped)),
    # base64 text of JSON: what a confused client sends when it forgets to decode.
    encodings(json_values).map(base64.b64encode),
    hostile_json,
    st.just(b"\xff\xfe\xfd"),
    st.integers(64 * 1024, 1024 * 1024 - 16).map(lambda n: b'{"name": "' + b"x" * n + b'"}'),
)
content_types = st.one_of(
    st.none(),
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=utf-16",
            "Application/JSON",
            "text/plain",
            "text/plain; charset=utf-8",
            "application/xml",
            "text/xml",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/octet-stream",
            "application/merge-patch+json",
            "",
        ]
    ),
    sendable,
)
RESERVED_HEADERS = {
    "authorization",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
}
extra_headers = st.dictionaries(
    st.one_of(
        st.sampled_from(
            ["x-client-info", "apikey", "x-retry-count", "traceparent", "cookie", "origin"]
        ),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    )
    .map(str.lower)
    .filter(lambda name: name not in RESERVED_HEADERS and _token_chars(name)),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip),
    max_size=5,
)
queries = st.dictionaries(
    st.sampled_from(["limit", "cursor", "status", "type", "organization_id"]) | any_text,
    st.one_of(any_text, odd_url_text, st.integers().map(str), st.uuids().map(str)),
    max_size=4,
)


def _token_chars(name: str) -> bool:
    return all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)


segment = (
    st.one_of(st.uuids().map(str), any_text, odd_url_text)
    .map(lambda s: quote(s, safe=""))
    .filter(lambda s: s not in (".", ".."))
)


@dataclass(frozen=True)
class Fuzzed:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: bytes
    headers: dict[str, str]
    authorization: tuple[str, ...]  # each an Authorization header sent (none: no header)

    def __repr__(self) -> str:  # readable with 1 MB bodies and 3,000-deep tokens
        auth = [a[:80] + ("..." if len(a) > 80 else "") for a in self.authorization]
        return (
            f"Fuzzed({self.method} {self.path} query={self.query!r} "
            f"content_type={self.content_type!r} headers={self.headers!r} authorization={auth!r} "
            f"body={self.body[:120]!r}{'...' if len(self.body) > 120 else ''} "
            f"({len(self.body)} bytes))"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' reports use it
        printer.text(repr(self))


@st.composite
def paths(draw: st.DrawFn, target: Target) -> tuple[str, str, str | None]:
    """(path, method, body kind): a route of either API with its own ids, random ones or junk
    (the kind of body it takes, if any and called with its own method); now and then a path
    no route has (authentication still comes first there)."""
    if draw(st.integers(0, 9)) == 0:
        prefix = draw(st.sampled_from([ADMIN, *WEBSITE]))
        rest = "/".join(draw(st.lists(segment, max_size=4)))
        path = f"{prefix}/{rest}" if rest else prefix
        return (path if path != OPENAPI else ADMIN), draw(st.sampled_from(METHODS)), None
    # The routes that take a body are a fifth of all: they get half of the requests.
    takes_body = [route for route in ROUTES if route[3]]
    prefix, method, template, kind = draw(st.sampled_from(takes_body) | st.sampled_from(ROUTES))

    def some(known: uuid.UUID) -> st.SearchStrategy[str]:  # mostly the real one
        return st.one_of(st.just(str(known)), st.just(str(known)), st.uuids().map(str), segment)

    ids = {
        "org": draw(some(target.org_id)),
        "event": draw(some(target.event_id)),
        "mentor": draw(some(target.mentor_id)),
    }
    if draw(st.integers(0, 4)) == 0:
        method, kind = draw(st.sampled_from(METHODS)), None
    return prefix + template.format(**ids), method, kind


@st.composite
def requests(draw: st.DrawFn, target: Target, tokens: st.SearchStrategy[tuple[str, ...]]) -> Any:
    path, method, kind = draw(paths(target))
    content_type, body = content_types, bodies
    if kind is not None:  # mostly what gets past the content type check: JSON, hostile or not
        content_type = st.sampled_from([None, "application/json"]) | content_types
        body = st.one_of(hostile_json, shaped(kind).map(lambda v: json.dumps(v).encode()), bodies)
    return Fuzzed(
        method=method,
        path=path,
        query=draw(queries),
        content_type=draw(content_type),
        body=draw(body),
        headers=draw(extra_headers),
        authorization=draw(tokens),
    )


def anonymous(target: Target) -> st.SearchStrategy[tuple[str, ...]]:
    """Authorization headers without a valid token: none, bad tokens under several schemes,
    now and then two headers. Half the junk-signed tokens name a JWKS key and an algorithm of
    the JWKS, so that a key of one algorithm named with the other comes up in every run."""
    jwks_alg = st.sampled_from(["RS256", "ES256"])
    other_alg = st.sampled_from(["HS256", "HS512", "none", "EdDSA", "", None, ["ES256"]])
    jwks_kid = st.sampled_from(["ec-1", "rsa-1"])
    other_kid = st.sampled_from(["not-in-the-jwks", "", None, [], {}, "ec-1" * 1000])
    junk = st.builds(
        lambda alg, kid: junk_signed({"alg": alg, "typ": "JWT", "kid": kid}),
        jwks_alg | other_alg,
        jwks_kid | other_kid,
    )
    token = st.one_of(st.sampled_from(bad_tokens(target)), junk, sendable)
    schemes = st.sampled_from(["bearer ", "BEARER ", "Basic ", "Token ", ""])
    header = st.one_of(
        st.tuples(st.just("Bearer "), token).map("".join),
        st.tuples(schemes, token).map("".join),
        st.sampled_from(["", "Bearer", "Basic dXNlcjpwYXNz"]),
    )
    return st.one_of(
        st.just(()),
        header.map(lambda value: (value,)),
        st.lists(header, min_size=2, max_size=2).map(tuple),
    )


@contextmanager
def lambdas_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit (1,000), as on Lambda, while a request is served.

    Hypothesis raises the limit (to about 2,000) while it runs a test, for the whole process,
    the local server's threads included: without this a body nested 1,500 deep would be
    parsed here and break the functions on AWS.
    """
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(LAMBDA_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(raised)


def send(client: httpx.Client, target: Target, request: Fuzzed) -> httpx.Response:
    headers: list[tuple[str, str]] = list(request.headers.items())
    headers += [("authorization", value) for value in request.authorization]
    if request.content_type is not None:
        headers.append(("content-type", request.content_type))
    with lambdas_recursion_limit():
        return client.request(
            request.method,
            target.base_url + request.path,
            params=request.query,
            content=request.body,
            headers=headers,
        )


@dataclass
class Tally:
    """What was sent and answered, printed at the end (a fuzzer that never sends a big body or
    never gets past the schema proves little)."""

    answers: dict[int, int] = field(default_factory=dict)
    largest: int = 0
    over_64_kib: int = 0
    nested: int = 0  # roughly: bodies with more than 32 brackets

    def count(self, request: Fuzzed, status: int) -> None:
        self.answers[status] = self.answers.get(status, 0) + 1
        self.largest = max(self.largest, len(request.body))
        self.over_64_kib += len(request.body) > 64 * 1024
        self.nested += request.body.count(b"[") + request.body.count(b"{") > 32

    def __str__(self) -> str:
        return (
            f"answers {dict(sorted(self.answers.items()))}, largest body {self.largest} bytes, "
            f"{self.over_64_kib} bodies over 64 KiB, {self.nested} deeply nested"
        )


# -- the fixed cases ---------------------------------------------------------------------------

DEEP = b"[" * 1200 + b"]" * 1200
HOSTILE_BODIES = [
    pytest.param("text/plain", b"enabled=true", id="text-plain"),
    pytest.param("application/xml", b"<integration enabled='true'/>", id="xml"),
    pytest.param("application/json", DEEP, id="json-1200-deep"),
    pytest.param("application/json", b'{"enabled": "perhaps"}', id="json-failing-the-schema"),
    pytest.param("application/json", b'{"enabled": ' + b"9" * 5000 + b"}", id="json-5000-digits"),
    pytest.param("application/json", b'{"enabled": "\xff"}', id="json-not-utf8"),
]
BODY_ROUTES = [
    pytest.param(ADMIN, "PUT", "/orgs/{org}/integration", id="admin-put-integration"),
    pytest.param(ADMIN, "POST", "/orgs", id="admin-post-orgs"),
    pytest.param(WEBSITE[0], "PUT", "/{mentor}/certificate", id="website-put-certificate"),
]


def _url(target: Target, prefix: str, template: str) -> str:
    ids = {"org": target.org_id, "mentor": target.mentor_id, "event": target.event_id}
    return target.base_url + prefix + template.format(**ids)


@pytest.mark.parametrize(("prefix", "method", "template"), BODY_ROUTES)
@pytest.mark.parametrize(("content_type", "body"), HOSTILE_BODIES)
def test_without_a_valid_token_any_body_is_a_401(
    target: Target, prefix: str, method: str, template: str, content_type: str, body: bytes
) -> None:
    """Request validation used to run first: 500 for the first three, 422 for the fourth."""
    url = _url(target, prefix, template)
    headers = {"content-type": content_type}

    missing = httpx.request(method, url, content=body, headers=headers, timeout=15)
    assert (missing.status_code, missing.json()) == (401, MISSING)

    expired = hs256(target, DEMO_ORG_ADMIN_USER_ID, exp=int(time.time()) - 60)
    invalid = httpx.request(
        method, url, content=body, headers={**headers, "authorization": f"Bearer {expired}"}
    )
    assert (invalid.status_code, invalid.json()) == (401, INVALID)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("text/plain", b"enabled=true", 415, "Content-Type must be application/json"),
        ("application/xml", b"<integration/>", 415, "Content-Type must be application/json"),
        ("application/x-www-form-urlencoded", b"enabled=true", 415, None),
        ("multipart/form-data; boundary=x", b"--x--", 415, None),
        ("multipart/form-data", b"", 415, None),  # no body: Powertools' parser would fail
        ("application/json", DEEP, 422, "is not valid JSON (nested deeper than 32 levels)"),
        ("application/json", b"[" * 900 + b"]" * 900, 422, None),
        ("application/json", b'{"a":' * 900 + b"1" + b"}" * 900, 422, None),
        ("application/json", b'{"enabled": ' + b"9" * 5000 + b"}", 422, None),
        ("application/json", b'{"enabled": tru', 422, None),
        ("application/json", b"NaN", 422, None),  # JSON scalars: not objects, still 422
        ("application/json", b"1", 422, None),
        ("application/json", b'{"enabled": "\xff"}', 422, "is not UTF-8 JSON"),
    ],
)
def test_an_authenticated_body_that_cannot_be_read_is_a_4xx(
    target: Target, content_type: str, body: bytes, status: int, message: str | None
) -> None:
    for prefix, method, template in (
        (ADMIN, "PUT", "/orgs/{org}/integration"),
        (WEBSITE[1], "PUT", "/{mentor}/certificate"),
    ):
        response = httpx.request(
            method,
            _url(target, prefix, template),
            content=body,
            headers={
                "content-type": content_type,
                "authorization": f"Bearer {target.admin_tokens[0]}",
            },
            timeout=15,
        )
        answer = response.json()
        assert response.status_code == status, answer
        assert answer["code"] == status
        assert answer["errors"][0]["path"] == "body"
        if message is not None:
            assert answer["errors"][0]["message"] == message


def test_an_authenticated_body_failing_the_schema_still_gets_its_field_errors(
    target: Target,
) -> None:
    response = httpx.put(
        _url(target, ADMIN, "/orgs/{org}/integration"),
        json={"enabled": "perhaps", "source_id": "x"},
        headers={"authorization": f"Bearer {target.admin_tokens[0]}"},
    )

    assert response.status_code == 422
    assert response.json()["message"] == "The request is invalid"
    assert {e["path"] for e in response.json()["errors"]} == {"enabled", "source_id"}


def test_a_junk_token_naming_a_jwks_key_of_another_algorithm_is_invalid_jwt(
    target: Target,
) -> None:
    """`alg: RS256` on the JWKS's ES256 key used to reach the RSA code with an EC key: 500."""
    for token in (
        junk_signed({"alg": "RS256", "typ": "JWT", "kid": "ec-1"}),
        junk_signed({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"}),
    ):
        for prefix, method, template in (
            (ADMIN, "GET", "/orgs/{org}/integration"),
            (WEBSITE[0], "GET", "/{mentor}/status"),
        ):
            response = httpx.request(
                method,
                _url(target, prefix, template),
                headers={"authorization": f"Bearer {token}"},
                timeout=15,
            )
            assert (response.status_code, response.json()) == (401, INVALID)
    # The JWKS's keys do verify, with their own algorithms.
    claims = {"sub": str(DEMO_ORG_ADMIN_USER_ID), "aud": "authenticated", "exp": 2**40}
    for key, algorithm, kid in ((EC_KEY, "ES256", "ec-1"), (RSA_KEY, "RS256", "rsa-1")):
        token = jwt.encode(claims, key, algorithm, headers={"kid": kid})
        response = httpx.get(
            _url(target, ADMIN, "/orgs/{org}/integration"),
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text


def test_a_jwks_that_is_down_is_a_503_not_a_500_nor_a_401(target: Target) -> None:
    """Not the caller's fault: a 401 would sign a valid user out; the client should retry."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    _use_jwks(f"http://127.0.0.1:{closed_port}/auth/v1/.well-known/jwks.json")
    claims = {"sub": str(DEMO_ORG_ADMIN_USER_ID), "aud": "authenticated", "exp": 2**40}
    token = jwt.encode(claims, EC_KEY, "ES256", headers={"kid": "ec-1"})

    response = httpx.get(
        _url(target, ADMIN, "/orgs/{org}/integration"),
        headers={"authorization": f"Bearer {token}"},
    )

    assert response.status_code == 503
    assert response.json()["message"] in UNAVAILABLE_MESSAGES
    # HS256 tokens need no JWKS: they still work meanwhile.
    ok = httpx.get(
        _url(target, ADMIN, "/orgs/{org}/integration"),
        headers={"authorization": f"Bearer {target.admin_tokens[0]}"},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("prefix", [ADMIN, *WEBSITE])
def test_the_preflight_allows_every_header_supabase_js_may_send(
    target: Target, prefix: str
) -> None:
    template = "/orgs/{org}/integration" if prefix == ADMIN else "/{mentor}/certificate"
    response = httpx.options(
        _url(target, prefix, template),
        headers={
            "origin": "https://app.example.org",
            "access-control-request-method": "PUT",
            "access-control-request-headers": ",".join(sorted(CONTRACT_CORS_HEADERS)),
        },
    )

    assert response.status_code == 204
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert allowed >= CONTRACT_CORS_HEADERS
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PUT" in response.headers["access-control-allow-methods"]


def test_api_gateway_answers_preflights_with_the_same_headers() -> None:
    """On AWS the HTTP API's CorsConfiguration answers preflights, not the functions."""
    from infrastructure.test_template import RESOURCES

    configured = RESOURCES["HttpApi"]["Properties"]["CorsConfiguration"]["AllowHeaders"]
    assert set(configured) == set(SUPABASE_CORS_HEADERS) >= CONTRACT_CORS_HEADERS


# -- the fuzzers -------------------------------------------------------------------------------


def unchanged(db: Database) -> dict[str, Any]:
    return {
        "audit": db.rows("select id from audit_logs order by id"),
        "integration": db.rows("select * from integration_configs order by organization_id"),
        "organizations": db.rows("select id from organizations order by id"),
        "mentor": db.rows("select * from peer_mentor_status"),
        "events": db.rows("select id, status, attempts from portal_sync_events order by id"),
    }


# Both fuzzers: 200 requests each (about 12 s), large bodies on purpose.
FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def test_anonymous_requests_to_every_route_only_ever_get_401(target: Target, db: Database) -> None:
    before = unchanged(db)
    tally = Tally()
    expired = hs256(target, DEMO_ORG_ADMIN_USER_ID, exp=int(time.time()) - 60)

    with httpx.Client(timeout=30) as client:

        @FUZZ_SETTINGS
        @given(request=requests(target, anonymous(target)))
        @example(
            request=Fuzzed(
                "PUT",
                f"{ADMIN}/orgs/{target.org_id}/integration",
                {},
                "text/plain",
                b"x",
                {},
                (),
            )
        )
        @example(
            request=Fuzzed(
                "GET",
                f"{ADMIN}/orgs/{target.org_id}/integration",
                {},
                None,
                b"",
                {},
                ("Bearer " + junk_signed({"alg": "RS256", "typ": "JWT", "kid": "ec-1"}),),
            )
        )
        @example(
            request=Fuzzed(
                "PUT",
                f"{WEBSITE[1]}/{target.mentor_id}/certificate",
                {},
                "application/json",
                DEEP,
                {},
                (f"Bearer {expired}",),
            )
        )
        def one(request: Fuzzed) -> None:
            response = send(client, target, request)
            tally.count(request, response.status_code)
            seen = (request, response.status_code, response.headers, response.text)
            if request.method == "OPTIONS":  # a CORS preflight: public, answered by Powertools
                assert response.status_code == 204, seen
                if request.headers.get("origin"):  # a browser's: CORS headers answer it
                    assert response.headers.get("access-control-allow-origin") == "*", seen
                return
            assert response.status_code == 401, seen
            if request.method == "HEAD":
                assert response.content == b"", seen
                return
            # Repeated headers arrive joined with commas, as API Gateway joins them.
            sent = ",".join(request.authorization).strip()
            assert response.json() == (INVALID if sent else MISSING), seen

        one()

    print(f"\nanonymous: {tally}")
    assert unchanged(db) == before


def test_authenticated_requests_to_every_route_never_get_a_500(system: Any, target: Target) -> None:
    tally = Tally()
    tokens = st.sampled_from(target.admin_tokens).map(lambda t: (f"Bearer {t}",))

    with httpx.Client(timeout=30) as client:

        @FUZZ_SETTINGS
        @given(request=requests(target, tokens))
        def one(request: Fuzzed) -> None:
            response = send(client, target, request)
            status = response.status_code
            tally.count(request, status)
            seen = (request, status, response.text)
            assert status < 500 or status == 503, seen
            if request.method == "HEAD" or status == 204:
                return
            answer = response.json()
            if status >= 400:
                assert answer["code"] == status and isinstance(answer["message"], str), seen
            if status == 503:
                assert answer["message"] in UNAVAILABLE_MESSAGES, seen

        one()

    print(f"\nauthenticated: {tally}")
    # What the run queued (test deliveries) is applied before the next test starts.
    eventually(lambda: _queued(system) == 0, timeout=30, interval=0.2)


def _queued(system: Any) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=system.aws.event_queue_url, AttributeNames=["All"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
