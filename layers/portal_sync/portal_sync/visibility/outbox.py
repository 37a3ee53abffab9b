"""The second step of the visibility flow (rules → outbox → delivery; docs/website-visibility.md):
a change of a mentor's desired state is recorded, with its outbox row, in the transaction that
changed what it depends on, and `dispatch` starts one delivery per row.

The row commits with the status change, so a change is never lost: a delivery that could not be
started right after the commit (the request's own dispatch failed, the Lambda died) is started by
the next dispatch (the schedule's). Each execution is named after its row, so a row started twice
is delivered once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from portal_sync.observability import logger, tracer
from portal_sync.visibility.ports import ExecutionStarter, MentorStatus, VisibilityRepository
from portal_sync.visibility.rules import desired_visibility, reasons_hidden


class Outbox:
    def __init__(self, repo: VisibilityRepository, today: Callable[[], date]) -> None:
        self._repo = repo
        self._today = today

    def record(
        self,
        status: MentorStatus,
        action: str,
        actor: str,
        *,
        force: bool = False,
        quiet: bool = False,
    ) -> MentorStatus:
        """Saves `status` (changed by `action`) with its desired state worked out again, and the
        log entry; adds an outbox row when the desired state changed, when `force`d (a sync or a
        retry asked for), or when the mentor is pending with no change to deliver (a status row
        just created: it starts pending, and Dynamics was never told). `quiet`: a check by the
        system, which writes nothing when it finds nothing to change."""
        today = self._today()
        reasons = reasons_hidden(status.facts(), today)
        desired = desired_visibility(status.facts(), today)
        changed = desired != status.desired
        undelivered = status.sync_state == "pending" and status.current_change_id is None
        if quiet and not (changed or force or undelivered):
            return status
        status.desired = desired
        change_id = None
        if changed or force or undelivered:
            change_id = self._repo.add_change(
                status.organization_id, status.profile_id, desired, action
            )
            # Only the newest change is delivered: an older execution finds it superseded.
            status.current_change_id = change_id
            status.sync_state = "pending"
            status.attempts = 0
            # A new delivery starts: the last one's error and planned retry are its past.
            status.last_error, status.next_attempt_at = None, None
        self._repo.save_mentor(status)
        wording = "visible" if desired else "hidden (" + "; ".join(reasons) + ")"
        self._repo.log(status, action, f"Desired state: {wording}", actor, change_id)
        return status

    @tracer.capture_method
    def dispatch(self, starter: ExecutionStarter, limit: int = 50, older_than: float = 0) -> int:
        """Starts the delivery of changes not started yet; returns how many were started."""
        started, failed = 0, []
        for change in self._repo.undispatched_changes(limit, older_than):
            try:
                arn = starter.start(change)
            except Exception as exc:  # any failure leaves the row for the next dispatch
                self._repo.mark_dispatched(change.id, None, type(exc).__name__)
                failed.append(str(change.id))
                continue
            self._repo.mark_dispatched(change.id, arn, None)
            started += 1
        if failed:
            logger.warning(
                "Could not start visibility deliveries; the next dispatch will",
                extra={"change_ids": failed},
            )
        return started
