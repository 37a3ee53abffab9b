"""Imports and reconciliations (portal_sync/reconciliation/) against in-memory fakes: a
Dataverse with change tracking (pages, delta links, deletions, expiring tokens) and storage
whose transactions roll back, so that a crash at any point can be staged."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.inbound.apply import apply_event
from portal_sync.inbound.events import EventType, MemberDetails, SyncEvent
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.sync_log import LogStatus
from portal_sync.reconciliation.ports import (
    ChangePage,
    DeltaLinkExpired,
    Phase,
    Run,
    RunActive,
    RunKind,
    Trigger,
)
from portal_sync.reconciliation.runs import (
    MAX_PAGE_RETRIES,
    MAX_WAIT_SECONDS,
    UNEXPECTED_FAILURE,
    PageOutcome,
    PageStatus,
    Reconciliation,
)
from portal_sync.reconciliation.schedule import STALL_AFTER, RunSchedule, TickOutcome
from reconciliation_fakes import Crash, FakeStore

ORG = uuid.UUID("6f1c2a9e-3b7d-4c1e-9a2f-5d8e7b6c4a30")
OTHER_ORG = uuid.UUID("0b5e7d1c-2a4f-4e8b-9c3d-6f1a2b3c4d5e")
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
PROFILE_DETAILS = ("first_name", "last_name", "email", "phone")
ROLES = {100000000: "member", 100000001: "peer_mentor", 100000002: "coordinator"}


# -- a Dataverse with change tracking ---------------------------------------------------------


class FakeDataverse:
    """Rows per entity set, each write a new version; reads page through a snapshot."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.deleted: dict[tuple[str, str], int] = {}
        self.version = 0
        self.tokens_expired = False
        self.failures: list[Exception] = []
        self.reads: list[str | None] = []

    def put(self, entity_set: str, key: str, **columns: Any) -> None:
        self.version += 1
        stamp = (BASE + timedelta(seconds=self.version)).isoformat().replace("+00:00", "Z")
        row = {**self.rows.get(entity_set, {}).get(key, {}), **columns, "modifiedon": stamp}
        self.rows.setdefault(entity_set, {})[key] = row
        self.versions[(entity_set, key)] = self.version
        self.deleted.pop((entity_set, key), None)

    def delete(self, entity_set: str, key: str) -> None:
        self.version += 1
        self.rows[entity_set].pop(key)
        self.versions.pop((entity_set, key))
        self.deleted[(entity_set, key)] = self.version

    def add_member(self, index: int, role: int = 100000000, state: int = 0) -> tuple[str, str]:
        contact, membership = contact_id(index), membership_id(index)
        self.put(
            "contacts",
            contact,
            contactid=contact,
            firstname=f"Member{index}",
            lastname="Nordmann",
            emailaddress1=f"member{index}@example.org",
            statecode=0,
        )
        self.put(
            "hlf_memberships",
            membership,
            hlf_membershipid=membership,
            _hlf_contactid_value=contact,
            hlf_role=role,
            statecode=state,
        )
        return contact, membership

    def read_page(
        self,
        organization_id: UUID,
        entity_set: str,
        select: Sequence[str],
        link: str | None,
        page_size: int,
    ) -> ChangePage:
        self.reads.append(link)
        if self.failures:
            raise self.failures.pop(0)
        if link is None:
            since, start, offset, delta = 0, self.version, 0, False
        else:
            kind, table, *numbers = link.split("|")
            assert table == entity_set
            if kind == "delta":
                if self.tokens_expired:
                    raise DeltaLinkExpired()
                since, start, offset, delta = int(numbers[0]), self.version, 0, True
            else:
                since, start, offset, delta = (int(n) for n in numbers)
                delta = bool(delta)
        changes = sorted(
            (v, key, False)
            for (s, key), v in self.versions.items()
            if s == entity_set and since < v <= start
        )
        if delta:
            changes += sorted(
                (v, key, True)
                for (s, key), v in self.deleted.items()
                if s == entity_set and since < v <= start
            )
        page = changes[offset : offset + page_size]
        more = offset + page_size < len(changes)
        return ChangePage(
            rows=[dict(self.rows[entity_set][key]) for _, key, gone in page if not gone],
            deleted_ids=[key for _, key, gone in page if gone],
            next_link=f"next|{entity_set}|{since}|{start}|{offset + page_size}|{int(delta)}"
            if more
            else None,
            delta_link=None if more else f"delta|{entity_set}|{start}",
        )


