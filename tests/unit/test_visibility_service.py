"""VisibilityService against in-memory fakes of its ports (docs/website-visibility.md): what
coordinators may change, the outbox row each change leaves, and how a delivery attempt ends.
The same flow against PostgreSQL, Step Functions and the Dataverse stand-in is
tests/integration/test_website_sync.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from portal_sync.access.authority import Authority, Forbidden
from portal_sync.access.caller import Caller
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.visibility.delivery import (
    REJECTED_ERROR,
    RETRYABLE_ERROR,
    THROTTLED_ERROR,
    ExecutionFailure,
    RetryPolicy,
)
from portal_sync.visibility.ports import (
    Change,
    DynamicsSettings,
    DynamicsTarget,
    MentorStatus,
    OutOfStep,
)
from portal_sync.visibility.rules import desired_visibility
from portal_sync.visibility.service import MentorNotFound, VisibilityConflict, VisibilityService

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORG = UUID("00000000-0000-0000-0000-00000000000a")
OTHER_ORG = UUID("00000000-0000-0000-0000-00000000000b")
MENTOR = UUID("00000000-0000-0000-0000-0000000000f1")
CONTACT = "6f1c2e8a-0000-0000-0000-000000000001"
COLUMN = "hlf_showonwebsite"
COORDINATOR = Caller(uuid.uuid4())
MEMBER = Caller(uuid.uuid4())
OTHER_COORDINATOR = Caller(uuid.uuid4())
STAFF_OF_BOTH = Caller(uuid.uuid4())


def dynamics_failure(kind: FailureKind, **facts: Any) -> DynamicsError:
    return DynamicsError(kind, Operation.UPDATE_CONTACT, **facts)


@dataclass
class LogEntry:
    profile_id: UUID
    action: str
    message: str
    actor: str
    change_id: UUID | None


@dataclass
class FakeRepository:
    """The VisibilityRepository, as PostgresVisibilityRepository behaves, in memory."""

    mentors: dict[tuple[UUID, UUID], MentorStatus] = field(default_factory=dict)
    changes: dict[UUID, Change] = field(default_factory=dict)
    dispatched: dict[UUID, str | None] = field(default_factory=dict)
    dispatch_errors: dict[UUID, str | None] = field(default_factory=dict)
    entries: list[LogEntry] = field(default_factory=list)
    blocked: dict[UUID, datetime] = field(default_factory=dict)
    settings: dict[UUID, DynamicsSettings] = field(default_factory=dict)
    audited: list[tuple[UUID, str, str, dict[str, Any]]] = field(default_factory=list)
    # What the database trigger asked about, oldest first.
    reconsiderations: list[tuple[UUID, UUID]] = field(default_factory=list)
    # Organisations with a Dynamics connection, as due_redeliveries filters on.
    connected: set[UUID] = field(default_factory=lambda: {ORG, OTHER_ORG})
    # The open outage of each organisation: its cause and the mentors that joined it.
    outages: dict[UUID, tuple[str, set[UUID]]] = field(default_factory=dict)

    def add_mentor(self, organization_id: UUID = ORG, **changes: Any) -> MentorStatus:
        """An active, certified mentor, shown on the website and in sync."""
        status = MentorStatus(
            organization_id=organization_id,
            profile_id=MENTOR,
            contact_id=CONTACT,
            membership_active=True,
            paused=False,
            hidden_manually=False,
            certified_until=TODAY + timedelta(days=365),
            desired=True,
            applied=True,
            sync_state="in_sync",
            current_change_id=None,
            attempts=0,
            last_synced_at=NOW - timedelta(days=1),
            last_error=None,
        )
        status = replace(status, **changes)
        self.mentors[(organization_id, status.profile_id)] = status
        return status

    def mentor(self, organization_id: UUID = ORG) -> MentorStatus:
        return self.mentors[(organization_id, MENTOR)]

    def log_of(self, action: str) -> list[LogEntry]:
        return [e for e in self.entries if e.action == action]

    # -- the port ---------------------------------------------------------------------------

    def mentor_organizations(self, profile_id: UUID) -> list[UUID]:
        return sorted(org for org, profile in self.mentors if profile == profile_id)

    def lock_mentor(self, organization_id: UUID, profile_id: UUID) -> MentorStatus | None:
        found = self.mentors.get((organization_id, profile_id))
        # A copy, as a row read from the database: only save_mentor changes what is stored.
        return replace(found) if found else None

    def save_mentor(self, status: MentorStatus) -> None:
        self.mentors[(status.organization_id, status.profile_id)] = replace(status)

    def add_change(
        self, organization_id: UUID, profile_id: UUID, desired: bool, reason: str
    ) -> UUID:
        change = Change(uuid.uuid4(), organization_id, profile_id, desired, reason)
        self.changes[change.id] = change
        return change.id

    def change(self, change_id: UUID) -> Change | None:
        return self.changes.get(change_id)

    def log(
        self,
        status: MentorStatus,
        action: str,
        message: str,
        actor: str,
        change_id: UUID | None = None,
    ) -> None:
        self.entries.append(LogEntry(status.profile_id, action, message, actor, change_id))

    def undispatched_changes(self, limit: int, older_than_seconds: float) -> list[Change]:
        return [c for c in self.changes.values() if self.dispatched.get(c.id) is None][:limit]

    def mark_dispatched(
        self, change_id: UUID, execution_arn: str | None, error: str | None
    ) -> None:
        self.dispatched[change_id] = execution_arn
        self.dispatch_errors[change_id] = error

    def mentors_out_of_step(self, today: date, limit: int) -> list[OutOfStep]:
        found = []
        for (org, profile), s in self.mentors.items():
            if desired_visibility(s.facts(), today) != s.desired:
                found.append(OutOfStep(org, profile, "facts"))
            elif s.sync_state == "in_sync" and s.applied != s.desired:
                found.append(OutOfStep(org, profile, "undelivered"))
        return found[:limit]

    def audit(
        self, organization_id: UUID, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        self.audited.append((organization_id, actor, action, details))

    def failed_mentors(self, organization_id: UUID, limit: int) -> list[UUID]:
        return [
            profile
            for (org, profile), status in self.mentors.items()
            if org == organization_id and status.sync_state == "failed"
        ][:limit]

    def take_reconsiderations(self, limit: int) -> list[tuple[UUID, UUID]]:
        taken, self.reconsiderations = (
            self.reconsiderations[:limit],
            self.reconsiderations[limit:],
        )
        return taken

    def due_redeliveries(self, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        due = [
            (status.next_attempt_at, key)
            for key, status in self.mentors.items()
            if status.next_attempt_at is not None
            and status.next_attempt_at <= now
            and status.sync_state != "in_sync"
            and key[0] in self.connected
        ]
        return [key for _, key in sorted(due)][:limit]

    def join_outage(self, organization_id: UUID, profile_id: UUID, cause: str) -> None:
        self.outages.setdefault(organization_id, (cause, set()))[1].add(profile_id)

    def blocked_until(self, organization_id: UUID) -> datetime | None:
        return self.blocked.get(organization_id)

    def block_until(self, organization_id: UUID, moment: datetime) -> None:
        self.blocked[organization_id] = max(moment, self.blocked.get(organization_id, moment))

    def dynamics_settings(self, organization_id: UUID) -> DynamicsSettings | None:
        return self.settings.get(organization_id)


@dataclass
class FakeTargets:
    configured: set[UUID] = field(default_factory=lambda: {ORG, OTHER_ORG})

    def target(self, organization_id: UUID) -> DynamicsTarget | None:
        if organization_id not in self.configured:
            return None
        connection = DynamicsConnection(
            base_url="https://hlf.crm4.dynamics.com",
            auth_type="oauth_client_credentials",
            secret="not-a-real-secret",
            tenant_id="tenant",
            client_id="client",
        )
        return DynamicsTarget(connection, COLUMN)


@dataclass
class FakeWriter:
    """Dynamics' contacts as the website sees them; `failures` are raised first, in order."""

    shown: dict[str, bool] = field(default_factory=dict)
    failures: list[DynamicsError] = field(default_factory=list)
    calls: int = 0

    def update_contact(
        self, connection: DynamicsConnection, contact_id: str, fields: dict[str, Any]
    ) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.shown[contact_id] = fields[COLUMN]


