"""A stand-in for a Supabase project's Auth (GoTrue behind the project's API gateway) on
loopback: what supabase-js's auth client calls to sign an administrator in with a password,
refresh the session, read the user and sign out, answered as Supabase Auth answers
(supabase/auth internal/api: token.go, token_refresh.go, tokens/service.go, user.go,
logout.go, errors.go).

The access tokens are HS256 JWTs signed with the project's JWT secret, their claims made as
Supabase Auth makes them and then passed through the database's own access token hook
(`public.custom_access_token_hook`), called as Supabase Auth calls it: connected as
`supabase_auth_admin` (search_path `auth`), in a transaction with a 2 s statement timeout. So
the admin API accepts them exactly as it accepts a real project's. Users are the database's
`auth.users` rows; a password is stored in `encrypted_password` as an Argon2id PHC string,
one of the formats Supabase Auth verifies (internal/crypto/password.go). Sessions and refresh
tokens are kept in memory (the stand-in's `auth.sessions`), rotated on every refresh with
Supabase Auth's 10 s reuse interval.

In front of Auth, as the project's gateway does: the `apikey` header must be the project's
anon key, and CORS allows any origin.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import psycopg
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from psycopg.rows import dict_row

PREFIX = "/auth/v1"
INVALID_LOGIN = "Invalid login credentials"
# Supabase Auth's defaults: an hour's access token; a rotated refresh token may be used again
# for 10 s (two tabs refreshing at once), after which its reuse ends the session.
ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_REUSE_SECONDS = 10
HOOK = '"public"."custom_access_token_hook"'
HOOK_TIMEOUT_MS = 2000
# The claims Supabase Auth requires of the hook's answer (tokens/service.go validateTokenClaims).
REQUIRED_CLAIMS = ("aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id")
API_VERSION_HEADER = "x-supabase-api-version"
API_VERSION_2024 = "2024-01-01"
CORS_EXPOSED = f"{API_VERSION_HEADER}, x-sb-error-code"


class AuthError(Exception):
    """An answer of Supabase Auth's apierrors.HTTPError: status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Session:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: int
    # Every refresh token of the session, the current one last.
    refresh_tokens: list[str] = field(default_factory=list)
    rotated_at: float = 0.0


def hash_password(password: str) -> str:
    """An Argon2id PHC string, as Supabase Auth reads `encrypted_password`."""
    kdf = Argon2id(
        salt=secrets.token_bytes(16), length=32, iterations=2, lanes=1, memory_cost=19456
    )
    return kdf.derive_phc_encoded(password.encode())


def password_matches(password: str, encoded: str | None) -> bool:
    if not encoded or not encoded.startswith("$argon2id$"):
        return False
    try:
        Argon2id.verify_phc_encoded(password.encode(), encoded)
    except (InvalidKey, ValueError):
        return False
    return True


def anon_key(jwt_secret: str) -> str:
    """A project's legacy anon key: an HS256 JWT with the `anon` role and a distant expiry."""
    now = int(time.time())
    claims = {"iss": "supabase", "ref": "local", "role": "anon", "iat": now}
    return jwt.encode({**claims, "exp": now + 10 * 365 * 86400}, jwt_secret, algorithm="HS256")


def as_auth_admin(database_url: str) -> str:
    """The database URL as the role Supabase Auth connects as (no password locally)."""
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    params["user"] = "supabase_auth_admin"
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **params)