def contact_id(index: int) -> str:
    return str(uuid.UUID(int=(0xC0 << 120) | index))


def membership_id(index: int) -> str:
    return str(uuid.UUID(int=(0x3E << 120) | index))


# -- helpers ----------------------------------------------------------------------------------


def service(store: FakeStore, dataverse: FakeDataverse, page_size: int = 7) -> Reconciliation:
    return Reconciliation(store, dataverse, page_size=page_size)


def run_to_end(sync: Reconciliation, run: Run, limit: int = 1000) -> PageOutcome:
    for _ in range(limit):
        outcome = sync.next_page(run.id)
        if outcome.done:
            sync.finish(run.id)
            return outcome
    raise AssertionError("the run did not end")


def members(store: FakeStore, org: UUID = ORG) -> dict[str, tuple[str, str, str | None]]:
    """Contact -> (role, status, first name): what the app shows, without generated ids."""
    result = {}
    for contact, profile in store.db.profiles.items():
        m = store.db.memberships.get((org, profile["id"]))
        if m is not None:
            result[contact] = (m["role"], m["status"], profile.get("first_name"))
    return result


def loaded(count: int) -> FakeDataverse:
    dataverse = FakeDataverse()
    for index in range(count):
        role = 100000001 if index % 5 == 4 else 100000000
        dataverse.add_member(index, role=role, state=1 if index % 7 == 6 else 0)
    return dataverse


# -- the tests --------------------------------------------------------------------------------


def test_an_import_brings_every_member_with_role_and_status() -> None:
    store, dataverse = FakeStore(), loaded(30)
    sync = service(store, dataverse)

    run = sync.start(ORG, RunKind.IMPORT)
    run_to_end(sync, run)

    found = members(store)
    assert len(found) == 30
    assert found[contact_id(4)] == ("peer_mentor", "active", "Member4")
    assert found[contact_id(6)] == ("member", "inactive", "Member6")
    assert found[contact_id(0)] == ("member", "active", "Member0")
    final = store.db.runs[run.id]
    assert final.phase is Phase.SUCCEEDED and final.finished_at is not None
    assert (final.rows_read, final.rows_changed, final.rows_unchanged, final.rows_failed) == (
        60,
        60,
        0,
        0,
    )
    # Each table's read ended with a delta link for the next reconciliation.
    assert {table for _, table in store.db.delta_links} == {
        "contact",
        "hlf_membership",
        "hlf_courseenrollment",
    }
    # The creations are in the sync log like a webhook's.
    created = [e for e in store.db.log.values() if "created" in e.message]
    assert len(created) == 30


def test_importing_again_changes_nothing_and_counts_the_rows_in_step() -> None:
    store, dataverse = FakeStore(), loaded(12)
    sync = service(store, dataverse)
    run_to_end(sync, sync.start(ORG, RunKind.IMPORT))
    before, logged = copy.deepcopy(store.db.memberships), len(store.db.log)

    second = sync.start(ORG, RunKind.IMPORT)
    run_to_end(sync, second)

    final = store.db.runs[second.id]
    assert (final.rows_read, final.rows_changed, final.rows_unchanged) == (24, 0, 24)
    assert store.db.memberships == before
    assert len(store.db.log) == logged  # rows in step are counted, not logged


@pytest.mark.parametrize("crash_at", [1, 2, 3, 5, 8])
def test_a_crash_between_pages_resumes_and_ends_as_an_uninterrupted_run(crash_at: int) -> None:
    uninterrupted, dataverse = FakeStore(), loaded(25)
    sync = service(uninterrupted, dataverse)
    run_to_end(sync, sync.start(ORG, RunKind.IMPORT))

    crashed = FakeStore()
    sync = service(crashed, dataverse)
    run = sync.start(ORG, RunKind.IMPORT)
    crashed.crash_at_save = crash_at  # the worker dies as it commits that page
    with pytest.raises(Crash):
        for _ in range(100):
            if sync.next_page(run.id).done:
                break
    # The engine runs the step again: it resumes at the page not committed.
    run_to_end(sync, run)

    assert members(crashed) == members(uninterrupted)
    expected = next(iter(uninterrupted.db.runs.values()))
    final = crashed.db.runs[run.id]
    assert (final.rows_read, final.rows_changed, final.rows_unchanged) == (
        expected.rows_read,
        expected.rows_changed,
        expected.rows_unchanged,
    )
    assert sorted(crashed.db.log) == sorted(
        key.replace(str(expected.id), str(run.id)) for key in uninterrupted.db.log
    )


