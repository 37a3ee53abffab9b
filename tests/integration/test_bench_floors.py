"""The cold-start benchmark's floors (tools/portal_sync_dev/bench/cold_start.py) against the
local services it starts itself: embedded PostgreSQL and moto's server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from portal_sync_dev.bench import cold_start as bench
from portal_sync_dev.build import load_target


def test_the_bare_handlers_answer_against_the_local_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each floor's script does its I/O against moto and PostgreSQL and gives its answer (the
    functions' own first calls need the artifact: `make bench-cold` checks them)."""
    here = bench.Host.this()
    layer = tmp_path / "layer"
    layer.mkdir()
    # The venv's psycopg and boto3, as the VENV layout takes them: no build needed here.
    target = replace(load_target(), runtime=f"python{here.python}")
    venv = bench.Layout(
        {}, layer, bench.runtime_dir(tmp_path / "runtime"), bench.VENV, target, here
    )
    # A PostgreSQL of the bench's own: on the suite's server it would give the functions' role
    # (a role of the whole cluster) its own password, locking out the running local system.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with bench.local_services(tmp_path) as services:
        floors = [s for s in bench.scenarios(services) if s.mode == bench.BARE_IO]
        answers = {s.name: bench._run(venv, s)[0]["status"] for s in floors}
    assert answers == {s.name: s.expected for s in floors}
    assert len(floors) == len(bench.REAL_CALLS) + 1  # and the bare SQS call
    # As deployed: the database URL is read from its secret, not given.
    assert services.environment["DATABASE_URL"] is None
    assert services.environment["DATABASE_URL_SECRET_ARN"]