@dataclass
class FakeStarter:
    failing: bool = False
    started: list[UUID] = field(default_factory=list)

    def start(self, change: Change) -> str:
        if self.failing:
            raise ConnectionError("Step Functions is unreachable")
        self.started.append(change.id)
        return f"arn:aws:states:eu-north-1:000000000000:execution:website:{change.id}"


@dataclass
class Clock:
    now: datetime = NOW


@dataclass
class World:
    repo: FakeRepository
    writer: FakeWriter
    targets: FakeTargets
    clock: Clock
    service: VisibilityService

    def deliver(self) -> list[Any]:
        """What the state machine does with every change recorded so far: one attempt each."""
        return [self.service.apply(change_id) for change_id in list(self.repo.changes)]


def authority(user_id: UUID) -> Authority:
    roles = {
        COORDINATOR.user_id: {ORG: "coordinator"},
        MEMBER.user_id: {ORG: "member"},
        OTHER_COORDINATOR.user_id: {OTHER_ORG: "coordinator"},
        STAFF_OF_BOTH.user_id: {ORG: "coordinator", OTHER_ORG: "admin"},
    }
    return Authority(org_roles=roles.get(user_id, {}))


@pytest.fixture
def world() -> World:
    repo, writer, targets, clock = FakeRepository(), FakeWriter(), FakeTargets(), Clock()
    repo.add_mentor()
    writer.shown[CONTACT] = True
    service = VisibilityService(
        repo,
        authority=authority,
        targets=targets,
        writer=writer,
        today=lambda: TODAY,
        now=lambda: clock.now,
        retry=RetryPolicy(max_retries=2, interval_seconds=10),
    )
    return World(repo, writer, targets, clock, service)


