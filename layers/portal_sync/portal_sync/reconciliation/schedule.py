"""When runs start without anyone asking (docs/inbound.md, "Import and reconciliation"): each
tick of the schedule (every minute, template.yaml) reconciles the organisations whose interval
has passed and starts a new execution for each run that has stopped making progress.

A run is stored first and its execution started after the commit: a failed start, or an
execution that died without ending its run, leaves the run running without progress, and a
later tick gives it another execution. Two executions of one run are safe (the checkpoint is
moved under a row lock; reconciliation/runs.py), so a run only slow is no harm either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from portal_sync.reconciliation.ports import (
    Run,
    RunActive,
    RunKind,
    RunStarter,
    RunStore,
    Trigger,
)
from portal_sync.reconciliation.runs import MAX_WAIT_SECONDS, Reconciliation

# A run that has not moved for this long has lost its execution: far beyond the longest wait
# a page asks for (MAX_WAIT_SECONDS) and a page's own work.
STALL_AFTER = timedelta(minutes=10)
# Starts per tick, so that one tick stays short however many organisations are due (the
# longest waiting go first; the rest follow on the next ticks).
STARTS_PER_TICK = 25

assert STALL_AFTER.total_seconds() > 2 * MAX_WAIT_SECONDS


@dataclass(frozen=True)
class TickOutcome:
    started: list[Run]  # reconciliations started
    resumed: list[Run]  # stalled runs given a new execution


@dataclass(frozen=True)
class RunTimes:
    """What sync/status shows of when runs happen."""

    latest: dict[RunKind, Run]
    next_reconciliation_at: datetime | None  # None: not scheduled (disabled, no connection)


class RunSchedule:
    def __init__(
        self,
        store: RunStore,
        runs: Reconciliation,
        starter: RunStarter,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._runs = runs
        self._starter = starter
        self._clock = clock

    def tick(self) -> TickOutcome:
        now = self._clock()
        with self._store.transaction():
            due = self._store.due_for_reconciliation(now, STARTS_PER_TICK)
            stalled = self._store.stalled_runs(now - STALL_AFTER, STARTS_PER_TICK)
        started = []
        for organization_id in due:
            try:
                run = self._runs.start(organization_id, RunKind.RECONCILE, Trigger.SCHEDULE)
            except RunActive:
                continue  # started meanwhile (by an admin, or another tick)
            self._starter.start(run)
            started.append(run)
        for run in stalled:
            # Its own name per attempt: Step Functions keeps an execution's name for 90 days.
            self._starter.start(run, attempt=f"resumed-{int(now.timestamp())}")
        return TickOutcome(started, stalled)


def run_times(store: RunStore, organization_id: UUID, now: datetime) -> RunTimes:
    """The latest run of each kind and when the schedule reconciles next (inside the caller's
    transaction)."""
    latest = store.latest_runs(organization_id)
    schedule = store.schedule_of(organization_id)
    if schedule is None or not (schedule.enabled and schedule.connected):
        return RunTimes(latest, None)
    starts = [run.started_at for run in latest.values() if run.started_at is not None]
    if not starts:
        return RunTimes(latest, now)
    due = max(starts) + timedelta(minutes=schedule.interval_minutes)
    return RunTimes(latest, max(due, now))
