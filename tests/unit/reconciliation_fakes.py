"""In-memory storage for imports and reconciliations (the RunStore of
portal_sync/reconciliation/ports.py), whose transactions roll back, so that a crash at any point
can be staged; its Repository has the inbound SyncRepository's semantics on the same tables."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from portal_sync.inbound.events import CourseDetails, MemberDetails, SyncEvent
from portal_sync.inbound.ports import EnrollmentState, IntegrationSettings, MemberState
from portal_sync.inbound.sync_log import SyncLogEntry
from portal_sync.reconciliation.ports import Phase, ReconcileSchedule, Run, RunKind

PROFILE_DETAILS = ("first_name", "last_name", "email", "phone")


@dataclass
class Tables:
    runs: dict[UUID, Run] = field(default_factory=dict)
    delta_links: dict[tuple[UUID, str], str] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # by contact
    memberships: dict[tuple[UUID, UUID], dict[str, Any]] = field(default_factory=dict)
    enrollments: dict[tuple[UUID, UUID, str], dict[str, Any]] = field(default_factory=dict)
    log: dict[str, SyncLogEntry] = field(default_factory=dict)


class Crash(Exception):
    """The worker died: nothing of the open transaction is kept."""


class FakeStore:
    def __init__(self) -> None:
        self.db = Tables()
        self.crash_at_save: int | None = None  # crash on this save_run call (1-based)
        self.saves = 0
        # Every organisation's integration: enabled, connected, reconciled every 15 minutes.
        self.schedule = ReconcileSchedule(enabled=True, connected=True, interval_minutes=15)

    def schedule_of(self, organization_id: UUID) -> ReconcileSchedule | None:
        return self.schedule

    def due_for_reconciliation(self, now: datetime, limit: int) -> list[UUID]:
        interval = timedelta(minutes=self.schedule.interval_minutes)
        organizations = {run.organization_id for run in self.db.runs.values()}
        due = [
            org
            for org in organizations
            if self.running(org) is None
            and max(r.started_at for r in self.db.runs.values() if r.organization_id == org)
            <= now - interval
        ]
        return sorted(due)[:limit]

    def stalled_runs(self, before: datetime, limit: int) -> list[Run]:
        stalled = [
            copy.deepcopy(r)
            for r in self.db.runs.values()
            if r.phase is Phase.RUNNING and (r.updated_at or r.started_at) < before
        ]
        return stalled[:limit]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy(self.db)
        try:
            yield
        except BaseException:
            self.db = saved
            raise

    def insert_run(self, run: Run) -> bool:
        if any(
            r.organization_id == run.organization_id and r.phase is Phase.RUNNING
            for r in self.db.runs.values()
        ):
            return False
        self.db.runs[run.id] = copy.deepcopy(run)
        return True

    def running(self, organization_id: UUID) -> Run | None:
        return next(
            (
                copy.deepcopy(r)
                for r in self.db.runs.values()
                if r.organization_id == organization_id and r.phase is Phase.RUNNING
            ),
            None,
        )

    def lock_run(self, run_id: UUID) -> Run | None:
        run = self.db.runs.get(run_id)
        return copy.deepcopy(run) if run else None

    def save_run(self, run: Run) -> None:
        self.saves += 1
        if self.saves == self.crash_at_save:
            raise Crash()
        self.db.runs[run.id] = copy.deepcopy(run)
        self.db.runs[run.id].updated_at = self.now

    # What the database's now() says when a run is saved (tests move it).
    now: datetime | None = None

    def latest_runs(self, organization_id: UUID) -> dict[RunKind, Run]:
        latest: dict[RunKind, Run] = {}
        for run in self.db.runs.values():
            if run.organization_id == organization_id:
                latest[run.kind] = run
        return latest

    def delta_link(self, organization_id: UUID, table: str) -> str | None:
        return self.db.delta_links.get((organization_id, table))

    def save_delta_link(self, organization_id: UUID, table: str, link: str) -> None:
        self.db.delta_links[(organization_id, table)] = link

    def forget_delta_links(self, organization_id: UUID) -> None:
        for key in [k for k in self.db.delta_links if k[0] == organization_id]:
            del self.db.delta_links[key]

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        return IntegrationSettings()

    def stored_row(
        self, organization_id: UUID, table: str, row_id: str
    ) -> tuple[str, str | None] | None:
        contacts = {p["id"]: c for c, p in self.db.profiles.items()}
        for (org, profile), m in self.db.memberships.items():
            if org == organization_id and m["row"] == row_id:
                return contacts[profile], None
        for (org, profile, course), e in self.db.enrollments.items():
            if org == organization_id and e["row"] == row_id:
                return contacts[profile], course
        return None

    def stored_details(self, contact_ids: Sequence[str]) -> dict[str, MemberDetails]:
        return {
            contact: MemberDetails(
                dynamics_contact_id=contact,
                **{k: self.db.profiles[contact].get(k) for k in PROFILE_DETAILS},
            )
            for contact in contact_ids
            if contact in self.db.profiles
        }

    def sync_repository(self) -> Repository:
        return Repository(self)


class Repository:
    """The inbound SyncRepository's semantics on the tables (a batch writes as it goes)."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    @property
    def _t(self) -> Tables:
        return self._store.db

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        return IntegrationSettings()

    def write_log(self, entry: SyncLogEntry) -> None:
        self._t.log[entry.event_id] = entry

    def resolve_contact(self, organization_id: UUID, table: str, row_id: str) -> str | None:
        stored = self._store.stored_row(organization_id, table, row_id)
        return stored[0] if stored else None

    def lock_member(self, organization_id: UUID, contact: str) -> MemberState | None:
        profile = self._t.profiles.get(contact)
        if profile is None:
            return None
        m = self._t.memberships.get((organization_id, profile["id"]))
        return MemberState(
            profile["id"],
            m["status"] if m else None,
            m["role"] if m else None,
            m["at"] if m else None,
            profile["details_at"],
            profile["environment"],
        )

    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        if details.dynamics_contact_id in self._t.profiles:
            return None
        profile_id = uuid.uuid4()
        self._t.profiles[details.dynamics_contact_id] = {
            "id": profile_id,
            "details_at": modified_at,
            "environment": environment,
            **details.model_dump(exclude={"dynamics_contact_id"}),
        }
        return profile_id

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        for profile in self._t.profiles.values():
            if profile["id"] == profile_id:
                profile.update(
                    details.model_dump(exclude={"dynamics_contact_id"}, exclude_none=True)
                )
                profile["details_at"] = max(filter(None, (profile["details_at"], modified_at)))

    def upsert_membership(
        self,
        organization_id: UUID,
        profile_id: UUID,
        *,
        role: str,
        status: str,
        source_modified_at: datetime | None,
        dynamics_row_id: str | None,
    ) -> None:
        current = self._t.memberships.get((organization_id, profile_id), {})
        times = [t for t in (current.get("at"), source_modified_at) if t is not None]
        self._t.memberships[(organization_id, profile_id)] = {
            "role": role,
            "status": status,
            "at": max(times) if times else None,
            "row": dynamics_row_id or current.get("row"),
        }

    def lock_enrollment(
        self, organization_id: UUID, profile_id: UUID, course_id: str
    ) -> EnrollmentState | None:
        e = self._t.enrollments.get((organization_id, profile_id, course_id))
        return EnrollmentState(e["status"], e["at"]) if e else None

    def upsert_enrollment(
        self,
        organization_id: UUID,
        profile_id: UUID,
        course: CourseDetails,
        *,
        status: str,
        source_modified_at: datetime,
        dynamics_row_id: str | None,
    ) -> None:
        key = (organization_id, profile_id, course.dynamics_course_id)
        current = self._t.enrollments.get(key, {})
        self._t.enrollments[key] = {
            "status": status,
            "at": max(filter(None, (current.get("at"), source_modified_at))),
            "row": dynamics_row_id or current.get("row"),
        }

    def expect_member(self, organization_id: UUID, event: SyncEvent) -> None:
        pass

    def prepare_members(self) -> None:
        pass

    def flush(self) -> None:
        pass