# -- what coordinators do -----------------------------------------------------------------------


def test_pausing_hides_the_mentor_with_one_outbox_change_and_resuming_restores(
    world: World,
) -> None:
    paused = world.service.pause(COORDINATOR, MENTOR, None, paused=True)

    assert paused.desired is False and paused.sync_state == "pending"
    [change] = world.repo.changes.values()
    assert (change.desired, change.reason) == (False, "paused")
    assert world.repo.mentor().current_change_id == change.id
    [entry] = world.repo.log_of("paused")
    assert entry.message == "Desired state: hidden (the mentor is paused)"
    assert entry.actor == COORDINATOR.actor and entry.change_id == change.id
    assert world.deliver()[0].status == "applied"
    assert world.writer.shown[CONTACT] is False

    resumed = world.service.pause(COORDINATOR, MENTOR, None, paused=False)

    assert resumed.desired is True
    assert [c.desired for c in world.repo.changes.values()] == [False, True]
    assert [o.status for o in world.deliver()] == ["superseded", "applied"]
    assert world.writer.shown[CONTACT] is True
    assert world.repo.mentor().sync_state == "in_sync"


def test_a_request_that_changes_nothing_records_no_change(world: World) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    # Hiding a paused mentor changes what hides them, not whether they are shown.
    world.service.hide(COORDINATOR, MENTOR, None)

    assert len(world.repo.changes) == 1
    # Each request is still in the mentor's log, for audit.
    assert [e.action for e in world.repo.entries] == ["paused", "paused", "hidden"]


def test_sync_visibility_and_retry_record_a_change_even_when_nothing_changed(
    world: World,
) -> None:
    with pytest.raises(VisibilityConflict, match="already shows the desired state"):
        world.service.retry(COORDINATOR, MENTOR, None)  # in sync: nothing to retry
    assert world.repo.changes == {}

    synced = world.service.sync_visibility(COORDINATOR, MENTOR, None)

    assert synced.desired is True and synced.sync_state == "pending"
    world.repo.save_mentor(
        replace(world.repo.mentor(), sync_state="failed", attempts=4, last_error="Outage")
    )
    retried = world.service.retry(COORDINATOR, MENTOR, None)

    assert retried.sync_state == "pending" and retried.attempts == 0
    assert retried.last_error is None  # the new delivery has none yet
    assert [c.reason for c in world.repo.changes.values()] == ["sync_requested", "retry"]
    assert retried.current_change_id == list(world.repo.changes)[-1]


