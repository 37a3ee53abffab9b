"""The EventBridge schedule of functions/reconcile (template.yaml, every minute): reconciles the
organisations whose interval has passed and resumes runs that stopped making progress."""

from __future__ import annotations

from portal_sync.bootstrap import reconcile as wiring


def run() -> dict[str, int]:
    outcome = wiring.schedule().tick()
    return {"started": len(outcome.started), "resumed": len(outcome.resumed)}
