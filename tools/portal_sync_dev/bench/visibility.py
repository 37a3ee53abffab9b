"""The website-visibility rows of `make bench`: how soon a coordinator's change reaches Dynamics,
and what the scheduled sweep costs over 10,000 mentors; each against a baseline of the same run.

- Change → PATCH: the local system as `make run` runs it (`LocalSystem`, its schedules on), in
  the measuring process, so that the Dataverse stand-in's own record of each request's arrival
  (`requests` / `received`, monotonic clock) can be read. A coordinator pauses and resumes
  seeded peer mentors through `POST /functions/v1/website-sync/{mentorId}/pause|resume`, paced;
  latency is from the route's answer to the stand-in's arrival of the PATCH of that contact with
  the new value. A mentor's next change waits for the PATCH of its previous one (a change made
  before would supersede it, and there would be no PATCH to time). A second series of the same
  size and pace makes each change as the app does through Supabase's Data API: an `update` of
  `paused` committed on its own, no route called (the database's trigger asks for the
  reconsideration and announces it, `make run`'s listener posts it to `/reconsiderations`),
  timed from the commit's return. The baseline of both is the stand-in's own latency: the same
  number of PATCHes sent straight to it with httpx, at the same pace.
- Sweep: 10,000 peer mentors in step (shown, certified, desired = applied) and a few out of step
  (a certificate that expired yesterday, still desired), written set-wise; one
  `VisibilityService.sweep()` as the schedule builds it (`bootstrap.website_sync.visibility()`),
  timed with its commit, in a system whose schedule is off (nothing else sweeps). What it did is
  read from outside: the mentors' statuses and their log rows before and after. The baseline is
  a plain `select count(*)` of peer_mentor_status, the floor of reading every mentor once.

Each part runs in a worker process of its own (`python -m portal_sync_dev.bench worker
visibility-latency|visibility-sweep CONFIG RESULT`): the local system sets the functions'
environment in the process it runs in.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal_sync_dev.bench.stats import latency_summary, median_summary
from portal_sync_dev.bench.workers import run_worker
from portal_sync_dev.bench.workload import BenchError, Plan

# Change → PATCH: changes per run, over this many mentors, at this pace (a busy coordinator
# view, well above a chapter's real rate).
CHANGES = 100
MENTORS = 20
CHANGES_PER_S = 5.0
# How long a change's PATCH is waited for before it counts as not seen.
PATCH_WAIT_S = 30.0
# Sweep: mentors in the table, of which this many are out of step.
SWEEP_MENTORS = 10_000
OUT_OF_STEP = 10

ROUTE = "/functions/v1/website-sync/{mentor}/{action}"
CONTACT_PATH = "/api/data/v9.2/contacts({contact})"
STANDIN_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    "odata-version": "4.0",
    "odata-maxversion": "4.0",
    "if-match": "*",
}


def visibility(database: Any, plan: Plan, work_dir: Path) -> dict[str, Any]:
    """Both parts, each in a worker process of its own, `plan.reps` runs each."""
    common = {
        "database_url": database.url,
        "functions_database_url": database.functions_url,
        "reps": plan.reps,
    }
    latency = run_worker(
        "visibility-latency",
        {
            **common,
            "state_dir": str(work_dir / "visibility-latency"),
            "changes": CHANGES,
            "mentors": MENTORS,
            "rate": CHANGES_PER_S,
        },
        work_dir,
        timeout=1800,
    )
    sweep = run_worker(
        "visibility-sweep",
        {
            **common,
            "state_dir": str(work_dir / "visibility-sweep"),
            "mentors": SWEEP_MENTORS,
            "out_of_step": OUT_OF_STEP,
        },
        work_dir,
        timeout=1800,
    )
    return {"latency": latency, "sweep": sweep}


# -- the local system ------------------------------------------------------------------------------


def local_system(config: dict[str, Any], *, schedules: bool) -> Any:
    """`make run`'s system on the benchmark's database (the functions' role keeps the password
    the benchmark gave it); `schedules` off: no consumer, no schedule (nothing sweeps by itself)."""
    import logging

    import psycopg

    from portal_sync_dev.local.system import LocalSystem

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    password = psycopg.conninfo.conninfo_to_dict(config["functions_database_url"])["password"]
    return LocalSystem(
        state_dir=Path(config["state_dir"]),
        port=0,
        database_url=config["database_url"],
        functions_password=str(password),
        consume=schedules,
        dynamics_webhooks=schedules,
        reconcile_on_schedule=schedules,
    ).start()


@dataclass
class Mentor:
    profile_id: uuid.UUID
    contact_id: str
    paused: bool = False


def seed_mentors(system: Any, count: int) -> list[Mentor]:
    """Certified peer mentors of the demo organisation, shown and in sync, each a contact (with
    its membership) in the stand-in too, as an import would have left them."""
    from portal_sync_dev.local.dataverse_standin import ROLE_PEER_MENTOR
    from portal_sync_dev.local.seed import VISIBILITY_COLUMN

    mentors = [Mentor(uuid.uuid4(), str(uuid.uuid4())) for _ in range(count)]
    memberships = [str(uuid.uuid4()) for _ in mentors]
    for index, (mentor, membership) in enumerate(zip(mentors, memberships, strict=True)):
        name = f"Mentor {index}"
        system.dynamics.add_contact(
            mentor.contact_id, firstname="Bench", lastname=name, **{VISIBILITY_COLUMN: True}
        )
        system.dynamics.add_row(
            "hlf_memberships",
            membership,
            {"hlf_role": ROLE_PEER_MENTOR},
            lookups={"hlf_contactid": ("contact", mentor.contact_id, f"Bench {name}")},
        )
    insert_mentors(
        system.database_url,
        system.seed.org_id,
        [m.profile_id for m in mentors],
        [m.contact_id for m in mentors],
        memberships,
        out_of_step=0,
    )
    return mentors


def insert_mentors(
    database_url: str,
    organization_id: uuid.UUID,
    profile_ids: list[uuid.UUID],
    contact_ids: list[str],
    membership_ids: list[str] | None,
    out_of_step: int,
) -> None:
    """Profiles, peer-mentor memberships and statuses, set-wise in one transaction: shown,
    desired = applied, in sync; the first `out_of_step` with a certificate that expired
    yesterday (still desired: what the sweep is there to find), the others certified for a
    year."""
    import psycopg

    row_ids: list[str | None] = [*membership_ids] if membership_ids else [None] * len(profile_ids)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "insert into profiles (id, dynamics_contact_id, first_name, last_name)"
            " select id, contact, 'Bench', 'Mentor ' || n"
            " from unnest(%s::uuid[], %s::text[]) with ordinality as m(id, contact, n)",
            (profile_ids, contact_ids),
        )
        conn.execute(
            "insert into organization_memberships"
            " (organization_id, profile_id, role, dynamics_row_id)"
            " select %s, id, 'peer_mentor', row_id"
            " from unnest(%s::uuid[], %s::text[]) as m(id, row_id)",
            (organization_id, profile_ids, row_ids),
        )
        conn.execute(
            "insert into peer_mentor_status (organization_id, profile_id, certified_until,"
            " website_visible_desired, website_visible_applied, sync_state, last_synced_at)"
            " select %s, id,"
            " case when n <= %s then current_date - 1 else current_date + 365 end,"
            " true, true, 'in_sync', now()"
            " from unnest(%s::uuid[]) with ordinality as m(id, n)",
            (organization_id, out_of_step, profile_ids),
        )


def delete_mentors(database_url: str, profile_ids: list[uuid.UUID]) -> None:
    """The benchmark's mentors gone (their memberships, statuses and logs with them)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute("delete from profiles where id = any(%s)", (profile_ids,))


