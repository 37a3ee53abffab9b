"""Isolation matrix: every admin and website-sync route refuses the wrong caller, and changes nothing.

Callers (each test id names route and caller):

- `other-org-admin`: an administrator of another organisation;
- `member`: a plain member of the demo organisation;
- `expired`, `forged`: the rightful caller's own claims (the organisation's administrator, or
  the platform administrator for platform routes), expired a minute ago or signed with another
  secret;
- `absent`: no Authorization header.

Token problems are 401 with Supabase's messages. Authority problems are 403 on the admin API
and 403 on the website-sync API for a member of the mentor's organisation; for a mentor outside
the caller's organisations the website-sync API answers 404, so that nobody learns which
mentors exist elsewhere. After each refusal nothing has changed: no audit entry, no mentor
status change or outbox row, the same webhook secret.

Not repeated here: `other-org-admin` on the organisation routes of the admin API (403, in
tests/integration/test_admin_api.py::test_an_admin_of_another_organisation_gets_403_on_every_route),
the exact 401 bodies for several malformed tokens on one route (same file), and what coordinators,
deactivated admins and organisation admins may do inside their own organisation (same file,
test_roles_inside_the_organisation). A plain member may read `GET /orgs/{org}/features`: that
route is the app's own, so it is not in the matrix; nor are `GET /me` and `GET /orgs`, which
answer anyone signed in with what they themselves may see (same file: what each caller is
shown, and nothing of another organisation).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from conftest import Database
from integration.test_admin_api import add_member, add_org, token
from portal_sync_dev.local.aws_local import SOURCE_SECRET_PREFIX
from portal_sync_dev.local.seed import DEMO_ADMIN_USER_ID, DEMO_ORG_ADMIN_USER_ID

ORG = "{org}"
MENTOR = "{mentor}"

# (method, path, JSON body, who may call it: "org-admin" or "platform-admin")
ADMIN_ROUTES = [
    ("GET", f"/orgs/{ORG}/integration", None, "org-admin"),
    ("PUT", f"/orgs/{ORG}/integration", {"enabled": False}, "org-admin"),
    ("POST", f"/orgs/{ORG}/integration/webhook-secret", {"grace_period_hours": 0}, "org-admin"),
    ("POST", f"/orgs/{ORG}/integration/webhook-secret/test", None, "org-admin"),
    ("GET", f"/orgs/{ORG}/sync/status", None, "org-admin"),
    ("GET", f"/orgs/{ORG}/sync/events", None, "org-admin"),
    ("POST", f"/orgs/{ORG}/sync/events/{{event}}/reprocess", None, "org-admin"),
    ("GET", f"/orgs/{ORG}/webhook-health", None, "platform-admin"),
    ("GET", f"/orgs/{ORG}/members", None, "org-admin"),
    ("GET", f"/orgs/{ORG}/members/{MENTOR}", None, "org-admin"),
    ("GET", f"/orgs/{ORG}/audit-log", None, "org-admin"),
    ("POST", "/orgs", {"name": "Sneaky chapter"}, "platform-admin"),
    ("GET", "/onboarding-template", None, "platform-admin"),
]
WEBSITE_ROUTES = [
    ("GET", f"/{MENTOR}/status", None),
    ("POST", f"/{MENTOR}/sync-visibility", None),
    ("POST", f"/{MENTOR}/hide", None),
    ("POST", f"/{MENTOR}/restore", None),
    ("POST", f"/{MENTOR}/pause", None),
    ("POST", f"/{MENTOR}/resume", None),
    ("POST", f"/{MENTOR}/retry", None),
    ("PUT", f"/{MENTOR}/certificate", {"certified_until": "2030-01-01"}),
]
TOKEN_PROBLEMS = {
    "expired": "Invalid JWT",
    "forged": "Invalid JWT",
    "absent": "Missing authorization header",
}


@dataclass(frozen=True)
class World:
    base_url: str
    org_id: uuid.UUID
    mentor_id: uuid.UUID
    event_id: uuid.UUID  # an error entry of the demo organisation, which an admin could reprocess
    tokens: dict[str, str | None]

    def caller(self, kind: str, rightful: str = "org-admin") -> str | None:
        return self.tokens[f"{kind}:{rightful}" if kind in ("expired", "forged") else kind]


@pytest.fixture(scope="module")
def world(local_system: Any, database: Database) -> Iterator[World]:
    """The demo organisation, reseeded once for the module (refusals change nothing)."""
    sqs = boto3.client("sqs")
    for url in (local_system.aws.event_queue_url, local_system.aws.dead_letter_queue_url):
        sqs.purge_queue(QueueUrl=url)
    database.truncate()
    seed = local_system.reseed()
    other_org = add_org(database, "Another chapter")
    with database.connect() as conn:
        event = conn.execute(
            "insert into portal_sync_events (organization_id, event_id, event_type, status,"
            " message, received_at) values (%s, 'msg_matrix', 'membership.created', 'error',"
            " 'The portal event is invalid', now()) returning id",
            (seed.org_id,),
        ).fetchone()
    expired = int(time.time()) - 60
    forged = "not-the-project-secret-but-long-enough-for-hs256-signing"
    tokens: dict[str, str | None] = {
        "other-org-admin": token(local_system, add_member(database, other_org, "admin")),
        "member": token(local_system, add_member(database, seed.org_id, "member")),
        "absent": None,
    }
    for rightful, user in (
        ("org-admin", DEMO_ORG_ADMIN_USER_ID),
        ("platform-admin", DEMO_ADMIN_USER_ID),
    ):
        tokens[f"expired:{rightful}"] = token(local_system, user, exp=expired)
        tokens[f"forged:{rightful}"] = token(local_system, user, _secret=forged)
    assert seed.mentor_id is not None
    yield World(local_system.base_url, seed.org_id, seed.mentor_id, event["id"], tokens)


def unchanged(database: Database, world: World) -> dict[str, Any]:
    """What a refused request must not have touched."""
    secret = boto3.client("secretsmanager").get_secret_value(
        SecretId=f"{SOURCE_SECRET_PREFIX}demo-portal"
    )["SecretString"]
    return {
        "secret": secret,
        "audit": database.rows("select * from audit_logs"),
        "integration": database.rows("select * from integration_configs order by organization_id"),
        "organizations": database.rows("select id from organizations order by id"),
        "mentor": database.rows("select * from peer_mentor_status"),
        "mentor_log": database.rows("select id from peer_mentor_sync_log"),
        "outbox": database.rows("select id from website_visibility_outbox"),
        "events": database.rows("select id, status, attempts from portal_sync_events"),
    }


def call(
    world: World, prefix: str, method: str, path: str, body: Any, bearer: str | None
) -> httpx.Response:
    path = path.format(org=world.org_id, mentor=world.mentor_id, event=world.event_id)
    headers = {"authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return httpx.request(
        method, f"{world.base_url}{prefix}{path}", json=body, headers=headers, timeout=15
    )


def _admin_cases() -> Iterator[Any]:
    for method, path, body, rightful in ADMIN_ROUTES:
        route = f"{method} {path}"
        callers = ["member", *TOKEN_PROBLEMS]
        if ORG not in path:  # the organisation routes' outsiders are covered in test_admin_api
            callers.insert(0, "other-org-admin")
        for kind in callers:
            yield pytest.param(method, path, body, rightful, kind, id=f"{route} [{kind}]")


def _website_cases() -> Iterator[Any]:
    for method, path, body in WEBSITE_ROUTES:
        for kind in ("other-org-admin", "member", *TOKEN_PROBLEMS):
            yield pytest.param(method, path, body, kind, id=f"{method} {path} [{kind}]")


@pytest.mark.parametrize(("method", "path", "body", "rightful", "kind"), list(_admin_cases()))
def test_admin_api_refuses(
    world: World, database: Database, method: str, path: str, body: Any, rightful: str, kind: str
) -> None:
    before = unchanged(database, world)

    response = call(
        world, "/functions/v1/admin-api", method, path, body, world.caller(kind, rightful)
    )

    if kind in TOKEN_PROBLEMS:
        assert response.status_code == 401
        assert response.json() == {"code": 401, "message": TOKEN_PROBLEMS[kind]}
    else:
        assert response.status_code == 403
        assert response.json()["code"] == 403
    assert unchanged(database, world) == before


@pytest.mark.parametrize(("method", "path", "body", "kind"), list(_website_cases()))
def test_website_sync_refuses(
    world: World, database: Database, method: str, path: str, body: Any, kind: str
) -> None:
    before = unchanged(database, world)

    response = call(world, "/api/v1/website-sync", method, path, body, world.caller(kind))

    if kind in TOKEN_PROBLEMS:
        assert response.status_code == 401
        assert response.json() == {"code": 401, "message": TOKEN_PROBLEMS[kind]}
    elif kind == "other-org-admin":
        assert response.status_code == 404
        assert response.json() == {
            "code": 404,
            "message": "No such peer mentor in your organisations",
        }
    else:
        assert response.status_code == 403
        assert response.json()["code"] == 403
    assert unchanged(database, world) == before
