"""Wiring: the one place that builds services from settings (cosmicpython's bootstrap).

A module per function (webhook_ingest, process_event, admin_api, website_sync, reconcile) builds what that
function needs, once per execution environment, and imports an adapter only when a call first
needs it, so no function pays at cold start for another's clients. `shared` holds what several
of them build the same way. Handlers import from here; logic never does.
"""

from __future__ import annotations

import sys
from functools import _lru_cache_wrapper


def reset(*also: str) -> None:
    """Forgets everything built so far (a test's or `make run`'s new environment, a restored
    snapshot's), and what the modules named in `also` cached."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name.startswith(__name__ + ".") or name in also):
            continue
        for value in vars(module).values():
            if isinstance(value, _lru_cache_wrapper):
                value.cache_clear()
