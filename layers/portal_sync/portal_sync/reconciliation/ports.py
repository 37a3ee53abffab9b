"""What an import or a reconciliation needs from outside: the pages Dynamics' change tracking
returns (adapters/dynamics/change_tracking.py) and the storage of runs, checkpoints and delta
links, in the same transaction as the rows a page applies (adapters/postgres/run_store.py).
docs/inbound.md, "Import and reconciliation"."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from portal_sync.inbound.events import MemberDetails
from portal_sync.inbound.ports import BatchSyncRepository, IntegrationSettings


class RunKind(StrEnum):
    IMPORT = "import"
    RECONCILE = "reconcile"


class Phase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Trigger(StrEnum):
    """Who or what started a run."""

    ADMIN = "admin"  # POST /orgs/{orgId}/sync/import or /sync/reconcile
    SCHEDULE = "schedule"  # the organisation's reconciliation interval had passed
    ONBOARDING = "onboarding"  # POST /orgs with a Dynamics connection
    ENABLED = "enabled"  # the integration was enabled
    CONNECTION_CHANGED = "connection_changed"  # another Dynamics environment or base URL


@dataclass
class Run:
    """One import or reconciliation of one organisation, with its checkpoint and counters."""

    id: UUID
    organization_id: UUID
    kind: RunKind
    tables: list[str]
    current_table: str | None  # None: every table is read
    page_link: str | None = None  # the page to read next in current_table; None: its first
    full_read: bool = False  # a reconciliation that fell back to reading everything
    phase: Phase = Phase.RUNNING
    rows_read: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    rows_failed: int = 0
    # Of rows_changed, those a reconciliation found that no webhook had delivered in time.
    rows_drift: int = 0
    pages_read: int = 0
    # Transient failures of the page at the checkpoint in a row.
    retries: int = 0
    trigger: Trigger = Trigger.ADMIN
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None  # last progress (the store sets it)
    error: str | None = None


@dataclass(frozen=True)
class ReconcileSchedule:
    """What decides whether and when the schedule reconciles an organisation."""

    enabled: bool
    connected: bool  # a Dynamics base URL with credentials
    interval_minutes: int


@dataclass(frozen=True)
class ChangePage:
    """One page of a table read with change tracking, or of a delta read."""

    rows: list[dict[str, Any]]  # as the Web API returns them (lookups as `_<column>_value`)
    deleted_ids: list[str] = field(default_factory=list)  # `$deletedEntity` rows' ids
    next_link: str | None = None  # the following page, when there is one
    delta_link: str | None = None  # on the last page: the changes since this read


class DeltaLinkExpired(Exception):
    """Dynamics no longer honours the delta link (400, 0x80044352): read the table in full."""


NO_CONNECTION = (
    "No Dynamics connection is configured to read the organisation's rows: configure it in "
    "the integration settings, then start the import again"
)


class NoDynamicsConnection(Exception):
    """The organisation has no Dynamics connection to read through."""

    def __init__(self) -> None:
        super().__init__(NO_CONNECTION)


class RunActive(Exception):
    """Another run of the organisation is running (one at a time per organisation)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        super().__init__(f"a {run.kind} of this organisation is running")


class ChangeReader(Protocol):
    def read_page(
        self,
        organization_id: UUID,
        entity_set: str,
        select: Sequence[str],
        link: str | None,
        page_size: int,
    ) -> ChangePage:
        """The table's first page (`link` None, with change tracking) or the page at `link` (a
        next link or a delta link Dynamics gave). Raises DeltaLinkExpired, or DynamicsError
        (a 429 as kind THROTTLED with its `retry_after`, never waited for here)."""


class RunStarter(Protocol):
    def start(self, run: Run, attempt: str | None = None) -> None:
        """Starts the engine's execution of `run` (after the transaction that stored it
        committed). `attempt` names another execution of a run whose first one stopped."""


class RunStore(Protocol):
    """Runs and delta links; everything called inside `transaction()` commits with it."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def insert_run(self, run: Run) -> bool:
        """False when another run of the organisation is running (the run is not stored)."""

    def running(self, organization_id: UUID) -> Run | None: ...

    def lock_run(self, run_id: UUID) -> Run | None:
        """The run, locked until the transaction ends (two executors of one step wait)."""

    def save_run(self, run: Run) -> None: ...

    def delta_link(self, organization_id: UUID, table: str) -> str | None: ...

    def save_delta_link(self, organization_id: UUID, table: str, link: str) -> None: ...

    def forget_delta_links(self, organization_id: UUID) -> None: ...

    def integration(self, organization_id: UUID) -> IntegrationSettings: ...

    def stored_row(
        self, organization_id: UUID, table: str, row_id: str
    ) -> tuple[str, str | None] | None:
        """The contact (and, for an enrolment, the course) the app stored for a Dynamics
        membership or enrolment row; None when it stored no such row."""

    def stored_details(self, contact_ids: Sequence[str]) -> dict[str, MemberDetails]:
        """The details the app holds of these contacts (those it has)."""

    def latest_runs(self, organization_id: UUID) -> dict[RunKind, Run]:
        """The organisation's running or last run of each kind."""

    def schedule_of(self, organization_id: UUID) -> ReconcileSchedule | None:
        """None when the organisation has no integration."""

    def due_for_reconciliation(self, now: datetime, limit: int) -> list[UUID]:
        """Enabled, connected organisations with no run running whose last run started an
        interval ago or more (or never ran), the longest waiting first."""

    def stalled_runs(self, before: datetime, limit: int) -> list[Run]:
        """Running runs without progress since `before`, the oldest first."""

    def sync_repository(self) -> BatchSyncRepository:
        """Inside the transaction: the inbound repository a page is applied through."""