def test_restore_is_refused_while_paused_and_changes_nothing(world: World) -> None:
    world.service.hide(COORDINATOR, MENTOR, None)
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    before = world.repo.mentor()

    with pytest.raises(VisibilityConflict) as refused:
        world.service.restore(COORDINATOR, MENTOR, None)

    assert str(refused.value) == "The mentor cannot be shown on the website: the mentor is paused"
    assert world.repo.mentor() == before


def test_restore_is_refused_for_an_expired_certificate(world: World) -> None:
    world.service.certify(COORDINATOR, MENTOR, None, TODAY - timedelta(days=1))

    with pytest.raises(VisibilityConflict, match="the certificate expired on 2026-11-22"):
        world.service.restore(COORDINATOR, MENTOR, None)


def test_a_coordinator_hides_and_restores_a_mentor(world: World) -> None:
    hidden = world.service.hide(COORDINATOR, MENTOR, None)
    assert hidden.hidden_manually is True and hidden.desired is False

    restored = world.service.restore(COORDINATOR, MENTOR, None)

    assert restored.hidden_manually is False and restored.desired is True
    assert [c.desired for c in world.repo.changes.values()] == [False, True]


def test_a_renewed_certificate_shows_the_mentor_again(world: World) -> None:
    world.service.certify(COORDINATOR, MENTOR, None, None)
    assert world.repo.mentor().desired is False

    renewed = world.service.certify(COORDINATOR, MENTOR, None, TODAY + timedelta(days=30))

    assert renewed.desired is True and renewed.certified_until == TODAY + timedelta(days=30)
    removed, added = world.repo.log_of("certificate_updated")
    assert removed.message == "Desired state: hidden (no valid certificate is registered)"
    assert added.message == "Desired state: visible"


# -- who may change a mentor ----------------------------------------------------------------------


def test_a_coordinator_of_another_organisation_does_not_learn_of_the_mentor(
    world: World,
) -> None:
    with pytest.raises(MentorNotFound, match="No such peer mentor in your organisations"):
        world.service.pause(OTHER_COORDINATOR, MENTOR, None, paused=True)
    # Naming the mentor's organisation does not help.
    with pytest.raises(MentorNotFound):
        world.service.status(OTHER_COORDINATOR, MENTOR, ORG)

    assert world.repo.changes == {} and world.repo.entries == []


def test_a_plain_member_of_the_organisation_is_forbidden(world: World) -> None:
    with pytest.raises(Forbidden, match="Only coordinators and administrators"):
        world.service.hide(MEMBER, MENTOR, None)

    assert world.repo.mentor().hidden_manually is False and world.repo.changes == {}


def test_an_unknown_mentor_is_not_found(world: World) -> None:
    with pytest.raises(MentorNotFound):
        world.service.status(COORDINATOR, uuid.uuid4(), None)


def test_a_mentor_in_several_of_the_callers_organisations_needs_the_organisation(
    world: World,
) -> None:
    world.repo.add_mentor(OTHER_ORG)

    with pytest.raises(VisibilityConflict, match=r"add \?organization_id="):
        world.service.pause(STAFF_OF_BOTH, MENTOR, None, paused=True)

    paused = world.service.pause(STAFF_OF_BOTH, MENTOR, OTHER_ORG, paused=True)
    assert paused.organization_id == OTHER_ORG
    assert world.repo.mentor(ORG).paused is False


# -- delivery -------------------------------------------------------------------------------------


def test_a_delivery_writes_the_desired_state_and_records_it(world: World) -> None:
    world.service.hide(COORDINATOR, MENTOR, None)
    [change_id] = world.repo.changes

    outcome = world.service.apply(change_id)

    assert (outcome.status, outcome.message, outcome.error) == (
        "applied",
        "Mentor hidden from the website",
        None,
    )
    assert world.writer.shown[CONTACT] is False
    status = world.repo.mentor()
    assert (status.applied, status.sync_state, status.attempts) == (False, "in_sync", 1)
    assert status.last_synced_at == NOW and status.last_error is None
    [entry] = world.repo.log_of("applied")
    assert entry.actor == "system:website-sync" and entry.change_id == change_id


