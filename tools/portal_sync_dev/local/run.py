"""`make run`: the whole system locally, until Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

from portal_sync_dev import ROOT
from portal_sync_dev.local.system import LocalSystem


def main() -> None:
    state_dir = Path(os.environ.get("PORTAL_SYNC_STATE_DIR", ROOT / ".local"))
    system = LocalSystem(
        state_dir=state_dir,
        port=int(os.environ.get("PORT", "8000")),
        database_url=os.environ.get("DATABASE_URL") or None,
        verbose=bool(os.environ.get("VERBOSE")),
        # Edits in the Dynamics stand-in reach the app as Dataverse's webhooks would; set
        # DYNAMICS_SANDBOX_DROP_SHARE=0.5 to lose half of them and watch reconciliation heal it.
        dynamics_webhooks=os.environ.get("DYNAMICS_SANDBOX_WEBHOOKS", "1") != "0",
        dynamics_drop_share=float(os.environ.get("DYNAMICS_SANDBOX_DROP_SHARE", "0")),
        # Each organisation with a Dynamics connection is reconciled every interval.
        reconcile_on_schedule=os.environ.get("RECONCILE_ON_SCHEDULE", "1") != "0",
    )
    if not os.environ.get("VERBOSE"):
        # moto's server logs every SQS poll of the consumer; VERBOSE=1 brings that back.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    system.start()
    info = system.run_info()
    run_file = state_dir / "run.json"
    run_file.write_text(json.dumps(info, indent=2))
    run_file.chmod(0o600)
    print(f"portal sync is running on {info['base_url']}")
    print(f"  admin console:    {info['console_url']}")
    print(f"  webhook endpoint: {info['webhook_url']}")
    print(f"  database:         {info['database_url']}")
    print(f"  Dynamics stand-in: {info['dynamics_sandbox_url']} (token: dynamics_sandbox_token)")
    print(f"  details and demo tokens: {run_file}")
    print("Ctrl-C stops it; the data stays under .local/ for the next run.", flush=True)
    try:
        stopping.wait()
    finally:
        print("stopping...", flush=True)
        system.stop()
        run_file.unlink(missing_ok=True)
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