class AuthStandIn:
    """Supabase Auth at `url + /auth/v1`; `url` is what supabase-js takes as the project URL."""

    def __init__(
        self,
        database_url: str,
        jwt_secret: str,
        *,
        port: int = 0,
        access_token_seconds: int = ACCESS_TOKEN_SECONDS,
        refresh_token_reuse_seconds: float = REFRESH_TOKEN_REUSE_SECONDS,
    ) -> None:
        self._database_url = as_auth_admin(database_url)
        self._jwt_secret = jwt_secret
        # The project's settings (JWT expiry; refresh token reuse interval), changeable.
        self.access_token_seconds = access_token_seconds
        self.refresh_token_reuse_seconds = refresh_token_reuse_seconds
        self.anon_key = anon_key(jwt_secret)
        self._sessions: dict[uuid.UUID, _Session] = {}
        self._by_refresh_token: dict[str, uuid.UUID] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return f"{self.url}{PREFIX}"

    def start(self) -> AuthStandIn:
        threading.Thread(
            target=self._server.serve_forever, name="auth-standin", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- users (what the dashboard's "Add user" does) ---------------------------------------

    def set_password(self, email: str, password: str) -> uuid.UUID:
        """Gives the account with this e-mail a password, creating a confirmed account when
        there is none; answers its id."""
        with psycopg.connect(self._database_url) as conn:
            row = conn.execute(
                "update auth.users set encrypted_password = %s, updated_at = now()"
                " where lower(email) = lower(%s) and not is_sso_user and deleted_at is null"
                " returning id",
                (hash_password(password), email),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "insert into auth.users (id, aud, role, email, encrypted_password,"
                    " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at,"
                    " updated_at) values (%s, 'authenticated', 'authenticated', lower(%s), %s,"
                    " now(), %s, '{}', now(), now()) returning id",
                    (
                        uuid.uuid4(),
                        email,
                        hash_password(password),
                        json.dumps({"provider": "email", "providers": ["email"]}),
                    ),
                ).fetchone()
            assert row is not None
            return uuid.UUID(str(row[0]))

    # -- the routes ---------------------------------------------------------------------------

    def password_grant(self, body: dict[str, Any]) -> dict[str, Any]:
        email, phone = body.get("email") or "", body.get("phone") or ""
        if not isinstance(email, str) or not isinstance(phone, str):
            raise AuthError(400, "bad_json", "Could not parse request body as JSON")
        if email and phone:
            raise AuthError(
                400,
                "validation_failed",
                "Only an email address or phone number should be provided on login.",
            )
        if not email:
            if phone:
                raise AuthError(422, "phone_provider_disabled", "Phone logins are disabled")
            raise AuthError(400, "validation_failed", "missing email or phone")
        password = body.get("password")
        with psycopg.connect(self._database_url, row_factory=dict_row) as conn:
            user = conn.execute(
                "select * from auth.users where lower(email) = lower(%s)"
                " and aud = 'authenticated' and not is_sso_user and deleted_at is null",
                (email,),
            ).fetchone()
            if user is None or not user["encrypted_password"]:
                raise AuthError(400, "invalid_credentials", INVALID_LOGIN)
            if user["banned_until"] is not None and user["banned_until"] > datetime.now(UTC):
                raise AuthError(400, "user_banned", "User is banned")
            if not isinstance(password, str) or not password_matches(
                password, user["encrypted_password"]
            ):
                raise AuthError(400, "invalid_credentials", INVALID_LOGIN)
            if user["email_confirmed_at"] is None:
                raise AuthError(400, "email_not_confirmed", "Email not confirmed")
            session = _Session(uuid.uuid4(), user["id"], int(time.time()))
            user = conn.execute(
                "update auth.users set last_sign_in_at = now() where id = %s returning *",
                (user["id"],),
            ).fetchone()
            assert user is not None
            answer = self._session_answer(conn, user, session, "password")
        with self._lock:
            self._sessions[session.id] = session
            self._remember(session, answer["refresh_token"])
        return answer

    def refresh_grant(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("refresh_token")
        if not isinstance(token, str) or len(token) < 12:
            raise AuthError(400, "validation_failed", "Refresh token is not valid")
        with self._lock:
            session_id = self._by_refresh_token.get(token)
            session = self._sessions.get(session_id) if session_id else None
            if session is None:
                raise AuthError(
                    400,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                )
            current = session.refresh_tokens[-1]
            if token != current:
                parent = len(session.refresh_tokens) > 1 and token == session.refresh_tokens[-2]
                if not (
                    parent
                    and time.monotonic() - session.rotated_at < self.refresh_token_reuse_seconds
                ):
                    # A refresh token used twice: someone else may hold it; the session ends.
                    self._end(session)
                    raise AuthError(
                        400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"
                    )
        with psycopg.connect(self._database_url, row_factory=dict_row) as conn:
            user = conn.execute(
                "select * from auth.users where id = %s and deleted_at is null", (session.user_id,)
            ).fetchone()
            if user is None:
                raise AuthError(400, "user_not_found", "User not found")
            if user["banned_until"] is not None and user["banned_until"] > datetime.now(UTC):
                raise AuthError(400, "user_banned", "Invalid Refresh Token: User Banned")
            answer = self._session_answer(conn, user, session, "token_refresh")
        with self._lock:
            if token == session.refresh_tokens[-1] and session.id in self._sessions:
                self._remember(session, answer["refresh_token"])
                session.rotated_at = time.monotonic()
            else:
                # Within the reuse interval: the current refresh token is answered again.
                answer["refresh_token"] = session.refresh_tokens[-1]
        return answer

    def user(self, authorization: str | None) -> dict[str, Any]:
        claims = self._authenticated(authorization)
        with psycopg.connect(self._database_url, row_factory=dict_row) as conn:
            user = conn.execute(
                "select * from auth.users where id = %s and deleted_at is null", (claims["sub"],)
            ).fetchone()
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        return _user_json(user)

    def logout(self, authorization: str | None, scope: str) -> None:
        if scope not in ("", "global", "local", "others"):
            raise AuthError(400, "validation_failed", f'Unsupported logout scope "{scope}"')
        claims = self._authenticated(authorization)
        session_id = uuid.UUID(claims["session_id"])
        with self._lock:
            for session in list(self._sessions.values()):
                if session.user_id != uuid.UUID(claims["sub"]):
                    continue
                if (
                    scope in ("", "global")
                    or (scope == "local" and session.id == session_id)
                    or (scope == "others" and session.id != session_id)
                ):
                    self._end(session)

    # -- tokens ------------------------------------------------------------------------------

    def _session_answer(
        self, conn: psycopg.Connection[Any], user: dict[str, Any], session: _Session, method: str
    ) -> dict[str, Any]:
        now = int(time.time())
        expires_at = now + self.access_token_seconds
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(user["id"]),
            "aud": user["aud"],
            "exp": expires_at,
            "iat": now,
            "email": user["email"] or "",
            "phone": user["phone"] or "",
            "app_metadata": user["raw_app_meta_data"] or {},
            "user_metadata": user["raw_user_meta_data"] or {},
            "role": user["role"],
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": session.created_at}],
            "session_id": str(session.id),
            "is_anonymous": bool(user["is_anonymous"]),
        }
        claims = self._through_hook(conn, user["id"], claims, method)
        return {
            "access_token": jwt.encode(claims, self._jwt_secret, algorithm="HS256"),
            "token_type": "bearer",
            "expires_in": self.access_token_seconds,
            "expires_at": expires_at,
            "refresh_token": secrets.token_urlsafe(24),
            "user": _user_json(user),
        }

    def _through_hook(
        self, conn: psycopg.Connection[Any], user_id: uuid.UUID, claims: dict[str, Any], method: str
    ) -> dict[str, Any]:
        """The custom access token hook, as Supabase Auth calls a Postgres function hook
        (internal/hooks/hookspgfunc): its error, if any, is the answer."""
        event = {"user_id": str(user_id), "claims": claims, "authentication_method": method}
        with conn.transaction():
            conn.execute(f"set local statement_timeout to '{HOOK_TIMEOUT_MS}'")
            row = conn.execute(f"select {HOOK}(%s::jsonb) as out", (json.dumps(event),)).fetchone()
            conn.execute("set local statement_timeout to default")
        output = row["out"] if row else None
        if not isinstance(output, dict):
            raise AuthError(500, "unexpected_failure", "Error running hook URI")
        error = output.get("error")
        if isinstance(error, dict) and error.get("message"):
            status = int(error.get("http_code") or 500)
            raise AuthError(
                status, "unexpected_failure" if status == 500 else "unknown", str(error["message"])
            )
        out = output.get("claims")
        if not isinstance(out, dict) or any(name not in out for name in REQUIRED_CLAIMS):
            raise AuthError(
                500, "unexpected_failure", "output claims do not conform to the expected schema"
            )
        return out

    def _authenticated(self, authorization: str | None) -> dict[str, Any]:
        """requireAuthentication: a bearer JWT of this project, whose session still exists."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
            uuid.UUID(str(claims["sub"]))
            session_id = uuid.UUID(str(claims["session_id"]))
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise AuthError(
                403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc}"
            ) from exc
        with self._lock:
            if session_id not in self._sessions:
                raise AuthError(
                    403,
                    "session_not_found",
                    "Session from session_id claim in JWT does not exist",
                )
        return claims

    def _remember(self, session: _Session, token: str) -> None:
        session.refresh_tokens.append(token)
        self._by_refresh_token[token] = session.id

    def _end(self, session: _Session) -> None:
        self._sessions.pop(session.id, None)
        for token in session.refresh_tokens:
            self._by_refresh_token.pop(token, None)


def _timestamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _user_json(user: dict[str, Any]) -> dict[str, Any]:
    """models.User as Supabase Auth serialises it."""
    return {
        "id": str(user["id"]),
        "aud": user["aud"],
        "role": user["role"],
        "email": user["email"] or "",
        "email_confirmed_at": _timestamp(user["email_confirmed_at"]),
        "phone": user["phone"] or "",
        "confirmed_at": _timestamp(user["confirmed_at"]),
        "last_sign_in_at": _timestamp(user["last_sign_in_at"]),
        "app_metadata": user["raw_app_meta_data"] or {},
        "user_metadata": user["raw_user_meta_data"] or {},
        "identities": [],
        "created_at": _timestamp(user["created_at"]),
        "updated_at": _timestamp(user["updated_at"]),
        "is_anonymous": bool(user["is_anonymous"]),
    }


def _handler(auth: AuthStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_OPTIONS(self) -> None:
            # The gateway's CORS: any origin, the headers asked for (apikey, x-client-info,
            # x-supabase-api-version, authorization, content-type).
            self._send(
                200,
                b"",
                {
                    "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                    "access-control-allow-headers": self.headers.get(
                        "access-control-request-headers", "*"
                    ),
                    "access-control-max-age": "3600",
                },
            )

        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _route(self) -> None:
            parts = urlsplit(self.path)
            try:
                self._check_api_key()
                body = self._body()
                if parts.path == f"{PREFIX}/token" and self.command == "POST":
                    grant = parse_qs(parts.query).get("grant_type", [""])[0]
                    if grant == "password":
                        self._json(200, auth.password_grant(body))
                    elif grant == "refresh_token":
                        self._json(200, auth.refresh_grant(body))
                    else:
                        raise AuthError(400, "invalid_credentials", "unsupported_grant_type")
                elif parts.path == f"{PREFIX}/user" and self.command == "GET":
                    self._json(200, auth.user(self.headers.get("authorization")))
                elif parts.path == f"{PREFIX}/logout" and self.command == "POST":
                    scope = parse_qs(parts.query).get("scope", [""])[0]
                    auth.logout(self.headers.get("authorization"), scope)
                    self._send(204, b"")
                else:
                    raise AuthError(404, "not_found", "Not Found")
            except _GatewayRefusal as refusal:
                self._json(401, refusal.body)
            except AuthError as error:
                self._error(error)

        def _check_api_key(self) -> None:
            key = self.headers.get("apikey")
            if not key:
                raise _GatewayRefusal({"message": "No API key found in request"})
            if not secrets.compare_digest(key.encode(), auth.anon_key.encode()):
                raise _GatewayRefusal(
                    {
                        "message": "Invalid API key",
                        "hint": "Double check your Supabase `anon` or `service_role` API key.",
                    }
                )

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return {}
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise AuthError(
                    400, "bad_json", f"Could not parse request body as JSON: {exc}"
                ) from exc
            if not isinstance(body, dict):
                raise AuthError(400, "bad_json", "Could not parse request body as JSON")
            return body

        def _error(self, error: AuthError) -> None:
            """errors.go: `{code, message}` for a client of API version 2024-01-01 (supabase-js
            sends it), `{code: status, error_code, msg}` for any other."""
            headers = {"x-sb-error-code": error.code}
            if self.headers.get(API_VERSION_HEADER, "") >= API_VERSION_2024:
                headers[API_VERSION_HEADER] = API_VERSION_2024
                body: dict[str, Any] = {"code": error.code, "message": error.message}
            else:
                body = {"code": error.status, "error_code": error.code, "msg": error.message}
            self._send(error.status, json.dumps(body).encode(), headers)

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body).encode(), {"content-type": "application/json"})

        def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("access-control-allow-origin", "*")
            self.send_header("access-control-expose-headers", CORS_EXPOSED)
            for name, value in {"content-type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _GatewayRefusal(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["message"])
        self.body = body