def test_only_one_run_per_organisation_at_a_time() -> None:
    store, dataverse = FakeStore(), loaded(3)
    sync = service(store, dataverse)
    run = sync.start(ORG, RunKind.IMPORT)

    with pytest.raises(RunActive) as refused:
        sync.start(ORG, RunKind.RECONCILE)
    assert refused.value.run.id == run.id
    sync.start(OTHER_ORG, RunKind.IMPORT)  # another organisation is not held up

    run_to_end(sync, run)
    sync.start(ORG, RunKind.RECONCILE)  # once it ended, the next may start


def test_reconciliation_applies_lost_changes_and_deletions_from_the_delta_link() -> None:
    store, dataverse = FakeStore(), loaded(10)
    sync = service(store, dataverse, page_size=3)
    run_to_end(sync, sync.start(ORG, RunKind.IMPORT))
    # Changes whose webhooks were lost:
    dataverse.put("hlf_memberships", membership_id(1), hlf_role=100000002)  # role changed
    dataverse.put("hlf_memberships", membership_id(2), statecode=1)  # deactivated
    dataverse.put("hlf_memberships", membership_id(6), statecode=0)  # reactivated
    dataverse.put("contacts", contact_id(3), firstname="Kari")  # details
    dataverse.delete("hlf_memberships", membership_id(5))  # membership row deleted
    dataverse.add_member(42, role=100000001)  # a new member

    run = sync.start(ORG, RunKind.RECONCILE)
    run_to_end(sync, run)

    found = members(store)
    assert found[contact_id(1)][:2] == ("coordinator", "active")
    assert found[contact_id(2)][1] == "inactive"
    assert found[contact_id(6)][1] == "active"
    assert found[contact_id(3)][2] == "Kari"
    assert found[contact_id(5)][1] == "inactive"
    assert found[contact_id(42)] == ("peer_mentor", "active", "Member42")
    final = store.db.runs[run.id]
    assert not final.full_read
    # Only the changes were read, and each was drift the webhooks had missed.
    assert (final.rows_read, final.rows_changed, final.rows_failed) == (7, 7, 0)
    assert final.rows_drift == 7  # all older than the grace a webhook has to arrive
    assert dataverse.reads.count(None) == 3 + 0  # the import's first pages only


def test_an_expired_delta_link_falls_back_to_a_full_import() -> None:
    store, dataverse = FakeStore(), loaded(8)
    sync = service(store, dataverse)
    run_to_end(sync, sync.start(ORG, RunKind.IMPORT))
    dataverse.put("hlf_memberships", membership_id(0), statecode=1)
    dataverse.tokens_expired = True

    run = sync.start(ORG, RunKind.RECONCILE)
    outcome = sync.next_page(run.id)
    assert outcome.fell_back_to_full_read and not outcome.done
    dataverse.tokens_expired = False  # new tokens are honoured
    run_to_end(sync, run)

    final = store.db.runs[run.id]
    assert final.phase is Phase.SUCCEEDED and final.full_read and final.error is None
    assert members(store)[contact_id(0)][1] == "inactive"
    assert (final.rows_read, final.rows_changed, final.rows_unchanged) == (16, 1, 15)


