"""Lambda SnapStart (docs/deploy.md, "SnapStart"): an execution environment restored from a
snapshot, as the Lambda runtime restores one.

The runtime runs the hooks registered with `snapshot_restore_py` (which it provides, and the tests
install): before the snapshot in reverse order of registration, after each restore in order.
Between the two, in reality, hours or weeks pass: the servers the snapshot's sockets talked to
closed them long ago, the function's credentials changed, and many environments start from the
same memory. The hooks here are the ones the functions' wiring registers at import.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Database
from snapshot_restore_py import get_after_restore, get_before_snapshot

ROOT = Path(__file__).resolve().parents[2]


def snapshot() -> None:
    for hook, args, kwargs in reversed(get_before_snapshot()):
        hook(*args, **kwargs)


def restore() -> None:
    for hook, args, kwargs in get_after_restore():
        hook(*args, **kwargs)


def functions_backends(db: Database) -> set[int]:
    with db.connect() as conn:
        rows = conn.execute(
            "select pid from pg_stat_activity where application_name = 'portal-sync'"
        ).fetchall()
    return {row["pid"] for row in rows}


def close_server_side(db: Database, pids: set[int]) -> None:
    """What the snapshot's connections find after a restore: their server ended them."""
    with db.connect() as conn:
        for pid in pids:
            conn.execute("select pg_terminate_backend(%s)", (pid,))


def features(system: Any) -> httpx.Response:
    return httpx.get(
        f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}/features",
        headers={"authorization": f"Bearer {system.seed.admin_token}"},
        timeout=15,
    )


def test_the_first_request_after_a_restore_opens_a_new_connection(
    system: Any, db: Database
) -> None:
    """A connection taken into a snapshot is dead after the restore; using it would answer the
    first request of every restored environment with 503."""
    assert features(system).status_code == 200
    before = functions_backends(db)
    assert before, "the admin API holds a connection once it answered"

    snapshot()
    close_server_side(db, before)
    restore()

    answer = features(system)
    assert answer.status_code == 200, answer.text
    assert functions_backends(db) - before, "the request ran on a connection of its own"


def test_a_restored_environment_uses_its_own_credentials(
    system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS clients made before the snapshot hold the credentials of the environment that
    was snapshotted; a restored one is given its own."""
    from portal_sync.adapters.aws.clients import client

    def access_key() -> str:
        key: str = client("sqs")._request_signer._credentials.get_frozen_credentials().access_key
        return key

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIASNAPSHOTTED")
    restore()  # a clean start for this test: clients made from the variable just set
    assert access_key() == "ASIASNAPSHOTTED"

    snapshot()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIARESTORED")
    restore()
    assert access_key() == "ASIARESTORED"
    # Back to the usual clients for the tests after this one.
    monkeypatch.undo()
    restore()


def test_environments_restored_from_one_snapshot_do_not_share_their_randomness() -> None:
    """The retries' jitter draws from `random`: copies of one snapshot would all wait the
    same, in step, hammering Dynamics together."""
    snapshot()
    frozen = random.getstate()
    draws = []
    for _ in range(2):
        random.setstate(frozen)  # each restored copy starts from the snapshot's memory
        restore()
        draws.append([random.random() for _ in range(4)])
    assert draws[0] != draws[1]


@pytest.mark.parametrize(("initialisation", "primed"), [("snap-start", True), ("on-demand", False)])
def test_the_snapshot_already_holds_what_a_first_request_would_import(
    initialisation: str, primed: bool, tmp_path: Path
) -> None:
    """While a snapshot is made nobody waits, so the imports a first request would pay for
    (PyJWT and cryptography, botocore) are done then; an ordinary cold start defers them."""
    probe = (
        "import json, sys\n"
        "import app\n"
        "print(json.dumps({m: m in sys.modules for m in ('jwt', 'cryptography', 'botocore.session')}))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(
            [
                str(ROOT / "functions/admin_api"),
                str(ROOT / "layers/portal_sync"),
                sysconfig.get_paths()["purelib"],
            ]
        ),
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialisation,
        "AWS_DEFAULT_REGION": "eu-north-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-S", "-P", "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == {"jwt": primed, "cryptography": primed, "botocore.session": primed}
