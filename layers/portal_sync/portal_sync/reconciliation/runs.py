"""Full imports and reconciliations, one step at a time (docs/inbound.md, "Import and
reconciliation"; the engine, a Step Functions loop over pages, is in docs/decisions.md).

    start(org, kind)   a run, refused while another run of the organisation is running
    next_page(run)     reads the page at the run's checkpoint, applies it, and stores the new
                       checkpoint and the counters in the same transaction as the rows
    finish(run), fail(run, error)

A page is read outside any transaction (a Web API call must not hold row locks) and applied in
one: a run that stopped anywhere resumes at the first page not committed, and a page applied
again finds its rows in step and changes nothing. Rows become events through the field mapping
(reconciliation/rows.py) and are applied by the inbound rules (inbound/apply.py: the same clocks,
so the newer of a webhook and a row read wins), set-wise per page through the batch repository.
Rows already in step are counted, not logged; changes and rows that cannot be applied are
logged like events.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from pydantic import ValidationError

from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import RETRYABLE_KINDS, FailureKind
from portal_sync.inbound.apply import apply_event
from portal_sync.inbound.batch import MembershipChanged
from portal_sync.inbound.dataverse.mapping import (
    DEFAULT_FIELD_MAPPING,
    FieldMapping,
    MappingContext,
    TableMapping,
    entity_set_name,
    select_columns,
)
from portal_sync.inbound.events import (
    EventType,
    MemberDetails,
    NotApplicable,
    ParsedEvent,
    SyncEvent,
    Unusable,
)
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.ports import BatchSyncRepository
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry
from portal_sync.reconciliation.ports import (
    NO_CONNECTION,
    ChangeReader,
    DeltaLinkExpired,
    NoDynamicsConnection,
    Phase,
    Run,
    RunActive,
    RunKind,
    RunStore,
    Trigger,
)
from portal_sync.reconciliation.rows import (
    NO_ROW_ID,
    event_of_deletion,
    event_of_row,
    row_id_of,
)

# Rows per page: Dataverse's most. A page is one Lambda task's work (read, apply, commit: about
# a second), far inside its limits; fewer pages are fewer requests and state transitions, and
# the set-wise writes of a page cost less per row the more rows they carry.
DEFAULT_PAGE_SIZE = 5000
# What to wait when a 429 named no time, and the longest wait asked of the engine (a run
# that has not moved for much longer is taken as stopped: reconciliation/schedule.py).
DEFAULT_WAIT_SECONDS = 5.0
MAX_WAIT_SECONDS = 240.0
# Transient failures of one page (5xx, timeouts, no connection) before the run fails, waiting
# 10 s, 20 s, ... up to MAX_WAIT_SECONDS, jittered: about half an hour of outage in all.
MAX_PAGE_RETRIES = 10
RETRY_BASE_SECONDS = 10.0
# A change older than this when a reconciliation reads it had had its webhook's time to arrive
# (the two-minute promise): finding it is drift, a sign that webhooks are lost. A younger one
# may have its webhook on the way, and is not counted.
DRIFT_GRACE = timedelta(minutes=2)
# Members before the rows that point at them, so a fresh import creates each member from its
# contact row (with its details) rather than on behalf of a membership.
_TABLE_ORDER = {"member": 0, "membership": 1, "course_enrollment": 2}
# The changes after which a peer mentor's website visibility may have to change.
_MEMBERSHIP_CHANGES = frozenset(
    {
        EventType.MEMBERSHIP_CREATED,
        EventType.MEMBERSHIP_ROLE_UPDATED,
        EventType.MEMBERSHIP_DEACTIVATED,
        EventType.MEMBERSHIP_REACTIVATED,
    }
)
_ENROLMENT_STATUS = {
    EventType.COURSE_ENROLLED: "enrolled",
    EventType.COURSE_UNENROLLED: "unenrolled",
}
UNEXPECTED_FAILURE = "The run stopped on an unexpected error; start it again"
MAPPING_INVALID = (
    "The organisation's field mapping is invalid; correct it in the integration settings"
)


class RunNotFound(LookupError):
    pass


class PageStatus(StrEnum):
    """What the engine does after a step (infra/statemachines/sync_run.asl.json)."""

    MORE = "more"  # read the next page now
    WAIT = "wait"  # read the page again after `wait_seconds`
    DONE = "done"  # every table is read: finish the run
    FAILED = "failed"  # the run ended as failed (its error says why)


@dataclass(frozen=True)
class PageOutcome:
    run: Run
    # Every table is read (call finish()), or the run ended.
    done: bool
    # Wait this long before the page is asked again: Dynamics asked us to (429, Retry-After),
    # or it failed transiently.
    wait_seconds: float | None = None
    # A reconciliation's delta link had expired: the run now reads every table in full.
    fell_back_to_full_read: bool = False
    # Rows the page changed in the app.
    changed: int = 0

    @property
    def status(self) -> PageStatus:
        if self.run.phase is Phase.FAILED:
            return PageStatus.FAILED
        if self.done:
            return PageStatus.DONE
        return PageStatus.WAIT if self.wait_seconds is not None else PageStatus.MORE


@dataclass
class _Counts:
    read: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    drift: int = 0


def field_mapping_of(raw: dict[str, object] | None) -> FieldMapping:
    return FieldMapping.model_validate(raw) if raw else DEFAULT_FIELD_MAPPING


def table_order(mapping: FieldMapping) -> list[str]:
    return sorted(mapping.tables, key=lambda name: (_TABLE_ORDER[mapping.tables[name].kind], name))


def start_run(
    store: RunStore, organization_id: UUID, kind: RunKind, trigger: Trigger, now: datetime
) -> Run:
    """Stores a new run in the caller's transaction (its execution is started after the
    commit); raises RunActive while another run of the organisation is running. A
    reconciliation of an organisation never read (no delta link of any table) is its import:
    there is nothing to reconcile with, and its rows are no drift."""
    settings = store.integration(organization_id)
    try:
        tables = table_order(field_mapping_of(settings.field_mapping))
    except ValidationError:
        tables = []  # the first page fails the run with the mapping's message
    if kind is RunKind.RECONCILE and not any(
        store.delta_link(organization_id, table) for table in tables
    ):
        kind = RunKind.IMPORT
    run = Run(
        id=uuid.uuid4(),
        organization_id=organization_id,
        kind=kind,
        tables=tables,
        current_table=tables[0] if tables else None,
        trigger=trigger,
        started_at=now,
    )
    if not store.insert_run(run):
        raise RunActive(store.running(organization_id) or run)
    return run


class Reconciliation:
    def __init__(
        self,
        store: RunStore,
        reader: ChangeReader,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_membership_change: MembershipChanged | None = None,
        drift_grace: timedelta = DRIFT_GRACE,
    ) -> None:
        self._store = store
        self._drift_grace = drift_grace
        self._reader = reader
        self._page_size = page_size
        self._clock = clock
        # As for webhooks: a membership change reconsiders a mentor's website visibility.
        self._on_membership_change = on_membership_change

    def start(self, organization_id: UUID, kind: RunKind, trigger: Trigger = Trigger.ADMIN) -> Run:
        """A new run; raises RunActive while another run of the organisation is running."""
        with self._store.transaction():
            return start_run(self._store, organization_id, kind, trigger, self._clock())

    def latest(self, organization_id: UUID) -> dict[RunKind, Run]:
        """The running or last import and reconciliation (sync/status)."""
        with self._store.transaction():
            return self._store.latest_runs(organization_id)

    def next_page(self, run_id: UUID) -> PageOutcome:
        with self._store.transaction():
            run = self._locked(run_id)
            if run.phase is not Phase.RUNNING or run.current_table is None:
                return PageOutcome(run, done=True)
            settings = self._store.integration(run.organization_id)
            link = run.page_link
            if link is None and run.kind is RunKind.RECONCILE and not run.full_read:
                link = self._store.delta_link(run.organization_id, run.current_table)
        try:
            mapping = field_mapping_of(settings.field_mapping)
        except ValidationError:
            return PageOutcome(self.fail(run_id, MAPPING_INVALID), done=True)
        table_name = run.current_table
        table = mapping.tables.get(table_name)
        if table is None:  # no longer mapped since the run started: nothing to read there
            return self._commit(run, lambda current: self._next_table(current))
        try:
            page = self._reader.read_page(
                run.organization_id,
                entity_set_name(table_name, table),
                select_columns(table),
                link,
                self._page_size,
            )
        except DeltaLinkExpired:
            return self._commit(run, self._fall_back, fell_back=True)
        except NoDynamicsConnection as exc:
            return PageOutcome(self.fail(run_id, exc), done=True)
        except DynamicsError as exc:
            return self._failed_read(run, exc)

        changed = 0

        def apply(current: Run) -> None:
            nonlocal changed
            counts = self._apply(current, table_name, table, mapping, page.rows, page.deleted_ids)
            changed = counts.changed
            current.rows_read += counts.read
            current.rows_changed += counts.changed
            current.rows_unchanged += counts.unchanged
            current.rows_failed += counts.failed
            current.rows_drift += counts.drift
            current.pages_read += 1
            current.retries = 0
            if page.next_link is not None:
                current.page_link = page.next_link
                return
            if page.delta_link is not None:
                self._store.save_delta_link(current.organization_id, table_name, page.delta_link)
            self._next_table(current)

        outcome = self._commit(run, apply)
        return PageOutcome(outcome.run, outcome.done, changed=changed)

    def finish(self, run_id: UUID) -> Run:
        with self._store.transaction():
            run = self._locked(run_id)
            if run.phase is Phase.RUNNING:
                if run.current_table is not None:
                    raise ValueError("the run has pages left to read")
                run.phase, run.finished_at = Phase.SUCCEEDED, self._clock()
                self._store.save_run(run)
            return run

    def fail(self, run_id: UUID, error: Exception | str) -> Run:
        """Ends the run as failed; `error`'s message for administrators (a DynamicsError's own
        wording, never another exception's text)."""
        if isinstance(error, DynamicsError):
            message = error.message
        elif isinstance(error, NoDynamicsConnection):
            message = NO_CONNECTION
        elif isinstance(error, str):
            message = error
        else:
            message = UNEXPECTED_FAILURE
        with self._store.transaction():
            run = self._locked(run_id)
            if run.phase is Phase.RUNNING:
                run.phase, run.finished_at, run.error = Phase.FAILED, self._clock(), message
                self._store.save_run(run)
            return run

    # -- steps -----------------------------------------------------------------------------

    def _locked(self, run_id: UUID) -> Run:
        run = self._store.lock_run(run_id)
        if run is None:
            raise RunNotFound(str(run_id))
        return run

    def _failed_read(self, run: Run, error: DynamicsError) -> PageOutcome:
        """A 429 waits as long as Dynamics asked; another transient failure waits longer each
        time, up to MAX_PAGE_RETRIES in a row; anything else needs an administrator."""
        if error.kind is FailureKind.THROTTLED:
            wait = min(error.retry_after or DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS)
            return PageOutcome(run, done=False, wait_seconds=wait)
        if error.kind not in RETRYABLE_KINDS or run.retries >= MAX_PAGE_RETRIES:
            return PageOutcome(self.fail(run.id, error), done=True)

        def count(current: Run) -> None:
            current.retries += 1

        outcome = self._commit(run, count)
        # Full jitter: runs of many organisations that failed together do not retry together.
        ceiling = min(RETRY_BASE_SECONDS * 2**run.retries, MAX_WAIT_SECONDS)
        wait = max(1.0, random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret
        return PageOutcome(outcome.run, outcome.done, wait_seconds=None if outcome.done else wait)

    def _commit(
        self, read_at: Run, change: Callable[[Run], None], *, fell_back: bool = False
    ) -> PageOutcome:
        """Applies `change` to the run, locked again, unless another executor of the same step
        moved its checkpoint on meanwhile (then that page is applied already)."""
        with self._store.transaction():
            run = self._locked(read_at.id)
            if run.phase is Phase.RUNNING and _checkpoint(run) == _checkpoint(read_at):
                change(run)
                self._store.save_run(run)
            return PageOutcome(
                run,
                done=run.phase is not Phase.RUNNING or run.current_table is None,
                fell_back_to_full_read=fell_back,
            )

    def _fall_back(self, run: Run) -> None:
        """The delta link is no longer honoured: every table read again, in full."""
        self._store.forget_delta_links(run.organization_id)
        run.full_read = True
        run.current_table = run.tables[0] if run.tables else None
        run.page_link = None

    def _next_table(self, run: Run) -> None:
        assert run.current_table is not None
        index = run.tables.index(run.current_table) + 1
        run.current_table = run.tables[index] if index < len(run.tables) else None
        run.page_link = None

    # -- applying a page -------------------------------------------------------------------

    def _apply(
        self,
        run: Run,
        table_name: str,
        table: TableMapping,
        mapping: FieldMapping,
        rows: list[dict[str, object]],
        deleted_ids: list[str],
    ) -> _Counts:
        org = run.organization_id
        repo = self._store.sync_repository()
        settings = self._store.integration(org)
        environment = member_environment(org, settings.dataverse_organization_id)
        now = self._clock()
        context = MappingContext(
            field_mapping=mapping,
            application_user_ids=frozenset(),
            dataverse_organization_id=None,
            size_exceeded=False,
            resolve_contact=lambda t, r: repo.resolve_contact(org, t, r),
        )
        parsed: list[tuple[str, ParsedEvent]] = []
        for row in rows:
            row_id = row_id_of(table_name, row)
            if row_id is None:
                parsed.append(("unknown", Unusable(NO_ROW_ID, "Update", table_name)))
            else:
                parsed.append((row_id, event_of_row(table_name, table, row, context, row_id)))
        for row_id in deleted_ids:
            event = event_of_deletion(
                table_name,
                table,
                row_id,
                now,
                context,
                lambda t, r: self._store.stored_row(org, t, r),
            )
            parsed.append((row_id, event))
        for _, event in parsed:
            if isinstance(event, SyncEvent):
                repo.expect_member(org, event)
        repo.prepare_members()

        # A contact saved with its details unchanged (our own website-visibility writes among
        # them) is no change: its details are compared, not only its time (_step).
        details = self._store.stored_details(
            [
                event.member.dynamics_contact_id
                for _, event in parsed
                if isinstance(event, SyncEvent) and event.type is EventType.MEMBER_UPDATED
            ]
        )
        counts = _Counts(read=len(parsed))
        changed_members: list[UUID] = []
        for row_id, event in parsed:
            entry = SyncLogEntry(
                organization_id=org,
                event_id=f"{run.kind.value}:{run.id}:{table_name}:{row_id}",
                event_type=f"dataverse.{table_name}.{run.kind.value}",
                status=LogStatus.ERROR,
                message="",
                received_at=now,
                source_table=table_name,
                extra={"run_id": str(run.id), "run_kind": run.kind.value},
            )
            if isinstance(event, NotApplicable):
                counts.unchanged += 1
                continue
            if not isinstance(event, SyncEvent):
                counts.failed += 1
                entry.message, entry.source_message = event.message, event.source_message
                repo.write_log(entry)
                continue
            step = _step(repo, org, event, environment, details)
            if step is not _Step.CHANGED:
                if step is _Step.SAME_VALUES:
                    apply_event(repo, org, event, environment)
                counts.unchanged += 1
                continue
            applied = apply_event(repo, org, event, environment)
            if applied.status is LogStatus.SKIPPED:
                counts.unchanged += 1  # the app holds a newer change (a webhook's)
                continue
            entry.event_type = event.type.value
            entry.source_message = event.source_message
            entry.source_modified_at = event.occurred_at
            entry.status, entry.message, entry.profile_id = (
                applied.status,
                applied.message,
                applied.profile_id,
            )
            repo.write_log(entry)
            if applied.status is LogStatus.SUCCESS:
                counts.changed += 1
                if run.kind is RunKind.RECONCILE and (
                    event.source_message == "Delete" or event.occurred_at <= now - self._drift_grace
                ):
                    counts.drift += 1
                if applied.profile_id is not None and event.type in _MEMBERSHIP_CHANGES:
                    changed_members.append(applied.profile_id)
            else:
                counts.failed += 1
        repo.flush()
        if self._on_membership_change is not None:
            for profile_id in dict.fromkeys(changed_members):
                self._on_membership_change(org, profile_id)
        return counts


def _checkpoint(run: Run) -> tuple[str | None, str | None, bool]:
    return run.current_table, run.page_link, run.full_read


class _Step(StrEnum):
    """What a row read is to the app."""

    IN_STEP = "in_step"  # the app holds it, or a newer change of it: nothing to do
    # The same values at a later time (a row saved without a change, or for columns the app
    # does not map: our own website-visibility writes among them): applied, so that the app's
    # clock moves on with the row's, but no change, logged or counted.
    SAME_VALUES = "same_values"
    CHANGED = "changed"


def _step(
    repo: BatchSyncRepository,
    org: UUID,
    event: SyncEvent,
    environment: str,
    details: dict[str, MemberDetails],
) -> _Step:
    """What the row is to the app. `modifiedon` moves with every save but has whole seconds:
    at an equal time the values decide (a membership's state and role, an enrolment's state, a
    contact's details)."""
    member = repo.lock_member(org, event.member.dynamics_contact_id)
    if member is None or (member.environment not in (None, environment)):
        return _Step.CHANGED
    deleted = event.source_message == "Delete"
    if event.type in _ENROLMENT_STATUS:
        if event.course is None:
            return _Step.CHANGED
        enrollment = repo.lock_enrollment(org, member.profile_id, event.course.dynamics_course_id)
        if enrollment is None:
            return _Step.CHANGED
        same = enrollment.status == _ENROLMENT_STATUS[event.type]
        if deleted:
            return _Step.IN_STEP if same else _Step.CHANGED
        return _compared(enrollment.source_modified_at, event, same)
    if member.membership_status is None:
        return _Step.CHANGED
    if event.type is EventType.MEMBER_UPDATED:
        stored = details.get(event.member.dynamics_contact_id)
        same = stored is not None and _same_details(stored, event.member)
        return _compared(member.details_modified_at, event, same)
    status = "inactive" if event.type is EventType.MEMBERSHIP_DEACTIVATED else "active"
    if deleted:
        return _Step.IN_STEP if member.membership_status == status else _Step.CHANGED
    same = member.membership_status == status and (event.role in (None, member.role))
    return _compared(member.source_modified_at, event, same)


def _compared(stored_at: datetime | None, event: SyncEvent, same_values: bool) -> _Step:
    if stored_at is not None and (
        stored_at > event.occurred_at or (stored_at == event.occurred_at and same_values)
    ):
        return _Step.IN_STEP
    # No clock yet: no row of this kind was applied (a member created on behalf of another
    # row has default values), so the row is a change even with the same values.
    return _Step.SAME_VALUES if same_values and stored_at is not None else _Step.CHANGED


def _same_details(stored: MemberDetails, read: MemberDetails) -> bool:
    """Every detail the row has equals the one the app holds (a detail it lacks is kept; an
    empty column is a cleared detail, as the app holds it: none)."""
    sent = read.model_dump(exclude_none=True, exclude={"dynamics_contact_id"})
    return all((getattr(stored, name) or None) == (value or None) for name, value in sent.items())