def coordinator_token(system: Any) -> tuple[str, uuid.UUID]:
    """A coordinator of the demo organisation and their Supabase JWT; returns (token, profile)."""
    import psycopg

    from portal_sync_dev.local.seed import user_token

    user_id = uuid.uuid4()
    email = f"coordinator-{user_id.hex[:8]}@example.org"
    with psycopg.connect(system.database_url) as conn:
        row = conn.execute(
            "insert into profiles (auth_user_id, first_name, last_name)"
            " values (%s, 'Bench', 'Coordinator') returning id",
            (user_id,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role)"
            " values (%s, %s, 'coordinator')",
            (system.seed.org_id, row[0]),
        )
    return user_token(system.jwt_secret, user_id, email), row[0]


def wait_until_idle(system: Any, timeout: float = 180.0) -> int:
    """Waits for the demo organisation's first import (the schedule's first tick) to finish,
    and the visibility changes it started to be delivered, so that what is measured then is the
    changes alone; returns how many mentors were still pending when the wait gave up."""
    import psycopg

    deadline = time.monotonic() + timeout
    runs = running = pending = 0
    with psycopg.connect(system.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "select (select count(*) from portal_sync_runs where organization_id = %s),"
                " (select count(*) from portal_sync_runs where organization_id = %s"
                "  and phase = 'running'),"
                " (select count(*) from peer_mentor_status where organization_id = %s"
                "  and sync_state = 'pending')",
                (system.seed.org_id,) * 3,
            ).fetchone()
            runs, running, pending = row if row else (0, 0, 0)
            if runs and not running and not pending:
                return 0
            time.sleep(0.5)
    if running or not runs:
        raise BenchError("the demo organisation's first import did not finish")
    return int(pending)


