"""What pg_net does on Supabase, for `make run`: when a write asks for a mentor's
reconsideration, the database announces it after commit (NOTIFY `portal_sync_visibility`,
infra/migrations/20261203000003_visibility_push.sql), and this posts to website-sync's
`/reconsiderations` route with the project's service_role key, as pg_net would from the
trigger. The embedded PostgreSQL has no pg_net (a Supabase extension with a background worker),
so its worker is the part stood in for; the trigger, the route and its authentication are the
real ones.

Announcements that arrive together are posted once: the route takes every waiting request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import jwt
import psycopg

CHANNEL = "portal_sync_visibility"


def service_role_key(jwt_secret: str) -> str:
    """A project's legacy service_role key: an HS256 JWT with the role and a distant expiry."""
    now = int(time.time())
    claims = {"iss": "supabase", "role": "service_role", "iat": now, "exp": now + 10 * 365 * 86400}
    return jwt.encode(claims, jwt_secret, algorithm="HS256")


class ReconsiderationPush:
    def __init__(self, database_url: str, push_url: str, key: str) -> None:
        self._database_url = database_url
        self._push_url = push_url
        self._key = key
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="database-push", daemon=True)
        self.posted = 0

    def start(self) -> ReconsiderationPush:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def pause(self, paused: bool = True) -> None:
        """Announcements are dropped while paused (a test's lost push: the schedule's turn)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._database_url, autocommit=True) as conn:
                    conn.execute(f"listen {CHANNEL}")
                    while not self._stop.is_set():
                        announced = list(conn.notifies(timeout=0.5, stop_after=1))
                        if announced:
                            # Whatever else arrived meanwhile is taken by the same post.
                            list(conn.notifies(timeout=0.05))
                            self._post()
            except psycopg.OperationalError:  # the database restarting: listen again
                self._stop.wait(1)

    def _post(self) -> None:
        if self._paused.is_set():
            return
        headers: dict[str, Any] = {"authorization": f"Bearer {self._key}"}
        try:
            httpx.post(self._push_url, json={}, headers=headers, timeout=30)
            self.posted += 1
        except httpx.HTTPError:  # as pg_net: a lost announcement waits for the schedule
            pass