def test_a_429_with_retry_after_blocks_the_organisation_and_waits_for_it(
    world: World,
) -> None:
    error = dynamics_failure(FailureKind.THROTTLED, status_code=429, retry_after=60)
    world.writer.failures.append(error)
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes

    throttled = world.service.apply(change_id)

    # A status the state machine waits on, at least as long as Dynamics asked.
    assert (throttled.status, throttled.error) == ("retry", THROTTLED_ERROR)
    assert throttled.wait_seconds is not None and throttled.wait_seconds >= 60
    assert world.repo.blocked[ORG] == NOW + timedelta(seconds=60)
    assert world.repo.mentor().last_error == throttled.message == error.message
    # Another execution's attempt while Dynamics still asks to wait: nothing is sent, and it
    # is no attempt; it waits out the block (with jitter, so the held ones spread out).
    world.clock.now += timedelta(seconds=20)
    again = world.service.apply(change_id)
    assert (again.status, again.error, world.writer.calls) == ("retry", THROTTLED_ERROR, 1)
    assert again.message == "Dynamics asked us to slow down; waiting before trying again"
    assert again.wait_seconds is not None and 40 <= again.wait_seconds <= 50
    assert world.repo.mentor().attempts == 1


def test_a_non_retryable_dynamics_error_fails_at_once_with_its_message(world: World) -> None:
    error = dynamics_failure(FailureKind.NOT_FOUND, status_code=404)
    world.writer.failures.append(error)
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)

    [outcome] = world.deliver()

    assert (outcome.status, outcome.error) == ("failed", REJECTED_ERROR)
    status = world.repo.mentor()
    assert status.last_error == outcome.message == error.message
    assert status.sync_state == "pending" and status.attempts == 1
    [entry] = world.repo.log_of("attempt_failed")
    assert entry.message == error.message


def test_an_outage_is_retried_with_a_growing_jittered_wait_then_given_up(world: World) -> None:
    world.writer.failures.extend(
        dynamics_failure(FailureKind.UNAVAILABLE, status_code=503) for _ in range(3)
    )
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes

    # 1 + max_retries (2) attempts: two answer `retry`, the third gives up.
    outcomes = [world.service.apply(change_id) for _ in range(3)]

    assert [o.status for o in outcomes] == ["retry", "retry", "failed"]
    assert {o.error for o in outcomes} == {RETRYABLE_ERROR}
    first, second = (o.wait_seconds for o in outcomes[:2])
    assert first is not None and 1 <= first <= 10  # full jitter under 10 s * 2^0
    assert second is not None and 1 <= second <= 20  # ... under 10 s * 2^1
    assert world.repo.blocked == {}  # no Retry-After: only the back-off paces it
    assert world.writer.calls == 3


def test_the_back_off_is_capped_and_never_shorter_than_retry_after() -> None:
    policy = RetryPolicy(max_retries=20, interval_seconds=30)

    assert all(1 <= policy.wait_after(attempt) <= 900 for attempt in range(1, 21))
    assert policy.wait_after(1, retry_after=120) >= 120


def test_an_organisation_without_a_dynamics_connection_is_told_what_to_configure(
    world: World,
) -> None:
    world.targets.configured.clear()
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)

    [outcome] = world.deliver()

    # Not a failure (nobody is paged): the change waits for a connection, and says so.
    assert (outcome.status, outcome.error) == ("waiting", None)
    status = world.repo.mentor()
    assert status.sync_state == "pending" and status.next_attempt_at is not None
    assert NOW < status.next_attempt_at <= NOW + timedelta(minutes=1)
    assert status.last_error == (
        "Waiting for a Dynamics connection: configure it in the integration settings, and the "
        "change is delivered then"
    )
    assert world.writer.calls == 0