def test_a_webhook_newer_than_the_imported_row_wins_and_an_older_one_loses() -> None:
    store, dataverse = FakeStore(), FakeDataverse()
    dataverse.add_member(0)  # active member, modified at BASE + 2 s
    dataverse.add_member(1)
    environment = member_environment(ORG, None)
    repo = store.sync_repository()

    # A webhook of a later change arrived before the import read the row: it stays.
    newer = SyncEvent(
        type=EventType.MEMBERSHIP_DEACTIVATED,
        occurred_at=BASE + timedelta(minutes=5),
        member=MemberDetails(dynamics_contact_id=contact_id(0)),
        role="member",
    )
    assert apply_event(repo, ORG, newer, environment).status is LogStatus.SUCCESS
    sync = service(store, dataverse)
    run = sync.start(ORG, RunKind.IMPORT)
    run_to_end(sync, run)
    assert members(store)[contact_id(0)][1] == "inactive"

    # A webhook older than the row the import applied arrives late: it is stale.
    older = SyncEvent(
        type=EventType.MEMBERSHIP_DEACTIVATED,
        occurred_at=BASE - timedelta(minutes=5),
        member=MemberDetails(dynamics_contact_id=contact_id(1)),
        role="member",
    )
    assert apply_event(repo, ORG, older, environment).status is LogStatus.SKIPPED
    assert members(store)[contact_id(1)][1] == "active"


def test_a_throttled_page_asks_the_engine_to_wait_and_keeps_the_checkpoint() -> None:
    store, dataverse = FakeStore(), loaded(4)
    sync = service(store, dataverse, page_size=2)
    run = sync.start(ORG, RunKind.IMPORT)
    sync.next_page(run.id)
    before = copy.deepcopy(store.db.runs[run.id])
    dataverse.failures.append(
        DynamicsError(FailureKind.THROTTLED, Operation.READ_ROW, status_code=429, retry_after=7)
    )

    outcome = sync.next_page(run.id)

    assert outcome.wait_seconds == 7 and not outcome.done
    assert store.db.runs[run.id] == before
    run_to_end(sync, run)
    assert len(members(store)) == 4


def test_a_failed_run_says_what_failed_without_the_errors_own_text() -> None:
    store, dataverse = FakeStore(), loaded(2)
    sync = service(store, dataverse)
    run = sync.start(ORG, RunKind.IMPORT)

    failed = sync.fail(run.id, RuntimeError("row of member1@example.org"))
    assert failed.phase is Phase.FAILED and failed.error == UNEXPECTED_FAILURE
    unreachable = DynamicsError(FailureKind.UNAVAILABLE, Operation.READ_ROW, status_code=503)
    second = sync.start(ORG, RunKind.IMPORT)
    assert sync.fail(second.id, unreachable).error == unreachable.message
    assert sync.latest(ORG)[RunKind.IMPORT].id == second.id


def test_transient_failures_wait_longer_each_time_and_end_the_run_past_the_bound() -> None:
    store, dataverse = FakeStore(), loaded(2)
    sync = service(store, dataverse)
    run = sync.start(ORG, RunKind.IMPORT)
    outage = DynamicsError(FailureKind.UNAVAILABLE, Operation.READ_ROW, status_code=503)
    dataverse.failures.extend([outage] * (MAX_PAGE_RETRIES + 1))

    waits = []
    for attempt in range(1, MAX_PAGE_RETRIES + 1):
        outcome = sync.next_page(run.id)
        assert outcome.status is PageStatus.WAIT and store.db.runs[run.id].retries == attempt
        waits.append(outcome.wait_seconds)
    assert all(w is not None and 1 <= w <= MAX_WAIT_SECONDS for w in waits)
    last = sync.next_page(run.id)

    assert last.status is PageStatus.FAILED and last.run.error == outage.message
    assert store.db.runs[run.id].phase is Phase.FAILED


def test_a_page_that_reads_again_after_a_failure_starts_counting_again() -> None:
    store, dataverse = FakeStore(), loaded(4)
    sync = service(store, dataverse, page_size=2)
    run = sync.start(ORG, RunKind.IMPORT)
    dataverse.failures.append(DynamicsError(FailureKind.TIMEOUT, Operation.READ_ROW))
    assert sync.next_page(run.id).status is PageStatus.WAIT
    assert sync.next_page(run.id).status is PageStatus.MORE
    assert store.db.runs[run.id].retries == 0


def test_a_failure_an_administrator_must_fix_ends_the_run_at_once() -> None:
    store, dataverse = FakeStore(), loaded(2)
    sync = service(store, dataverse)
    run = sync.start(ORG, RunKind.IMPORT)
    refused = DynamicsError(FailureKind.CREDENTIALS, Operation.READ_ROW, status_code=401)
    dataverse.failures.append(refused)

    outcome = sync.next_page(run.id)

    assert outcome.status is PageStatus.FAILED and outcome.done
    assert store.db.runs[run.id].error == refused.message


