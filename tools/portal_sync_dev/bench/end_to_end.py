"""End to end: signed webhooks over loopback HTTP to `make run`'s system, and the time from each
202 to the member's row being visible in PostgreSQL; against the watcher's own floor."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from portal_sync_dev.bench.services import SystemProcess
from portal_sync_dev.bench.stats import latency_summary, median_summary
from portal_sync_dev.bench.workload import BenchError, Plan, portal_event_body, signed_webhook


class RowWatcher(threading.Thread):
    """Polls PostgreSQL for the profiles of the contacts it awaits; notes when each appears
    (the time the poll that found it started: the row was committed before that)."""

    def __init__(self, database_url: str, interval: float = 0.005) -> None:
        super().__init__(name="row-watcher", daemon=True)
        self._url = database_url
        self._interval = interval
        self._pending: dict[str, None] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.poll_seconds = 0.0

    def expect(self, contact_id: str) -> None:
        with self._lock:
            self._pending[contact_id] = None

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._halt.is_set():
                with self._lock:
                    awaited = list(self._pending)
                if awaited:
                    started = time.perf_counter()
                    rows = conn.execute(
                        "select dynamics_contact_id from profiles"
                        " where dynamics_contact_id = any(%s)",
                        (awaited,),
                    ).fetchall()
                    self.polls += 1
                    self.poll_seconds += time.perf_counter() - started
                    with self._lock:
                        for (contact_id,) in rows:
                            self._pending.pop(contact_id, None)
                            self.seen[contact_id] = started
                self._halt.wait(self._interval)

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)


@dataclass
class Sent:
    contact_id: str
    event_id: str
    started: float
    answered: float
    status: int


def send_webhooks(
    url: str,
    secret: str,
    count: int,
    senders: int,
    rate: float | None,
    watcher: RowWatcher,
) -> list[Sent]:
    """`count` signed webhooks from `senders` threads: at `rate` per second (open loop), or as
    fast as the answers come (closed loop) when rate is None."""
    import httpx

    sent: list[Sent] = []
    indexes = itertools.count()
    lock = threading.Lock()
    start = time.perf_counter() + 0.05
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            with httpx.Client(timeout=30) as client:
                while True:
                    with lock:
                        index = next(indexes)
                    if index >= count:
                        return
                    if rate:
                        delay = start + index / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    contact_id = str(uuid.uuid4())
                    body = portal_event_body(contact_id)
                    headers = signed_webhook(secret, body)
                    watcher.expect(contact_id)
                    began = time.perf_counter()
                    response = client.post(url, content=body, headers=headers)
                    answered = time.perf_counter()
                    with lock:
                        sent.append(
                            Sent(
                                contact_id,
                                headers["webhook-id"],
                                began,
                                answered,
                                response.status_code,
                            )
                        )
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"sending webhooks failed: {errors[0]!r}")
    return sent


def end_to_end_run(
    system: SystemProcess, events: int, rate: float | None, senders: int
) -> dict[str, Any]:
    import psycopg

    info = system.info
    watcher = RowWatcher(system.database_url)
    watcher.start()
    try:
        sent = send_webhooks(
            info["webhook_url"], info["webhook_secret"], events, senders, rate, watcher
        )
        watcher.wait_all(timeout=60)
    finally:
        watcher.stop()
    accepted = [s for s in sent if s.status == 202]
    latencies = [
        max(0.0, watcher.seen[s.contact_id] - s.answered)
        for s in accepted
        if s.contact_id in watcher.seen
    ]
    answers = [s.answered - s.started for s in sent]
    wall = max(s.answered for s in sent) - min(s.started for s in sent)
    with psycopg.connect(system.database_url) as conn:
        rows = conn.execute(
            "select extract(epoch from processed_at - received_at)::float8"
            " from portal_sync_events where event_id = any(%s)",
            ([s.event_id for s in accepted],),
        ).fetchall()
    queued = [float(r[0]) for r in rows]
    return {
        "sent": len(sent),
        "accepted": len(accepted),
        "not_seen": len(accepted) - len(latencies),
        "visible": latency_summary(latencies),
        "answer": latency_summary(answers),
        "ingest_http_per_s": len(sent) / wall,
        "queue_wait": latency_summary(queued),
        "watcher_poll_ms": 1000 * watcher.poll_seconds / max(1, watcher.polls),
    }


def watcher_floor(database_url: str, rows: int, rate: float) -> dict[str, Any]:
    """The measurement's own floor: rows inserted directly, seen by the same watcher."""
    import psycopg

    watcher = RowWatcher(database_url)
    watcher.start()
    inserted: dict[str, float] = {}
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            start = time.perf_counter()
            for index in range(rows):
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                contact_id = f"bench-floor-{uuid.uuid4()}"
                watcher.expect(contact_id)
                conn.execute(
                    "insert into profiles (dynamics_contact_id) values (%s)", (contact_id,)
                )
                inserted[contact_id] = time.perf_counter()
        watcher.wait_all(timeout=10)
    finally:
        watcher.stop()
    latencies = [max(0.0, watcher.seen[c] - at) for c, at in inserted.items() if c in watcher.seen]
    return {"visible": latency_summary(latencies), "not_seen": rows - len(latencies)}


def end_to_end(system: SystemProcess, plan: Plan) -> dict[str, Any]:
    # A few events first: the functions' first invocations (cold start) are not the subject.
    end_to_end_run(system, 20, None, 2)
    floors, paced, burst = [], [], []
    for _ in range(plan.reps):
        floors.append(watcher_floor(system.database_url, plan.e2e_floor_rows, plan.e2e_rate))
        paced.append(end_to_end_run(system, plan.e2e_events, plan.e2e_rate, plan.e2e_paced_senders))
        burst.append(end_to_end_run(system, plan.e2e_burst_events, None, plan.e2e_burst_senders))
    return {
        "floor": {"reps": floors, "median": median_summary(floors)},
        "paced": {"reps": paced, "median": median_summary(paced)},
        "burst": {"reps": burst, "median": median_summary(burst)},
        "rate": plan.e2e_rate,
        "paced_senders": plan.e2e_paced_senders,
        "burst_senders": plan.e2e_burst_senders,
        "events": plan.e2e_events,
        "burst_events": plan.e2e_burst_events,
    }
