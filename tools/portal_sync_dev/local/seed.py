"""The demo organisation, its webhook source and the demo users `make run` hands out tokens for:
the global administrator, the organisation's administrator and its coordinator."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg
from portal_sync.admin.onboarding import PLATFORM_DEFAULT_TEMPLATE
from psycopg.types.json import Jsonb

from portal_sync_dev.database.supabase_project import is_supabase_project
from portal_sync_dev.local.aws_local import put_secret, put_source_secret
from portal_sync_dev.local.dataverse_standin import ROLE_PEER_MENTOR, DataverseStandIn

# Fixed ids, so that a second `make run` finds the same organisation and tokens keep working.
_NAMESPACE = uuid.UUID("6f3a1c52-4a8e-4c61-9a43-3b2f1f0d7e10")
DEMO_ORG_ID = uuid.uuid5(_NAMESPACE, "demo-organization")
DEMO_SOURCE_ID = "demo-portal"
DEMO_ADMIN_USER_ID = uuid.uuid5(_NAMESPACE, "global-admin")
DEMO_ORG_ADMIN_USER_ID = uuid.uuid5(_NAMESPACE, "org-admin")
DEMO_COORDINATOR_USER_ID = uuid.uuid5(_NAMESPACE, "coordinator")
DEMO_ADMIN_EMAIL = "admin@example.org"
DEMO_ORG_ADMIN_EMAIL = "org-admin@example.org"
DEMO_COORDINATOR_EMAIL = "coordinator@example.org"
TOKEN_LIFETIME_SECONDS = 30 * 24 * 3600
DEMO_MENTOR_CONTACT_ID = str(uuid.uuid5(_NAMESPACE, "demo-mentor-contact"))
DEMO_MENTOR_MEMBERSHIP_ID = str(uuid.uuid5(_NAMESPACE, "demo-mentor-membership"))
# How many contacts with memberships the demo Dynamics environment starts with.
DEMO_DYNAMICS_MEMBERS = 1000
DEMO_DYNAMICS_TENANT = "demo-tenant"
# The demo Dynamics environment's webhooks arrive at a source of their own (header-key mode:
# Dataverse cannot sign, docs/inbound.md).
DEMO_DYNAMICS_SOURCE_ID = "demo-dynamics"
DEMO_DYNAMICS_HEADER = "x-hlf-dynamics-key"
DEMO_DYNAMICS_CLIENT_ID = "portal-sync-local"
VISIBILITY_COLUMN = "hlf_showonwebsite"


@dataclass(frozen=True)
class DemoSeed:
    org_id: uuid.UUID
    source_id: str
    webhook_secret: str
    admin_token: str
    org_admin_token: str
    # The demo organisation's coordinator: the members view, not the settings.
    coordinator_token: str
    mentor_id: uuid.UUID | None = None
    # The stand-in's credentials of the demo environment, for a person onboarding an
    # organisation against it.
    dynamics_client_secret: str | None = None


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def remembered(path: Path, make: object) -> str:
    """A value kept under .local so that it survives restarts."""
    if path.exists():
        return path.read_text().strip()
    value = make() if callable(make) else str(make)
    path.write_text(value)
    path.chmod(0o600)
    return value


def user_token(jwt_secret: str, user_id: uuid.UUID, email: str) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_SECONDS,
        "iss": "portal-sync-local",
    }
    return jwt.encode(claims, jwt_secret, algorithm="HS256")


def seed_demo(
    database_url: str,
    jwt_secret: str,
    webhook_secret: str,
    dynamics: DataverseStandIn | None = None,
    demo_members: int = DEMO_DYNAMICS_MEMBERS,
) -> DemoSeed:
    mentor_id = client_secret = None
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "insert into organizations (id, name) values (%s, %s) on conflict (id) do nothing",
            (DEMO_ORG_ID, "HLF demo chapter"),
        )
        # The demo organisation starts from the platform default template, as onboarding does.
        conn.execute(
            "insert into integration_configs"
            " (organization_id, source_id, feature_ownership, deep_links) values (%s, %s, %s, %s)"
            " on conflict (organization_id) do nothing",
            (
                DEMO_ORG_ID,
                DEMO_SOURCE_ID,
                Jsonb(PLATFORM_DEFAULT_TEMPLATE["feature_ownership"]),
                Jsonb(PLATFORM_DEFAULT_TEMPLATE["deep_links"]),
            ),
        )
        conn.execute(
            "insert into platform_admins (user_id) values (%s) on conflict do nothing",
            (DEMO_ADMIN_USER_ID,),
        )
        if not is_supabase_project(conn):
            # The demo users' app accounts, as Supabase Auth writes them (verified addresses).
            # A real project's auth.users is Supabase Auth's own: nothing is written there.
            conn.execute(
                "insert into auth.users (id, aud, role, email, email_confirmed_at, created_at)"
                " values (%s, 'authenticated', 'authenticated', %s, now(), now()),"
                " (%s, 'authenticated', 'authenticated', %s, now(), now()),"
                " (%s, 'authenticated', 'authenticated', %s, now(), now())"
                " on conflict (id) do nothing",
                (
                    DEMO_ADMIN_USER_ID,
                    DEMO_ADMIN_EMAIL,
                    DEMO_ORG_ADMIN_USER_ID,
                    DEMO_ORG_ADMIN_EMAIL,
                    DEMO_COORDINATOR_USER_ID,
                    DEMO_COORDINATOR_EMAIL,
                ),
            )
        for user_id, last_name, email, role in (
            (DEMO_ORG_ADMIN_USER_ID, "Administrator", DEMO_ORG_ADMIN_EMAIL, "admin"),
            (DEMO_COORDINATOR_USER_ID, "Coordinator", DEMO_COORDINATOR_EMAIL, "coordinator"),
        ):
            profile = conn.execute(
                "insert into profiles (auth_user_id, first_name, last_name, email) values (%s, 'Demo', %s, %s)"
                " on conflict (auth_user_id) do update set updated_at = now() returning id",
                (user_id, last_name, email),
            ).fetchone()
            assert profile is not None
            conn.execute(
                "insert into organization_memberships (organization_id, profile_id, role) values (%s, %s, %s)"
                " on conflict (organization_id, profile_id) do nothing",
                (DEMO_ORG_ID, profile[0], role),
            )
        if dynamics is not None:
            mentor_id, client_secret = _seed_dynamics(conn, dynamics, demo_members)
    put_source_secret(
        DEMO_SOURCE_ID,
        {
            "organization_id": str(DEMO_ORG_ID),
            "enabled": True,
            "mode": "standard-webhooks",
            "keys": [{"value": webhook_secret}],
        },
    )
    return DemoSeed(
        org_id=DEMO_ORG_ID,
        source_id=DEMO_SOURCE_ID,
        webhook_secret=webhook_secret,
        admin_token=user_token(jwt_secret, DEMO_ADMIN_USER_ID, DEMO_ADMIN_EMAIL),
        org_admin_token=user_token(jwt_secret, DEMO_ORG_ADMIN_USER_ID, DEMO_ORG_ADMIN_EMAIL),
        coordinator_token=user_token(jwt_secret, DEMO_COORDINATOR_USER_ID, DEMO_COORDINATOR_EMAIL),
        mentor_id=mentor_id,
        dynamics_client_secret=client_secret,
    )


def _seed_dynamics(
    conn: psycopg.Connection[Any], dynamics: DataverseStandIn, demo_members: int
) -> tuple[uuid.UUID, str]:
    """The demo organisation's Dynamics is the local stand-in, with one certified peer mentor
    who is visible on the (pretend) public website, and `demo_members` contacts with
    memberships that only an import brings into the app."""
    client_secret = secrets.token_urlsafe(24)
    dynamics.add_client(DEMO_DYNAMICS_TENANT, DEMO_DYNAMICS_CLIENT_ID, client_secret)
    put_secret(f"portal-sync/dynamics/{DEMO_ORG_ID}", {"secret": client_secret})
    conn.execute(
        """
        update integration_configs set dynamics_base_url = %s,
               dynamics_auth_type = 'oauth_client_credentials', dynamics_tenant_id = %s,
               dynamics_client_id = %s, dynamics_credentials_fingerprint = %s,
               dynamics_credentials_updated_at = now(), website_visibility_column = %s
         where organization_id = %s
        """,
        (
            dynamics.url,
            DEMO_DYNAMICS_TENANT,
            DEMO_DYNAMICS_CLIENT_ID,
            hashlib.sha256(client_secret.encode()).hexdigest()[:12],
            VISIBILITY_COLUMN,
            DEMO_ORG_ID,
        ),
    )
    row = conn.execute(
        "insert into profiles (dynamics_contact_id, first_name, last_name) values (%s, 'Demo', 'Mentor')"
        " on conflict (dynamics_contact_id) do update set updated_at = now() returning id",
        (DEMO_MENTOR_CONTACT_ID,),
    ).fetchone()
    assert row is not None
    conn.execute(
        "insert into organization_memberships (organization_id, profile_id, role)"
        " values (%s, %s, 'peer_mentor') on conflict (organization_id, profile_id) do nothing",
        (DEMO_ORG_ID, row[0]),
    )
    conn.execute(
        """
        insert into peer_mentor_status (organization_id, profile_id, certified_until,
            website_visible_desired, website_visible_applied, sync_state, last_synced_at)
        values (%s, %s, current_date + 365, true, true, 'in_sync', now())
        on conflict do nothing
        """,
        (DEMO_ORG_ID, row[0]),
    )
    if dynamics.contact(DEMO_MENTOR_CONTACT_ID) is None:
        dynamics.add_contact(
            DEMO_MENTOR_CONTACT_ID, firstname="Demo", lastname="Mentor", **{VISIBILITY_COLUMN: True}
        )
        # Dynamics holds the mentor's membership too, as the app does (an import agrees).
        dynamics.add_row(
            "hlf_memberships",
            DEMO_MENTOR_MEMBERSHIP_ID,
            {"hlf_role": ROLE_PEER_MENTOR},
            lookups={"hlf_contactid": ("contact", DEMO_MENTOR_CONTACT_ID, "Demo Mentor")},
        )
    if demo_members and len(dynamics.rows("contacts")) <= 1:
        # The members HLF's environment already has, for an import to bring into the app.
        dynamics.load_members(demo_members)
    mentor_id: uuid.UUID = row[0]
    return mentor_id, client_secret
