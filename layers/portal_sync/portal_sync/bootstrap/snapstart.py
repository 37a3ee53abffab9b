"""Lambda SnapStart (template parameter `SnapStart`, docs/deploy.md): what an execution
environment restored from a snapshot must not take from it, and what the snapshot may prepare.

A snapshot is taken after the handler module was imported, once per published version, and many
environments are restored from it, days later. So after a restore:

- no connection opened before the snapshot is used (its socket is dead, its server long gone):
  every ConnectionProvider drops its connection, the next call opens a new one;
- the AWS clients and their session are made again (their credentials are the snapshot's);
- secrets read before the snapshot are read again (they may have been rotated meanwhile);
- `random` is reseeded (the jitter of retries would otherwise repeat in every restored copy).
  `secrets`, `uuid4` and `os.urandom` read the kernel's generator, which a restore refreshes.

While the snapshot is being made (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start) nobody waits, so
the modules a first request would import late (PyJWT with cryptography, botocore, httpx) are
imported then: no I/O, nothing secret, only code in memory.

The hooks are registered with the runtime's `snapshot_restore_py` (the Lambda Python runtime
provides it; the layer does not ship it). Without it (outside Lambda, or SnapStart off) nothing
is registered and nothing changes.
"""

from __future__ import annotations

import importlib
import os
import random
from collections.abc import Iterable

from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.bootstrap import reset

# What holds state a restore must not reuse, beside the wiring modules (bootstrap.*).
_STATEFUL_MODULES = (
    "portal_sync.adapters.aws.clients",
    "portal_sync.adapters.aws.secret_settings",
)
_registered = False


def prepare_for_snapshots(prime: Iterable[str] = ()) -> None:
    """Registers the restore hooks once per process; primes `prime` (module names) when this
    initialisation is the one a snapshot is taken of."""
    global _registered
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return
    if not _registered:
        register_before_snapshot(forget_connections)
        register_after_restore(after_restore)
        _registered = True
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        for module in prime:
            importlib.import_module(module)


def forget_connections() -> None:
    ConnectionProvider.discard_all()


def after_restore() -> None:
    forget_connections()
    reset(*_STATEFUL_MODULES)
    random.seed()
