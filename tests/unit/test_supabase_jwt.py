"""Supabase access tokens: HS256 with the project secret, ES256/RS256 via a JWKS served over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from portal_sync.entrypoints.http.supabase_jwt import (
    INVALID_JWT,
    MISSING_AUTHORIZATION,
    SupabaseJwtVerifier,
    Unauthenticated,
)
from support import jwks_document, serve_on_loopback
from support import jwks_url as url_of

SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "email": "kari@example.org",
        "exp": int(time.time()) + 300,
    }
    return {**base, **overrides}


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """The project's JWKS endpoint, as Supabase serves it, on loopback."""
    server = serve_on_loopback(jwks_document({"ec-1": EC_KEY, "rsa-1": RSA_KEY}))
    yield url_of(server)
    server.shutdown()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_hs256_token_of_the_project_is_accepted() -> None:
    token_claims = claims()
    caller = SupabaseJwtVerifier(SECRET).verify(bearer(jwt.encode(token_claims, SECRET, "HS256")))
    assert str(caller.user_id) == token_claims["sub"]
    assert caller.email == "kari@example.org"


@pytest.mark.parametrize(
    ("kid", "algorithm", "key"), [("ec-1", "ES256", EC_KEY), ("rsa-1", "RS256", RSA_KEY)]
)
def test_asymmetric_tokens_verify_with_the_jwks(
    jwks_url: str, kid: str, algorithm: str, key: Any
) -> None:
    token_claims = claims()
    token = jwt.encode(token_claims, key, algorithm, headers={"kid": kid})

    caller = SupabaseJwtVerifier("", jwks_url).verify(bearer(token))

    assert str(caller.user_id) == token_claims["sub"]