def test_recent_changes_a_reconciliation_finds_are_not_drift_yet() -> None:
    store, dataverse = FakeStore(), loaded(3)
    sync = Reconciliation(store, dataverse, page_size=7, drift_grace=timedelta(days=2))
    run_to_end(sync, sync.start(ORG, RunKind.IMPORT))
    dataverse.put("hlf_memberships", membership_id(1), statecode=1)

    run = sync.start(ORG, RunKind.RECONCILE)
    run_to_end(sync, run)

    final = store.db.runs[run.id]
    # The change is a day old: within this grace its webhook may still be on the way.
    assert (final.rows_changed, final.rows_drift) == (1, 0)
    assert next(iter(store.db.runs.values())).rows_drift == 0  # an import finds no drift


class RecordingStarter:
    def __init__(self) -> None:
        self.started: list[tuple[UUID, str | None]] = []

    def start(self, run: Run, attempt: str | None = None) -> None:
        self.started.append((run.id, attempt))


def test_the_schedule_reconciles_due_organisations_and_resumes_stalled_runs() -> None:
    store, dataverse = FakeStore(), loaded(2)
    now = datetime.now(UTC)
    sync = Reconciliation(store, dataverse, clock=lambda: now)
    starter = RecordingStarter()
    schedule = RunSchedule(store, sync, starter, clock=lambda: now)
    done = sync.start(ORG, RunKind.IMPORT)
    run_to_end(sync, done)
    stalled = sync.start(OTHER_ORG, RunKind.IMPORT)

    assert schedule.tick() == TickOutcome([], [])  # ORG reconciled 15 min after its import

    store.db.runs[done.id].started_at = now - timedelta(minutes=15)
    store.db.runs[stalled.id].updated_at = now - STALL_AFTER - timedelta(seconds=1)
    outcome = schedule.tick()

    [started] = outcome.started
    assert (started.organization_id, started.kind, started.trigger) == (
        ORG,
        RunKind.RECONCILE,
        Trigger.SCHEDULE,
    )
    assert [r.id for r in outcome.resumed] == [stalled.id]
    assert starter.started[0] == (started.id, None)
    run_id, attempt = starter.started[1]
    assert run_id == stalled.id and attempt is not None  # a new execution name for the run


def test_the_functions_page_size_is_the_engines_default() -> None:
    """settings.py repeats the default (logic and settings never import each other)."""
    from portal_sync import settings
    from portal_sync.reconciliation import runs

    assert settings.DEFAULT_PAGE_SIZE == runs.DEFAULT_PAGE_SIZE == 5000


def test_rows_saved_without_a_change_are_in_step_and_move_the_apps_clock_on() -> None:
    store, dataverse = FakeStore(), loaded(4)
    sync = service(store, dataverse)
    run_to_end(sync, sync.start(ORG, RunKind.IMPORT))
    logged = len(store.db.log)
    # Saved again in Dynamics with the same values (a bulk job, a column the app does not map):
    dataverse.put("hlf_memberships", membership_id(1))
    dataverse.put("contacts", contact_id(2), hlf_showonwebsite=True)

    run = sync.start(ORG, RunKind.RECONCILE)
    run_to_end(sync, run)

    final = store.db.runs[run.id]
    assert (final.rows_read, final.rows_changed, final.rows_unchanged, final.rows_drift) == (
        2,
        0,
        2,
        0,
    )
    assert len(store.db.log) == logged  # nothing to log
    profile = store.db.profiles[contact_id(1)]["id"]
    membership_time = store.db.memberships[(ORG, profile)]["at"]
    assert membership_time == BASE + timedelta(
        seconds=dataverse.versions[("hlf_memberships", membership_id(1))]
    )
    # A webhook older than that save, arriving late, is stale: Dynamics' row is newer.
    late = SyncEvent(
        type=EventType.MEMBERSHIP_DEACTIVATED,
        occurred_at=membership_time - timedelta(seconds=1),
        member=MemberDetails(dynamics_contact_id=contact_id(1)),
        role="member",
    )
    repo = store.sync_repository()
    assert apply_event(repo, ORG, late, member_environment(ORG, None)).status is LogStatus.SKIPPED
