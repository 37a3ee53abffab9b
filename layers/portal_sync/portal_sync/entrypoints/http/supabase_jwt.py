"""Verifies Supabase access tokens as Supabase's own gateway does.

HS256 tokens are checked with the project's JWT secret; ES256/RS256 tokens with the key their
`kid` names in the project's JWKS (PyJWT's PyJWKClient caches the key set), and only with the
algorithm that key is for. `exp` and `aud=authenticated` are required. Failures answer with
Supabase's own messages.

Whatever a token holds is `Unauthenticated` (401), never an unexpected error: a 500 pages
on-call. A JWKS that cannot be fetched is `AuthenticationUnavailable` (503) instead: that is not
the caller's fault, and a 401 would tell clients to sign a valid user out rather than retry.

PyJWT (with cryptography, ~20 ms of a cold start) is imported when a token is first verified:
CORS preflights, requests without a token and the website-sync function's state machine tasks
and schedule never need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from portal_sync.access.caller import Caller

if TYPE_CHECKING:
    from jwt import PyJWK, PyJWKClient
    from jwt.types import Options

MISSING_AUTHORIZATION = "Missing authorization header"
INVALID_JWT = "Invalid JWT"
_ASYMMETRIC = ("ES256", "RS256")


class Unauthenticated(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationUnavailable(Exception):
    """The project's JWKS could not be fetched (or is not a key set): try again shortly."""


class SupabaseJwtVerifier:
    def __init__(self, hs256_secret: str, jwks_url: str = "") -> None:
        self._secret = hs256_secret
        self._jwks_url = jwks_url
        self._jwks_client: PyJWKClient | None = None

    @property
    def _jwks(self) -> PyJWKClient | None:
        """Created on first use and kept: it caches the project's key set."""
        if self._jwks_client is None and self._jwks_url:
            import jwt

            self._jwks_client = jwt.PyJWKClient(self._jwks_url, cache_keys=True, timeout=5)
        return self._jwks_client

    def verify(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated(MISSING_AUTHORIZATION)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(INVALID_JWT)
        claims = self._decode(token.strip())
        try:
            user_id = UUID(str(claims["sub"]))
        except (KeyError, ValueError) as exc:
            raise Unauthenticated(INVALID_JWT) from exc
        email = claims.get("email")
        return Caller(user_id, email if isinstance(email, str) else None)

    def verify_service_role(self, authorization: str | None) -> None:
        """The project's service_role key (or a JWT with that role), as Supabase's own
        server-side callers send it (a Database Webhook through pg_net): signed like users'
        tokens, with `role` service_role and an expiry, but no user and no audience."""
        if not authorization:
            raise Unauthenticated(MISSING_AUTHORIZATION)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(INVALID_JWT)
        claims = self._decode(token.strip(), service_role=True)
        if claims.get("role") != "service_role":
            raise Unauthenticated(INVALID_JWT)

    def _decode(self, token: str, *, service_role: bool = False) -> dict[str, Any]:
        import jwt

        # Users' tokens name the user and the audience; the service_role key has neither.
        options: Options = {"require": ["exp", "role"] if service_role else ["exp", "sub", "aud"]}
        if service_role:
            options["verify_aud"] = False
        audience = None if service_role else "authenticated"
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm == "HS256" and self._secret:
                return jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience=audience,
                    options=options,
                )
            if algorithm in _ASYMMETRIC and self._jwks is not None:
                # The PyJWK itself, not its bare key: PyJWT then refuses a header `alg` other
                # than the one the key is for (RS256 named on an ES256 key) as an
                # InvalidAlgorithmError, instead of handing an EC key to the RSA code.
                return jwt.decode(
                    token,
                    self._signing_key(self._jwks, token),
                    algorithms=list(_ASYMMETRIC),
                    audience=audience,
                    options=options,
                )
        except AuthenticationUnavailable:
            raise
        # Besides PyJWTError, cryptography and the JSON parser raise these on hostile input
        # (a key of another type, nesting deeper than the recursion limit, out-of-range values).
        except (jwt.PyJWTError, ValueError, TypeError, ArithmeticError, RecursionError) as exc:
            raise Unauthenticated(INVALID_JWT) from exc
        # An algorithm we were not configured for (or "none"): never accepted.
        raise Unauthenticated(INVALID_JWT)

    @staticmethod
    def _signing_key(jwks: PyJWKClient, token: str) -> PyJWK:
        """The JWKS key the token's `kid` names (a kid not in the set: PyJWKClientError, 401).

        Fetching the set is ours to fail: unreachable, not JSON (a proxy's error page), no
        usable key. The key set and each key found are cached, so keys seen before keep
        verifying while the endpoint is down.
        """
        import jwt

        try:
            return jwks.get_signing_key_from_jwt(token)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError) as exc:
            raise AuthenticationUnavailable("The project's JWKS is unavailable") from exc
