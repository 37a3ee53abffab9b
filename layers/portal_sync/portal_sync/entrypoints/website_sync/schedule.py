"""The EventBridge schedule of functions/website_sync (template.yaml): the mentors whose facts a
write changed (the database trigger's requests: a pause written through the Data API), the
certificate sweep, then the start of every change whose delivery is not started yet (its
request's dispatch failed, or the Lambda stopped between commit and start), and the
redeliveries that are due (failed changes on a growing schedule; changes that waited for a
Dynamics connection, once there is one)."""

from __future__ import annotations

from portal_sync.bootstrap import website_sync as wiring


def run() -> dict[str, int]:
    with wiring.visibility() as service:
        requested = service.reconsider_requested()
    with wiring.visibility() as service:
        swept = service.sweep()
    with wiring.visibility() as service:
        redelivered = service.redeliver_due()
    return {
        "requested": requested,
        "reconsidered": swept,
        "redelivered": redelivered,
        "dispatched": wiring.dispatch_pending(),
    }