def test_a_mentor_without_a_contact_id_cannot_be_delivered(world: World) -> None:
    world.repo.save_mentor(replace(world.repo.mentor(), contact_id=None))
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)

    [outcome] = world.deliver()

    assert outcome.error == REJECTED_ERROR
    assert "no Dynamics contact id" in outcome.message
    assert world.writer.calls == 0


def test_a_superseded_change_is_not_delivered(world: World) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [first] = world.repo.changes
    world.service.pause(COORDINATOR, MENTOR, None, paused=False)

    outcome = world.service.apply(first)

    assert outcome.status == "superseded" and outcome.error is None
    assert world.writer.calls == 0


# -- when an execution gives up -------------------------------------------------------------------


def test_a_failed_current_change_marks_the_sync_failed_and_joins_the_outage(
    world: World,
) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes
    world.writer.failures.append(dynamics_failure(FailureKind.UNAVAILABLE, status_code=503))
    world.service.apply(change_id)

    recorded = world.service.record_failure(
        change_id, ExecutionFailure(RETRYABLE_ERROR, "Dynamics is unavailable")
    )

    assert recorded.current is True
    assert recorded.message == "Dynamics is unavailable"
    status = world.repo.mentor()
    assert status.sync_state == "failed"
    assert status.last_error is not None
    assert status.last_error.startswith("Dynamics is unavailable. Tried again automatically")
    # The first redelivery within a minute (jittered: half of it at least).
    assert status.next_attempt_at is not None
    assert NOW + timedelta(seconds=30) <= status.next_attempt_at <= NOW + timedelta(seconds=60)
    # On-call hears of it through the organisation's outage (visibility/outages.py).
    assert world.repo.outages == {ORG: ("Dynamics is unavailable", {MENTOR})}


def test_a_superseded_changes_failure_is_logged_and_joins_no_outage(world: World) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [first] = world.repo.changes
    world.service.pause(COORDINATOR, MENTOR, None, paused=False)

    recorded = world.service.record_failure(first, ExecutionFailure(RETRYABLE_ERROR, "Timed out"))

    assert recorded.current is False
    # The newer change is still awaited: the mentor's sync is not marked failed.
    assert world.repo.mentor().sync_state == "pending"
    assert world.repo.outages == {}
    [entry] = world.repo.log_of("failed")
    assert entry.change_id == first
    assert entry.message == "Timed out (superseded by a newer change, which is delivered instead)"


def test_a_failure_that_is_not_ours_is_named(world: World) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes

    recorded = world.service.record_failure(change_id, ExecutionFailure("States.Timeout", "boom"))

    assert world.repo.mentor().last_error.startswith(
        "The change could not be delivered (States.Timeout). Tried again automatically"
    )
    assert recorded.message == "The change could not be delivered (States.Timeout)"


def test_a_failure_of_an_unknown_change_changes_nothing(world: World) -> None:
    recorded = world.service.record_failure(uuid.uuid4(), None)

    assert recorded.current is False
    assert recorded.message == "The change could not be delivered"
    assert world.repo.outages == {} and world.repo.entries == []


# -- what the system does -------------------------------------------------------------------------


def test_the_certificate_sweep_hides_expired_and_shows_renewed_mentors(world: World) -> None:
    expired = world.repo.mentor()
    expired.certified_until = TODAY - timedelta(days=1)
    world.repo.save_mentor(expired)
    world.repo.add_mentor(
        OTHER_ORG, desired=False, applied=False, certified_until=TODAY + timedelta(days=10)
    )

    assert world.service.sweep() == 2

    assert world.repo.mentor(ORG).desired is False
    assert world.repo.mentor(OTHER_ORG).desired is True
    assert {c.organization_id: c.desired for c in world.repo.changes.values()} == {
        ORG: False,
        OTHER_ORG: True,
    }
    assert {e.actor for e in world.repo.entries} == {"system:visibility-sweep"}
    assert world.service.sweep() == 0  # nothing left to sweep


def test_the_sweep_delivers_again_a_mentor_dynamics_was_not_told_of(world: World) -> None:
    # In sync on paper, but what Dynamics was last told is not the desired state.
    world.repo.save_mentor(replace(world.repo.mentor(), applied=False))

    assert world.service.sweep() == 1

    [change] = world.repo.changes.values()
    assert change.desired is True and change.reason == "reconciled"
    assert world.repo.mentor().sync_state == "pending"