# -- change → PATCH --------------------------------------------------------------------------------


@dataclass
class Change:
    contact_id: str
    shown: bool
    started: float
    answered: float
    arrived: float | None = None


class PatchLog:
    """The PATCHes of contacts the stand-in received, in arrival order, read as they come."""

    def __init__(self, standin: Any) -> None:
        from portal_sync_dev.local.seed import VISIBILITY_COLUMN

        self._standin = standin
        self._column = VISIBILITY_COLUMN
        self._read = len(standin.received)
        self._arrivals: dict[str, list[tuple[float, Any]]] = {}

    def _update(self) -> None:
        received = self._standin.received
        for request in received[self._read :]:
            if request.method == "PATCH" and request.path.startswith("/api/data/v9.2/contacts("):
                contact = request.path.removeprefix("/api/data/v9.2/contacts(").rstrip(")")
                try:
                    value = json.loads(request.body).get(self._column)
                except ValueError:
                    value = None
                self._arrivals.setdefault(contact, []).append((request.time, value))
        self._read = len(received)

    def arrival(self, change: Change) -> float | None:
        """When the first PATCH of the contact with the change's value, sent after the change
        was asked for, arrived (None: not yet)."""
        self._update()
        for arrived, value in self._arrivals.get(change.contact_id, []):
            if value is change.shown and arrived >= change.started:
                return arrived
        return None

    def wait(self, change: Change, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while (arrived := self.arrival(change)) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return arrived


# Makes one change of a mentor (to `paused`); returns when it was asked for and when it was
# answered (the route's answer, the commit's return).
ChangeMaker = Callable[[Mentor, bool], tuple[float, float]]


def paced_changes(
    system: Any, mentors: list[Mentor], count: int, rate: float, make: ChangeMaker
) -> dict[str, Any]:
    """`count` pauses and resumes at `rate` per second, round the mentors, each made by `make`;
    the latency of each from its answer to its PATCH's arrival at the stand-in."""
    patches = PatchLog(system.dynamics)
    changes: list[Change] = []
    previous: dict[str, Change] = {}
    start = time.monotonic() + 0.05
    for index in range(count):
        mentor = mentors[index % len(mentors)]
        if mentor.contact_id in previous:
            patches.wait(previous[mentor.contact_id], PATCH_WAIT_S)
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        started, answered = make(mentor, not mentor.paused)
        mentor.paused = not mentor.paused
        change = Change(mentor.contact_id, not mentor.paused, started, answered)
        changes.append(change)
        previous[mentor.contact_id] = change
    for change in changes:
        change.arrived = patches.wait(change, PATCH_WAIT_S)
    seen = [c for c in changes if c.arrived is not None]
    return {
        "changes": len(changes),
        "not_seen": len(changes) - len(seen),
        # A PATCH may arrive before the answer (the route starts the delivery before it
        # answers): 0 then.
        "patch": latency_summary([max(0.0, c.arrived - c.answered) for c in seen if c.arrived]),
        "before_answer": sum(1 for c in seen if c.arrived and c.arrived < c.answered),
        "from_request": latency_summary([c.arrived - c.started for c in seen if c.arrived]),
        "answer": latency_summary([c.answered - c.started for c in changes]),
    }


def changes_run(
    system: Any, token: str, mentors: list[Mentor], count: int, rate: float
) -> dict[str, Any]:
    """The coordinator's changes through the website-sync routes, timed from the answer."""
    import httpx

    with httpx.Client(
        base_url=system.base_url, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as client:

        def through_the_route(mentor: Mentor, paused: bool) -> tuple[float, float]:
            action = "pause" if paused else "resume"
            started = time.monotonic()
            response = client.post(ROUTE.format(mentor=mentor.profile_id, action=action))
            answered = time.monotonic()
            if response.status_code != 200:
                raise BenchError(f"{action} answered {response.status_code}: {response.text}")
            return started, answered

        return paced_changes(system, mentors, count, rate, through_the_route)


def data_api_run(system: Any, mentors: list[Mentor], count: int, rate: float) -> dict[str, Any]:
    """The app's changes straight into the database, as through Supabase's Data API: an update
    of `paused` in a transaction of its own, no route called (the trigger asks for the
    reconsideration and announces it); timed from the commit's return."""
    import psycopg

    with psycopg.connect(system.database_url, autocommit=True) as conn:

        def straight_into_the_table(mentor: Mentor, paused: bool) -> tuple[float, float]:
            started = time.monotonic()
            updated = conn.execute(
                "update peer_mentor_status set paused = %s"
                " where organization_id = %s and profile_id = %s",
                (paused, system.seed.org_id, mentor.profile_id),
            ).rowcount
            committed = time.monotonic()
            if updated != 1:
                raise BenchError(f"the update of mentor {mentor.profile_id} changed {updated} rows")
            return started, committed

        return paced_changes(system, mentors, count, rate, straight_into_the_table)


def standin_floor(system: Any, contacts: list[str], count: int, rate: float) -> dict[str, Any]:
    """The stand-in's own latency: `count` PATCHes straight to it at the same pace, each from
    its sending to its arrival there (as the stand-in records it) and to its answer."""
    import httpx

    from portal_sync_dev.local.seed import VISIBILITY_COLUMN

    patches = PatchLog(system.dynamics)
    shown = dict.fromkeys(contacts, True)
    changes: list[Change] = []
    headers = {**STANDIN_HEADERS, "authorization": f"Bearer {system.dynamics_token}"}
    with httpx.Client(base_url=system.dynamics.url, headers=headers, timeout=30) as client:
        start = time.monotonic() + 0.05
        for index in range(count):
            contact = contacts[index % len(contacts)]
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            shown[contact] = not shown[contact]
            started = time.monotonic()
            response = client.patch(
                CONTACT_PATH.format(contact=contact), json={VISIBILITY_COLUMN: shown[contact]}
            )
            answered = time.monotonic()
            if response.status_code != 204:
                raise BenchError(f"the stand-in answered {response.status_code}: {response.text}")
            changes.append(Change(contact, shown[contact], started, answered))
    for change in changes:
        change.arrived = patches.wait(change, 5.0)
    seen = [c for c in changes if c.arrived is not None]
    return {
        "not_seen": len(changes) - len(seen),
        "arrival": latency_summary([c.arrived - c.started for c in seen if c.arrived]),
        "round_trip": latency_summary([c.answered - c.started for c in changes]),
    }


def latency_run(
    system: Any, token: str, mentors: list[Mentor], contacts: list[str], count: int, rate: float
) -> dict[str, Any]:
    changed = changes_run(system, token, mentors, count, rate)
    written = data_api_run(system, mentors, count, rate)
    floor = standin_floor(system, contacts, count, rate)
    floor_p99 = floor["round_trip"]["p99_ms"]
    return {
        **changed,
        "data_api": {**written, "ratio": written["patch"]["p99_ms"] / floor_p99},
        "floor": floor,
        "ratio": changed["patch"]["p99_ms"] / floor_p99,
    }


def latency_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Change → PATCH, `config["reps"]` runs, under `make run`'s system with its schedules."""
    from portal_sync_dev.local.seed import VISIBILITY_COLUMN

    system = local_system(config, schedules=True)
    try:
        mentors = seed_mentors(system, int(config["mentors"]))
        token, coordinator = coordinator_token(system)
        contacts = [str(uuid.uuid4()) for _ in mentors]
        for contact in contacts:
            system.dynamics.add_contact(contact, **{VISIBILITY_COLUMN: True})
        pending_at_start = wait_until_idle(system)
        # Warm-up: each mentor paused and resumed once each way (first invocations, WhoAmI,
        # tokens, the push's connection).
        rate = float(config["rate"])
        changes_run(system, token, mentors, 2 * len(mentors), rate)
        data_api_run(system, mentors, 2 * len(mentors), rate)
        standin_floor(system, contacts, len(contacts), rate)
        reps = [
            latency_run(system, token, mentors, contacts, int(config["changes"]), rate)
            for _ in range(int(config["reps"]))
        ]
        delete_mentors(system.database_url, [m.profile_id for m in mentors] + [coordinator])
    finally:
        system.stop(stop_database=False)
    return {
        "changes": int(config["changes"]),
        "mentors": len(mentors),
        "rate": rate,
        "pending_at_start": pending_at_start,
        "reps": reps,
        "median": median_summary(reps),
    }


# -- the sweep -------------------------------------------------------------------------------------


def log_rows(conn: Any, profile_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Log rows of these mentors, and of every mentor."""
    row = conn.execute(
        "select count(*) filter (where profile_id = any(%s)), count(*) from peer_mentor_sync_log",
        (profile_ids,),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def sweep_run(system: Any, mentors: int, out_of_step: int) -> dict[str, Any]:
    """One sweep over `mentors` seeded mentors (`out_of_step` of them to be hidden) and
    whatever else the table holds; then the seeded mentors deleted."""
    import psycopg
    from portal_sync.bootstrap import website_sync

    from portal_sync_dev.local.seed import VISIBILITY_COLUMN

    profile_ids = [uuid.uuid4() for _ in range(mentors)]
    contact_ids = [str(uuid.uuid4()) for _ in range(mentors)]
    stale, in_step = profile_ids[:out_of_step], profile_ids[out_of_step:]
    for contact in contact_ids:  # shown in Dynamics, as applied says
        system.dynamics.add_contact(contact, **{VISIBILITY_COLUMN: True})
    insert_mentors(
        system.database_url, system.seed.org_id, profile_ids, contact_ids, None, out_of_step
    )
    try:
        with psycopg.connect(system.database_url, autocommit=True) as conn:
            # Statistics as a table of this size has them in production.
            conn.execute("analyze profiles, organization_memberships, peer_mentor_status")
            stale_before, total_before = log_rows(conn, stale)
            in_step_before, _ = log_rows(conn, in_step)
            rows = conn.execute("select count(*) from peer_mentor_status").fetchone()
            table_rows = int(rows[0]) if rows else 0

            started = time.perf_counter()
            with website_sync.visibility() as service:
                returned = service.sweep()
            sweep_s = time.perf_counter() - started

            stale_after, total_after = log_rows(conn, stale)
            in_step_after, _ = log_rows(conn, in_step)
            changed = conn.execute(
                "select count(*) filter (where profile_id = any(%s) and not"
                " website_visible_desired),"
                " count(*) filter (where profile_id = any(%s) and"
                " (not website_visible_desired or sync_state <> 'in_sync'))"
                " from peer_mentor_status",
                (stale, in_step),
            ).fetchone()
            reached, in_step_changed = (int(changed[0]), int(changed[1])) if changed else (0, 0)
        # The floor: every mentor read once, on a connection as the functions open theirs.
        with psycopg.connect(system.functions_database_url, prepare_threshold=None) as conn:
            started = time.perf_counter()
            conn.execute("select count(*) from peer_mentor_status").fetchone()
            count_s = time.perf_counter() - started
    finally:
        delete_mentors(system.database_url, profile_ids)
    per_10k = 10_000 / table_rows
    stale_rows = stale_after - stale_before
    in_step_rows = in_step_after - in_step_before
    return {
        "table_rows": table_rows,
        "sweep_ms": 1000 * sweep_s,
        "sweep_ms_per_10k": 1000 * sweep_s * per_10k,
        "count_ms": 1000 * count_s,
        "count_ms_per_10k": 1000 * count_s * per_10k,
        "ratio": sweep_s / count_s,
        # What sweep() says it did, and what the statuses say.
        "returned": returned,
        "reached": reached,
        "in_step_changed": in_step_changed,
        "log_rows": total_after - total_before,
        "log_rows_out_of_step": stale_rows,
        "log_rows_in_step": in_step_rows,
        "log_rows_others": total_after - total_before - stale_rows - in_step_rows,
    }


def sweep_worker(config: dict[str, Any]) -> dict[str, Any]:
    """The sweep, `config["reps"]` runs, each over freshly seeded mentors."""
    system = local_system(config, schedules=False)
    try:
        from portal_sync.bootstrap import website_sync

        # Warm-up: the wiring, its connection and the statements' first plans.
        with website_sync.visibility() as service:
            service.sweep()
        reps = [
            sweep_run(system, int(config["mentors"]), int(config["out_of_step"]))
            for _ in range(int(config["reps"]))
        ]
    finally:
        system.stop(stop_database=False)
    return {
        "mentors": int(config["mentors"]),
        "out_of_step": int(config["out_of_step"]),
        "reps": reps,
        "median": median_summary(reps),
    }
