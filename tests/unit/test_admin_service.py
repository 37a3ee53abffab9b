"""The admin services against in-memory fakes of their ports: who may read and change what,
and what a change does to the secrets, the queue and the audit log, without PostgreSQL, AWS or
HTTP (the same routes end to end: tests/integration/test_admin_api.py)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from portal_sync.access.authority import Authority, Forbidden
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.audit_log import AuditTrail
from portal_sync.admin.errors import Conflict, InvalidSettings, NotFound
from portal_sync.admin.health import WebhookHealthReport
from portal_sync.admin.integration_settings import IntegrationSettings
from portal_sync.admin.integrations import Integrations, fingerprint
from portal_sync.admin.members import Members
from portal_sync.admin.models import (
    IntegrationUpdate,
    OrganizationCreate,
    RotateSecretRequest,
)
from portal_sync.admin.onboarding import Onboarding
from portal_sync.admin.ports import (
    DeliveryAttempt,
    IntegrationChanges,
    IntegrationRecord,
    NewIntegration,
    Page,
    ReceiptCounts,
)
from portal_sync.admin.sync_log import SyncLog
from portal_sync.admin.sync_runs import SyncRuns
from portal_sync.admin.webhook_secrets import WebhookSecrets
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.signature import parse_signed_headers, signature_matches
from portal_sync.inbound.source_config import SignatureMode, SigningKey, SourceConfig
from portal_sync.reconciliation.ports import Phase, RunKind
from reconciliation_fakes import FakeStore

BASE_URL = "https://api.example.org"
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# -- fakes of the ports ----------------------------------------------------------------------------


def record(organization_id: UUID, source_id: str, **values: Any) -> IntegrationRecord:
    """An integration as the migrations' defaults leave it."""
    defaults: dict[str, Any] = {
        "enabled": True,
        "signature_mode": SignatureMode.STANDARD_WEBHOOKS,
        "header_name": "x-portal-sync-key",
        "dataverse_organization_id": None,
        "application_user_ids": [],
        "field_mapping": None,
        "feature_ownership": {},
        "deep_links": {},
        "website_visibility_column": "hlf_showonwebsite",
        "dynamics_base_url": None,
        "dynamics_auth_type": None,
        "dynamics_tenant_id": None,
        "dynamics_client_id": None,
        "dynamics_credentials_fingerprint": None,
        "dynamics_credentials_updated_at": None,
        "updated_at": START,
    }
    return IntegrationRecord(
        organization_id=organization_id, source_id=source_id, **{**defaults, **values}
    )