def test_a_key_not_in_the_jwks_is_refused(jwks_url: str) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), stranger, "ES256", headers={"kid": "ec-1"})
    unknown_kid = jwt.encode(claims(), EC_KEY, "ES256", headers={"kid": "nope"})

    for candidate in (token, unknown_kid):
        with pytest.raises(Unauthenticated) as refused:
            SupabaseJwtVerifier("", jwks_url).verify(bearer(candidate))
        assert refused.value.message == INVALID_JWT


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(exp=int(time.time()) - 1), SECRET, "HS256"),
        jwt.encode(claims(aud="anon"), SECRET, "HS256"),
        jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET, "HS256"),
        jwt.encode(claims(sub="not-a-user-id"), SECRET, "HS256"),
        jwt.encode(claims(), "another-projects-secret-of-sufficient-length!!", "HS256"),
        jwt.encode(claims(), None, "none"),
        "garbage",
    ],
    ids=["expired", "wrong-audience", "no-exp", "bad-sub", "other-secret", "alg-none", "garbage"],
)
def test_bad_tokens_are_invalid_jwt(token: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        SupabaseJwtVerifier(SECRET).verify(bearer(token))
    assert refused.value.message == INVALID_JWT


def test_an_hs256_token_is_refused_when_only_a_jwks_is_configured(jwks_url: str) -> None:
    """Otherwise anyone could sign tokens with an empty secret."""
    token = jwt.encode(claims(), SECRET, "HS256")
    with pytest.raises(Unauthenticated):
        SupabaseJwtVerifier("", jwks_url).verify(bearer(token))


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(Unauthenticated) as refused:
        SupabaseJwtVerifier(SECRET).verify(header)
    assert refused.value.message == MISSING_AUTHORIZATION


def test_a_scheme_other_than_bearer_is_invalid() -> None:
    with pytest.raises(Unauthenticated) as refused:
        SupabaseJwtVerifier(SECRET).verify("Basic dXNlcjpwYXNz")
    assert refused.value.message == INVALID_JWT


# -- hostile tokens and an unavailable JWKS: never an unexpected error ----------------------------


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def junk_signed(header: dict[str, Any] | bytes, payload: dict[str, Any] | None = None) -> str:
    """A token as an attacker writes it: any header, any claims, a signature of junk bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return f"{_b64(raw)}.{_b64(json.dumps(payload or claims()).encode())}.{_b64(b'junk' * 8)}"


@pytest.mark.parametrize(
    "token",
    [
        junk_signed({"alg": "RS256", "typ": "JWT", "kid": "ec-1"}),
        junk_signed({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"}),
        # Properly signed, but with the RSA key under the EC key's id (and the other way round).
        jwt.encode(claims(), RSA_KEY, "RS256", headers={"kid": "ec-1"}),
        jwt.encode(claims(), EC_KEY, "ES256", headers={"kid": "rsa-1"}),
    ],
    ids=["junk-rs256-on-ec-key", "junk-es256-on-rsa-key", "rs256-on-ec-key", "es256-on-rsa-key"],
)
def test_a_token_naming_a_key_of_another_algorithm_is_invalid_jwt(
    jwks_url: str, token: str
) -> None:
    """It used to reach PyJWT's RSA code with an EC key: a TypeError, answered 500."""
    with pytest.raises(Unauthenticated) as refused:
        SupabaseJwtVerifier(SECRET, jwks_url).verify(bearer(token))

    assert refused.value.message == INVALID_JWT
    # Refused by PyJWT's own check that the key is for the header's algorithm.
    assert isinstance(refused.value.__cause__, jwt.InvalidAlgorithmError)


@pytest.mark.parametrize(
    "token",
    [
        junk_signed({"alg": "ES256", "kid": ["ec-1"]}),
        junk_signed({"alg": "ES256", "kid": {"id": "ec-1"}}),
        junk_signed({"alg": "ES256", "kid": "ec-1", "x": int("9" * 4000)}),
        junk_signed(b'{"alg": "ES256", "kid": "ec-1", "x": ' + b"1" * 5000 + b"}"),
        junk_signed(b'{"alg": "ES256", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        junk_signed({"alg": ["ES256"], "kid": "ec-1"}),
        junk_signed({"alg": "ES256", "kid": "ec-1"}, {"sub": 1, "exp": 1e400, "aud": [[]]}),
        junk_signed(b"\xff\xfe not json"),
        "a.b.c.d",
        "." * 3000,
    ],
)
def test_hostile_token_headers_are_invalid_jwt(jwks_url: str, token: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        SupabaseJwtVerifier(SECRET, jwks_url).verify(bearer(token))
    assert refused.value.message == INVALID_JWT


@pytest.fixture
def broken_jwks_url() -> Iterator[str]:
    """A JWKS endpoint that answers, but not with a key set (a proxy's error page)."""
    server = serve_on_loopback(b"<html>Bad gateway</html>", "text/html")
    yield url_of(server)
    server.shutdown()


def _unused_port_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/auth/v1/.well-known/jwks.json"


@pytest.mark.parametrize("where", ["unreachable", "not-a-key-set"])
def test_a_jwks_that_cannot_be_had_is_unavailable_not_the_callers_fault(
    broken_jwks_url: str, where: str
) -> None:
    """503 (AuthenticationUnavailable), not 401: a valid user's client must retry, not sign out;
    and not 500. Any token naming a JWKS algorithm gets there, so it must not page either."""
    from portal_sync.entrypoints.http.supabase_jwt import AuthenticationUnavailable

    url = _unused_port_url() if where == "unreachable" else broken_jwks_url
    token = jwt.encode(claims(), EC_KEY, "ES256", headers={"kid": "ec-1"})

    with pytest.raises(AuthenticationUnavailable):
        SupabaseJwtVerifier("", url).verify(bearer(token))
    # HS256 tokens do not need the JWKS: they still verify meanwhile.
    hs256 = jwt.encode(claims(), SECRET, "HS256")
    assert SupabaseJwtVerifier(SECRET, url).verify(bearer(hs256))
