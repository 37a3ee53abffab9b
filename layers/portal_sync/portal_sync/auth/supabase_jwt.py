"""Verifies Supabase access tokens as Supabase's own gateway does.

HS256 tokens are checked with the project's JWT secret; ES256/RS256 tokens with the key their
`kid` names in the project's JWKS (PyJWT's PyJWKClient caches the key set). `exp` and
`aud=authenticated` are required. Failures answer with Supabase's own messages.

PyJWT (with cryptography, ~20 ms of a cold start) is imported when a token is first verified:
CORS preflights, requests without a token and the website-sync function's state machine tasks
and schedule never need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from jwt import PyJWKClient
    from jwt.types import Options

MISSING_AUTHORIZATION = "Missing authorization header"
INVALID_JWT = "Invalid JWT"
_ASYMMETRIC = ("ES256", "RS256")


class Unauthenticated(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Caller:
    user_id: UUID
    email: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names them: the user id (stable), never the token."""
        return str(self.user_id)


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

    @classmethod
    def from_settings(cls) -> SupabaseJwtVerifier:
        from portal_sync.settings import get_settings

        settings = get_settings()
        return cls(settings.supabase_jwt_secret, settings.supabase_jwks_url)

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

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        options: Options = {"require": ["exp", "sub", "aud"]}
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm == "HS256" and self._secret:
                return jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience="authenticated",
                    options=options,
                )
            if algorithm in _ASYMMETRIC and self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token)
                return jwt.decode(
                    token,
                    key.key,
                    algorithms=[algorithm],
                    audience="authenticated",
                    options=options,
                )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(INVALID_JWT) from exc
        # An algorithm we were not configured for (or "none"): never accepted.
        raise Unauthenticated(INVALID_JWT)
