"""The EventBridge schedule of functions/website_sync (template.yaml), in this order:

- the mentors whose facts a write changed (the database trigger's requests: a pause written
  through the Data API, when its announcement did not bring them already), and the reconciling
  sweep (desired against applied for every mentor);
- a share of the read-back of the Dynamics column, which repairs hand edits (read_back.py);
- the redeliveries that are due (failed changes on a growing schedule; changes that waited for
  a Dynamics connection, once there is one);
- the start of every change whose delivery is not started yet (its request's dispatch failed,
  or the Lambda stopped between commit and start);
- the organisations' outages: those whose mentors are all delivered again recover, and on-call
  is told once per outage and once per recovery (visibility/outages.py).
"""

from __future__ import annotations

from portal_sync.bootstrap import website_sync as wiring


def run() -> dict[str, int]:
    # Imported here: the routes and tasks of the same function never read back.
    from portal_sync.entrypoints.website_sync import read_back

    with wiring.visibility() as service:
        requested = service.reconsider_requested()
    with wiring.visibility() as service:
        swept = service.sweep()
    read = read_back.run()
    with wiring.visibility() as service:
        redelivered = service.redeliver_due()
    dispatched = wiring.dispatch_pending()
    with wiring.outage_alerts() as outages:
        recovered = outages.close_recovered()
    with wiring.outage_alerts() as outages:
        notified = outages.send()
    return {
        "requested": requested,
        "reconsidered": swept,
        **read,
        "redelivered": redelivered,
        "dispatched": dispatched,
        "outages_recovered": recovered,
        "on_call_notices": notified,
    }