def test_a_change_whose_start_failed_is_started_by_the_next_dispatch(world: World) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes

    assert world.service.dispatch(FakeStarter(failing=True)) == 0
    assert world.repo.dispatch_errors[change_id] == "ConnectionError"

    starter = FakeStarter()
    assert world.service.dispatch(starter) == 1
    assert starter.started == [change_id]
    assert world.service.dispatch(starter) == 0  # started once only


def test_a_failed_change_is_delivered_again_by_itself_at_growing_intervals(world: World) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes
    world.service.record_failure(change_id, ExecutionFailure(RETRYABLE_ERROR, "Outage"))
    waits = []
    for _ in range(8):  # the outage goes on: each redelivery fails again
        status = world.repo.mentor()
        assert world.service.redeliver_due() == 0  # not due yet
        assert status.next_attempt_at is not None
        waits.append((status.next_attempt_at - world.clock.now).total_seconds())
        world.clock.now = status.next_attempt_at
        assert world.service.redeliver_due() == 1
        newest = world.repo.mentor().current_change_id
        assert newest is not None and world.repo.mentor().sync_state == "pending"
        world.service.record_failure(newest, ExecutionFailure(RETRYABLE_ERROR, "Outage"))
    assert waits[0] <= 60 and 1800 <= waits[-1] <= 3600  # growing, up to hourly
    assert [e.actor for e in world.repo.log_of("redelivery")] == ["system:redelivery"] * 8

    # Dynamics is back: the next redelivery goes through, and nothing more is planned.
    world.clock.now = world.repo.mentor().next_attempt_at
    world.service.redeliver_due()
    [outcome] = [world.service.apply(world.repo.mentor().current_change_id)]
    assert outcome.status == "applied"
    status = world.repo.mentor()
    assert (status.sync_state, status.next_attempt_at, status.redeliveries) == ("in_sync", None, 0)
    assert world.writer.shown[CONTACT] is False


def test_a_change_waiting_for_a_connection_is_delivered_once_there_is_one(world: World) -> None:
    world.targets.configured.clear()
    world.repo.connected.clear()
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    world.deliver()
    assert world.service.redeliver_due() == 0  # still no connection: nothing is started

    world.targets.configured.add(ORG)
    world.repo.connected.add(ORG)
    world.clock.now = world.repo.mentor().next_attempt_at  # within a minute
    assert world.service.redeliver_due() == 1
    outcome = world.service.apply(world.repo.mentor().current_change_id)

    assert outcome.status == "applied" and world.writer.shown[CONTACT] is False


def test_retry_failed_is_for_the_organisations_coordinators_and_retries_only_failures(
    world: World,
) -> None:
    world.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = world.repo.changes
    world.service.record_failure(change_id, ExecutionFailure(RETRYABLE_ERROR, "Outage"))

    with pytest.raises(Forbidden):
        world.service.retry_failed(MEMBER, ORG)
    with pytest.raises(MentorNotFound):
        world.service.retry_failed(OTHER_COORDINATOR, ORG)
    assert world.service.retry_failed(COORDINATOR, ORG) == 1

    status = world.repo.mentor()
    assert status.sync_state == "pending" and status.current_change_id != change_id
    assert world.service.retry_failed(COORDINATOR, ORG) == 0  # pending now, not failed


def test_a_coordinators_visibility_changes_are_in_the_organisations_audit_log(
    world: World,
) -> None:
    world.service.hide(COORDINATOR, MENTOR, None)
    world.service.restore(COORDINATOR, MENTOR, None)
    world.service.reconsider(ORG, MENTOR, "system:visibility-sweep")  # the system's: not audited

    assert world.repo.audited == [
        (ORG, COORDINATOR.actor, "website_visibility.hidden", {"mentor_id": str(MENTOR)}),
        (ORG, COORDINATOR.actor, "website_visibility.restored", {"mentor_id": str(MENTOR)}),
    ]