@dataclass
class FakeRepository:
    """AdminRepository in memory: organisations, their integrations, roles, the audit log, the
    sync log, receipts and the members' Dynamics environments."""

    integrations: dict[UUID, IntegrationRecord] = field(default_factory=dict)
    organizations: set[UUID] = field(default_factory=set)
    platform_admins: set[UUID] = field(default_factory=set)
    roles: dict[UUID, dict[UUID, str]] = field(default_factory=dict)  # user -> org -> role
    audited: list[tuple[UUID | None, str, str, dict[str, Any]]] = field(default_factory=list)
    events: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    payloads: dict[tuple[UUID, str], str] = field(default_factory=dict)
    environments: dict[UUID, str] = field(default_factory=dict)  # profile -> environment
    member_rows: dict[UUID, list[dict[str, Any]]] = field(default_factory=dict)

    def authority(self, user_id: UUID) -> Authority:
        return Authority(user_id in self.platform_admins, dict(self.roles.get(user_id, {})))

    def organization_exists(self, organization_id: UUID) -> bool:
        return organization_id in self.organizations

    def integration(self, organization_id: UUID) -> IntegrationRecord | None:
        return self.integrations.get(organization_id)

    def update_integration(self, organization_id: UUID, changes: IntegrationChanges) -> None:
        self.integrations[organization_id] = self.integrations[organization_id].changed(changes)

    def source_owner(self, source_id: str) -> UUID | None:
        return next(
            (org for org, rec in self.integrations.items() if rec.source_id == source_id), None
        )

    def create_organization(self, name: str, source_id: str, integration: NewIntegration) -> UUID:
        organization_id = uuid.uuid4()
        self.organizations.add(organization_id)
        self.integrations[organization_id] = record(
            organization_id,
            source_id,
            enabled=integration.enabled,
            signature_mode=integration.signature_mode,
            field_mapping=integration.field_mapping,
            feature_ownership=integration.feature_ownership,
            deep_links=integration.deep_links,
            dataverse_organization_id=integration.dataverse_organization_id,
        )
        return organization_id

    def organizations_on_dataverse(self, dataverse_organization_id: str) -> list[UUID]:
        return [
            org
            for org, rec in self.integrations.items()
            if (rec.dataverse_organization_id or "").lower() == dataverse_organization_id.lower()
        ]

    def move_members(self, from_environment: str, to_environment: str) -> int:
        moving = [p for p, env in self.environments.items() if env == from_environment]
        for profile in moving:
            self.environments[profile] = to_environment
        return len(moving)

    def audit(
        self, organization_id: UUID | None, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        self.audited.append((organization_id, actor, action, details))

    def audit_log(self, organization_id: UUID, limit: int, cursor: str | None) -> Page:
        rows = [
            {"id": uuid.uuid4(), "actor": a, "action": x, "details": d, "created_at": START}
            for org, a, x, d in reversed(self.audited)
            if org == organization_id
        ]
        return Page(rows[:limit], None)

    def sync_summary(self, organization_id: UUID, since: datetime) -> dict[str, Any]:
        # No sync log here (tests/integration/test_admin_api.py has the real one's figures).
        return {
            "last_processed_at": None,
            "last_success_at": None,
            "pending": 0,
            "failed": 0,
            "last_24h": {},
        }

    def sync_events(self, organization_id: UUID, **_: Any) -> Page:
        raise NotImplementedError

    def sync_event(self, organization_id: UUID, id: UUID) -> dict[str, Any] | None:
        event = self.events.get(id)
        return event if event and event["organization_id"] == organization_id else None

    def kept_payload(self, organization_id: UUID, event_id: str) -> str | None:
        return self.payloads.get((organization_id, event_id))

    def receipt_counts(self, organization_id: UUID, since: datetime) -> ReceiptCounts:
        return ReceiptCounts({}, {})

    def last_receipt_at(self, organization_id: UUID, outcomes: tuple[str, ...]) -> None:
        return None

    def members(self, organization_id: UUID, limit: int, cursor: str | None) -> Page:
        return Page(self.member_rows.get(organization_id, [])[:limit], None)

    def contact_of(self, organization_id: UUID, user_id: UUID) -> str | None:
        return None


@dataclass
class FakeVault:
    """Secrets Manager: the sources the ingest verifies with, and Dynamics credentials."""

    sources: dict[str, SourceConfig] = field(default_factory=dict)
    credentials: dict[UUID, str] = field(default_factory=dict)

    def read_source(self, source_id: str) -> SourceConfig | None:
        return self.sources.get(source_id)

    def write_source(self, config: SourceConfig) -> None:
        self.sources[config.source_id] = config

    def delete_source(self, source_id: str) -> None:
        self.sources.pop(source_id, None)

    def write_dynamics_credentials(self, organization_id: UUID, secret: str) -> None:
        self.credentials[organization_id] = secret


@dataclass
class FakeRequeue:
    """The event queue and its dead-letter queue: parked holds each parked message's event."""

    sent: list[str] = field(default_factory=list)
    parked: list[tuple[UUID, str]] = field(default_factory=list)

    def send(self, message_body: str) -> None:
        self.sent.append(message_body)

    def remove_parked(self, organization_id: UUID, event_id: str) -> int:
        mine = [p for p in self.parked if p == (organization_id, event_id)]
        self.parked = [p for p in self.parked if p != (organization_id, event_id)]
        return len(mine)


@dataclass
class FakeSender:
    """The endpoint: answers `status_code`, and remembers what it was sent."""

    status_code: int | None = 202
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def post(self, url: str, headers: dict[str, str], body: bytes) -> DeliveryAttempt:
        self.posts.append((url, headers, body))
        error = "ConnectError" if self.status_code is None else None
        return DeliveryAttempt(self.status_code, error)


# -- a world of two organisations ------------------------------------------------------------------


@dataclass
class World:
    repo: FakeRepository
    vault: FakeVault
    requeue: FakeRequeue
    sender: FakeSender
    runs: FakeStore
    org: UUID
    other_org: UUID
    platform_admin: Caller
    org_admin: Caller
    coordinator: Caller
    other_admin: Caller
    now: datetime = START

    def clock(self) -> datetime:
        return self.now

    def services(self) -> Services:
        """One request's services, wired as bootstrap/admin_api.py wires them."""
        access = AdminAccess(self.repo)
        integrations = Integrations(
            self.repo, self.vault, public_base_url=BASE_URL, clock=self.clock
        )
        runs = SyncRuns(access, self.repo, self.runs, self.repo, clock=self.clock)
        settings = IntegrationSettings(
            access, integrations, self.repo, self.repo, self.vault, runs, clock=self.clock
        )
        return Services(
            settings=settings,
            secrets=WebhookSecrets(
                access, integrations, self.repo, self.vault, self.sender, clock=self.clock
            ),
            sync_log=SyncLog(access, self.repo, self.repo, self.requeue, runs, clock=self.clock),
            health=WebhookHealthReport(access, integrations, self.repo, clock=self.clock),
            onboarding=Onboarding(access, integrations, self.repo, self.repo, self.vault, settings),
            members=Members(access, integrations, self.repo),
            audit_log=AuditTrail(access, self.repo),
            runs=runs,
        )

    def actions(self, organization_id: UUID) -> list[str]:
        return [action for org, _, action, _ in self.repo.audited if org == organization_id]


@dataclass
class Services:
    settings: IntegrationSettings
    secrets: WebhookSecrets
    sync_log: SyncLog
    health: WebhookHealthReport
    onboarding: Onboarding
    members: Members
    audit_log: AuditTrail
    runs: SyncRuns


def user(repo: FakeRepository, **roles: tuple[UUID, str]) -> Caller:
    caller = Caller(uuid.uuid4())
    repo.roles[caller.user_id] = dict(roles.values())
    return caller


def member_row(first_name: str) -> dict[str, Any]:
    return {
        "profile_id": uuid.uuid4(),
        "dynamics_contact_id": str(uuid.uuid4()),
        "first_name": first_name,
        "last_name": None,
        "email": None,
        "phone": None,
        "role": "member",
        "status": "active",
        "last_synced_at": START,
    }


@pytest.fixture
def world() -> World:
    repo, vault = FakeRepository(), FakeVault()
    org, other = uuid.uuid4(), uuid.uuid4()
    for organization_id, source_id in ((org, "hlf-oslo"), (other, "hlf-bergen")):
        repo.organizations.add(organization_id)
        repo.integrations[organization_id] = record(organization_id, source_id)
        vault.sources[source_id] = SourceConfig(
            source_id=source_id,
            organization_id=organization_id,
            keys=[SigningKey(value=f"whsec_{source_id}-key", created_at=START)],
        )
    platform_admin = Caller(uuid.uuid4())
    repo.platform_admins.add(platform_admin.user_id)
    return World(
        repo,
        vault,
        FakeRequeue(),
        FakeSender(),
        FakeStore(),
        org,
        other,
        platform_admin,
        org_admin=user(repo, org=(org, "admin")),
        coordinator=user(repo, org=(org, "coordinator")),
        other_admin=user(repo, org=(other, "admin")),
    )


# -- access --------------------------------------------------------------------------------------------


def test_an_org_admin_reads_and_updates_only_their_own_organisation(world: World) -> None:
    admin = world.services()
    other_before = world.repo.integrations[world.other_org]

    own = admin.settings.update(world.org_admin, world.org, IntegrationUpdate(enabled=False))

    assert own.enabled is False and world.repo.integrations[world.org].enabled is False
    assert admin.settings.get(world.org_admin, world.org).enabled is False
    with pytest.raises(Forbidden):
        admin.settings.get(world.org_admin, world.other_org)
    with pytest.raises(Forbidden):
        admin.settings.update(world.org_admin, world.other_org, IntegrationUpdate(enabled=False))
    assert world.repo.integrations[world.other_org] == other_before
    assert world.vault.sources["hlf-bergen"].enabled is True
    assert world.actions(world.org) == ["integration.updated"]
    assert world.actions(world.other_org) == []


def test_a_coordinator_reads_the_members_but_cannot_see_or_change_settings(world: World) -> None:
    world.repo.member_rows[world.org] = [member_row("Kari")]
    admin = world.services()

    page = admin.members.members(world.coordinator, world.org, limit=10, cursor=None)

    assert [member.first_name for member in page.items] == ["Kari"]
    with pytest.raises(Forbidden):
        admin.settings.get(world.coordinator, world.org)
    with pytest.raises(Forbidden):
        admin.settings.update(world.coordinator, world.org, IntegrationUpdate(enabled=False))
    with pytest.raises(Forbidden):
        admin.secrets.rotate(world.coordinator, world.org, RotateSecretRequest())
    assert world.repo.integrations[world.org].enabled is True
    assert world.repo.audited == []


def test_only_callers_with_access_learn_that_an_organisation_does_not_exist(world: World) -> None:
    missing = uuid.uuid4()
    admin = world.services()

    with pytest.raises(Forbidden):
        admin.sync_log.reprocess(world.org_admin, missing, uuid.uuid4())
    with pytest.raises(NotFound, match="No such organisation"):
        admin.sync_log.reprocess(world.platform_admin, missing, uuid.uuid4())


# -- integration settings ------------------------------------------------------------------------------


def test_a_platform_admin_alone_changes_the_dynamics_environment(world: World) -> None:
    environment = str(uuid.uuid4())
    profile = uuid.uuid4()
    world.repo.environments[profile] = member_environment(world.org, None)
    admin = world.services()
    change = IntegrationUpdate.model_validate({"dataverse_organization_id": environment})

    with pytest.raises(Forbidden, match="Only platform administrators"):
        admin.settings.update(world.org_admin, world.org, change)
    assert world.repo.integrations[world.org].dataverse_organization_id is None
    assert world.repo.environments[profile] == f"organization:{world.org}"

    bound = admin.settings.update(world.platform_admin, world.org, change)

    assert bound.dataverse_organization_id == environment
    # The organisation's members follow it to the environment.
    assert world.repo.environments[profile] == environment
    [(_, _, _, details)] = world.repo.audited
    assert details["members_moved"] == 1
    # Sending the value it already has is no change: its own admin may.
    same = IntegrationUpdate.model_validate(
        {"dataverse_organization_id": environment.upper(), "enabled": True}
    )
    assert world.services().settings.update(world.org_admin, world.org, same).enabled is True


def test_an_api_key_is_refused_for_dynamics_itself_and_kept_for_a_gateway(world: World) -> None:
    # Dynamics accepts only Entra bearer tokens: API-key mode is for a gateway in front of it.
    admin = world.services()

    def connect(**dynamics: Any) -> Any:
        return admin.settings.update(
            world.org_admin, world.org, IntegrationUpdate.model_validate({"dynamics": dynamics})
        )

    for host in ("https://hlf.crm4.dynamics.com", "https://hlf.crm.microsoftdynamics.us"):
        with pytest.raises(InvalidSettings) as refused:
            connect(base_url=host, auth_type="api_key", api_key="k" * 20)
        ((path, message),) = refused.value.errors
        assert path == "dynamics.auth_type" and "gateway" in message
    assert world.vault.credentials == {}

    default = connect(base_url="https://hlf-api.azure-api.net", auth_type="api_key", api_key="k")
    assert default.dynamics is not None
    assert default.dynamics.api_key_header == "Ocp-Apim-Subscription-Key"
    custom = connect(
        base_url="https://hlf-api.azure-api.net", auth_type="api_key", api_key_header="X-Key"
    )
    assert custom.dynamics is not None and custom.dynamics.api_key_header == "X-Key"
    assert world.repo.integrations[world.org].dynamics_api_key_header == "X-Key"


def test_the_learned_application_user_is_shown_and_forgotten_with_other_credentials(
    world: World,
) -> None:
    admin = world.services()
    oauth = {
        "base_url": "https://hlf.crm4.dynamics.com",
        "auth_type": "oauth_client_credentials",
        "tenant_id": "tenant-1",
        "client_id": "client-1",
    }

    def connect(**extra: Any) -> Any:
        update = IntegrationUpdate.model_validate({"dynamics": {**oauth, **extra}})
        return admin.settings.update(world.org_admin, world.org, update)

    connect(client_secret="s1")
    learned = "5e0a9b7c-1d2e-4f30-8a41-b2c3d4e5f607"
    world.repo.integrations[world.org] = world.repo.integrations[world.org].changed(
        {"dynamics_application_user_id": learned, "dynamics_application_user_learned_at": START}
    )  # as the website delivery stores it (WhoAmI)

    kept = connect()  # the same connection: the same application user
    assert kept.dynamics is not None and kept.dynamics.application_user_id == learned
    assert kept.dynamics.application_user_learned_at == START
    assert kept.dynamics.api_key_header is None  # OAuth: no key header

    replaced = connect(client_secret="s2")  # other credentials may act as another user
    assert replaced.dynamics is not None and replaced.dynamics.application_user_id is None


def test_a_changed_dynamics_url_requires_the_credentials_again(world: World) -> None:
    admin = world.services()

    def connect(**dynamics: Any) -> Any:
        return admin.settings.update(
            world.org_admin, world.org, IntegrationUpdate.model_validate({"dynamics": dynamics})
        )

    key = "api-key-" + uuid.uuid4().hex
    first = connect(base_url="https://api.hlf.no", auth_type="api_key", api_key=key)
    stored = world.repo.integrations[world.org]

    with pytest.raises(InvalidSettings) as refused:
        connect(base_url="https://collector.attacker.example.com", auth_type="api_key")

    assert refused.value.errors == [
        (
            "dynamics.api_key",
            "is required again: the base URL changed, and the stored credentials are only "
            "sent where they were entered for",
        )
    ]
    assert world.repo.integrations[world.org] == stored
    assert world.vault.credentials == {world.org: key}
    # The same origin, written differently, keeps the stored key.
    again = connect(base_url="https://API.hlf.no/", auth_type="api_key")
    assert again.dynamics is not None and first.dynamics is not None
    assert again.dynamics.credentials.fingerprint == first.dynamics.credentials.fingerprint
    assert again.dynamics.credentials.fingerprint == fingerprint(key)
    # Audited as replaced, never with the key itself.
    assert key not in json.dumps([details for *_, details in world.repo.audited])


def test_a_new_source_id_takes_the_keys_along_and_a_taken_one_conflicts(world: World) -> None:
    admin = world.services()
    keys = world.vault.sources["hlf-oslo"].keys

    moved = admin.settings.update(
        world.org_admin, world.org, IntegrationUpdate(source_id="hlf-oslo-dataverse")
    )

    assert moved.webhook_url == f"{BASE_URL}/functions/v1/portal-webhook/hlf-oslo-dataverse"
    assert world.vault.sources["hlf-oslo-dataverse"].keys == keys
    assert "hlf-oslo" not in world.vault.sources
    with pytest.raises(Conflict, match="used by another organisation"):
        admin.settings.update(world.org_admin, world.org, IntegrationUpdate(source_id="hlf-bergen"))
    assert world.repo.integrations[world.org].source_id == "hlf-oslo-dataverse"


def test_settings_that_always_have_a_value_cannot_be_set_to_null(world: World) -> None:
    with pytest.raises(InvalidSettings) as refused:
        world.services().settings.update(
            world.org_admin,
            world.org,
            IntegrationUpdate.model_validate({"enabled": None, "source_id": None}),
        )

    assert [path for path, _ in refused.value.errors] == ["enabled", "source_id"]
    assert world.repo.integrations[world.org].enabled is True


# -- webhook secrets -----------------------------------------------------------------------------------


def test_rotating_a_secret_keeps_the_old_key_for_the_grace_period(world: World) -> None:
    old_key = world.vault.sources["hlf-oslo"].keys[0].value

    rotated = world.services().secrets.rotate(
        world.org_admin, world.org, RotateSecretRequest(grace_period_hours=2)
    )

    source = world.vault.sources["hlf-oslo"]
    assert source.active_keys(START) == [rotated.secret, old_key]
    assert source.active_keys(START + timedelta(hours=2)) == [rotated.secret]
    assert rotated.previous_valid_until == START + timedelta(hours=2)
    view = world.services().settings.get(world.org_admin, world.org)
    assert view.webhook_secret.fingerprint == rotated.fingerprint == fingerprint(rotated.secret)
    assert view.webhook_secret.previous_valid_until == START + timedelta(hours=2)
    [(_, _, action, details)] = world.repo.audited
    assert action == "webhook_secret.rotated" and rotated.secret not in json.dumps(details)


def test_rotating_without_a_grace_period_retires_the_old_key_at_once(world: World) -> None:
    rotated = world.services().secrets.rotate(
        world.org_admin, world.org, RotateSecretRequest(grace_period_hours=0)
    )

    assert world.vault.sources["hlf-oslo"].active_keys(START) == [rotated.secret]
    assert rotated.previous_valid_until is None


def test_the_secret_test_sends_a_delivery_the_ingest_can_verify(world: World) -> None:
    result = world.services().secrets.test(world.org_admin, world.org)

    [(url, headers, body)] = world.sender.posts
    assert url == f"{BASE_URL}/functions/v1/portal-webhook/hlf-oslo"
    assert signature_matches(parse_signed_headers(headers), body, ["whsec_hlf-oslo-key"])
    assert json.loads(body)["type"] == "webhook.test"
    assert result.verified is True and "verified" in result.message
    assert world.actions(world.org) == ["webhook_secret.tested"]


def test_the_secret_test_without_a_secret_sends_nothing(world: World) -> None:
    world.vault.sources["hlf-oslo"] = world.vault.sources["hlf-oslo"].model_copy(
        update={"keys": []}
    )

    result = world.services().secrets.test(world.org_admin, world.org)

    assert world.sender.posts == []
    assert result.verified is False and "rotate one first" in result.message


# -- the sync log --------------------------------------------------------------------------------------


def failed_event(world: World, status: str = "error", kept: bool = True) -> UUID:
    id = uuid.uuid4()
    event_id = f"msg_{id.hex[:8]}"
    world.repo.events[id] = {"organization_id": world.org, "event_id": event_id, "status": status}
    if kept:
        world.repo.payloads[(world.org, event_id)] = json.dumps({"event_id": event_id})
    return id


def test_reprocessing_a_parked_event_requeues_it_once(world: World) -> None:
    id = failed_event(world)
    event_id = world.repo.events[id]["event_id"]
    world.requeue.parked = [(world.org, event_id), (world.other_org, "msg_theirs")]

    result = world.services().sync_log.reprocess(world.org_admin, world.org, id)

    assert world.requeue.sent == [world.repo.payloads[(world.org, event_id)]]
    assert result.removed_from_dead_letter_queue == 1 and result.status == "queued"
    assert world.requeue.parked == [(world.other_org, "msg_theirs")]
    [(_, actor, action, details)] = world.repo.audited
    assert (actor, action) == (world.org_admin.actor, "sync_event.reprocessed")
    assert details == {"event_id": event_id, "removed_from_dead_letter_queue": 1}


def test_only_failed_events_with_a_kept_original_are_reprocessed(world: World) -> None:
    admin = world.services()
    succeeded, unkept = failed_event(world, status="success"), failed_event(world, kept=False)

    with pytest.raises(Conflict, match="this one is success"):
        admin.sync_log.reprocess(world.org_admin, world.org, succeeded)
    with pytest.raises(Conflict, match="was not kept"):
        admin.sync_log.reprocess(world.org_admin, world.org, unkept)
    with pytest.raises(NotFound):
        # Another organisation's event is not found through this one.
        admin.sync_log.reprocess(world.other_admin, world.other_org, succeeded)
    assert world.requeue.sent == [] and world.repo.audited == []


# -- onboarding ----------------------------------------------------------------------------------------


def test_onboarding_is_for_platform_admins_and_starts_without_a_secret(world: World) -> None:
    admin = world.services()
    with pytest.raises(Forbidden):
        admin.onboarding.create_organization(world.org_admin, OrganizationCreate(name="Sneaky"))
    assert len(world.repo.organizations) == 2

    created = admin.onboarding.create_organization(
        world.platform_admin, OrganizationCreate(name="HLF Bergen Nord")
    )

    source_id = created.integration.source_id
    assert source_id.startswith("hlf-bergen-nord-")
    assert world.vault.sources[source_id].keys == []
    assert created.integration.webhook_secret.configured is False
    assert created.integration.feature_ownership["courses"] == "portal"
    assert world.actions(created.id) == ["organization.created"]
    with pytest.raises(Conflict, match="already in use"):
        admin.onboarding.create_organization(
            world.platform_admin, OrganizationCreate(name="Again", source_id=source_id)
        )


# -- imports and reconciliations ------------------------------------------------------------------

CONNECTION = {
    "base_url": "https://hlf.crm4.dynamics.com",
    "auth_type": "oauth_client_credentials",
    "tenant_id": "tenant",
    "client_id": "client",
    "client_secret": "s" * 20,
}


def connect(world: World, **changes: Any) -> Any:
    return world.services().settings.update(
        world.org_admin, world.org, IntegrationUpdate.model_validate(changes)
    )


def test_connecting_dynamics_imports_the_members_and_another_url_forgets_the_delta_links(
    world: World,
) -> None:
    connect(world, dynamics=CONNECTION)
    [first] = world.runs.db.runs.values()
    assert (first.kind.value, first.trigger.value) == ("import", "connection_changed")
    assert any(details.get("import_started") == str(first.id) for *_, details in world.repo.audited)
    world.runs.db.runs[first.id].phase = Phase.SUCCEEDED
    world.runs.db.delta_links[(world.org, "contact")] = "https://hlf.crm4.dynamics.com/delta"

    connect(world, enabled=False)  # nothing to import while disabled, nor for other settings
    connect(world, signature_mode="header-key")
    assert len(world.runs.db.runs) == 1
    connect(world, dynamics={**CONNECTION, "base_url": "https://hlf2.crm4.dynamics.com"})
    assert world.runs.db.delta_links == {}  # never asked of another environment
    assert len(world.runs.db.runs) == 1  # disabled: not imported yet

    connect(world, enabled=True)
    second = [r for r in world.runs.db.runs.values() if r.id != first.id]
    assert [r.trigger.value for r in second] == ["enabled"]


def test_an_admin_starts_a_run_once_at_a_time_and_only_with_a_connection(world: World) -> None:
    admin = world.services()
    with pytest.raises(Conflict, match="No Dynamics connection"):
        admin.runs.start(world.org_admin, world.org, RunKind.IMPORT)
    connect(world, dynamics=CONNECTION)  # starts an import
    admin = world.services()

    with pytest.raises(Conflict, match="full import of this organisation is running"):
        admin.runs.start(world.org_admin, world.org, RunKind.RECONCILE)
    for run in world.runs.db.runs.values():
        run.phase = Phase.SUCCEEDED
    # Never read yet (no delta link): a reconciliation has nothing to compare with.
    first = admin.runs.start(world.org_admin, world.org, RunKind.RECONCILE)
    assert first.kind == "import"
    world.runs.db.runs[first.id].phase = Phase.SUCCEEDED
    world.runs.db.delta_links[(world.org, "contact")] = "https://hlf.crm4.dynamics.com/delta"
    admin.runs.started.clear()
    started = admin.runs.start(world.org_admin, world.org, RunKind.RECONCILE)

    assert started.kind == "reconcile" and started.phase == "running"
    assert [r.id for r in admin.runs.started] == [started.id]  # its execution starts after commit
    assert "sync.reconcile.started" in world.actions(world.org)
    with pytest.raises(Forbidden):
        admin.runs.start(world.other_admin, world.org, RunKind.IMPORT)
    with pytest.raises(Forbidden):
        admin.runs.start(world.coordinator, world.org, RunKind.IMPORT)
    connect(world, enabled=False)
    with pytest.raises(Conflict, match="disabled"):
        world.services().runs.start(world.org_admin, world.org, RunKind.IMPORT)


def test_sync_status_shows_the_last_import_and_reconciliation_and_the_next_one(
    world: World,
) -> None:
    status = world.services().sync_log.status(world.org_admin, world.org)
    assert status.full_import is None and status.reconciliation is None
    connect(world, dynamics=CONNECTION)

    status = world.services().sync_log.status(world.org_admin, world.org)
    assert status.full_import is not None and status.full_import.phase == "running"
    assert status.reconciliation is None
    assert status.next_reconciliation_at == START + timedelta(minutes=15)
    world.runs.schedule = replace(world.runs.schedule, enabled=False)
    assert (
        world.services().sync_log.status(world.org_admin, world.org).next_reconciliation_at is None
    )
