"""`make bench`: throughput, latency and memory of the functions, each against a baseline
measured in the same run (machines are noisy), written to BENCHMARKS.md.

- Ingest: the `webhook_ingest` handler invoked in process with API Gateway v2 events built as
  the local HTTP adapter builds them, moto (SQS, Secrets Manager) in process, PostgreSQL up;
  against the floor of verifying the same Standard Webhooks signature and parsing the same JSON
  alone (`portal_sync.inbound.signature` + `json.loads`).
- Apply: the `process_event` handler with SQS batches (10 and 100) of queued events as the
  ingest queues them, against a bare batched upsert of the same rows (profiles and memberships,
  `executemany` in one transaction per batch).
- End to end: the system `make run` starts, in a process of its own; signed webhooks over
  loopback HTTP; the time from the 202 to the member's row being visible in PostgreSQL. The
  baseline is the same watcher seeing rows inserted directly (the measurement's own floor).
- Import: a full import of 100,000 members (contact + membership) from the Dataverse stand-in
  through the import's own steps (reconciliation/runs.py, the change-tracking reader, the run
  store), page by page as the state machine drives it, against a bare batched upsert of the same
  rows; the stand-in's share of the time is measured on its side (import_rows.py).
- Memory: peak RSS of each function in a process of its own running a loop of invocations,
  against a process that only imports boto3 and makes one call.

Every measurement is repeated (median taken) and runs in a fresh worker process (workers.py); a
pyinstrument profile of the handlers says where their time goes (profile.py). `make bench-cold`
(cold_start.py) writes the "Cold start" section, which `make bench` keeps as it is.

The modules: workload.py (what is sent, and how much), workers.py (the in-process
measurements), end_to_end.py and services.py (the system over HTTP, the database), stats.py,
report.py (tables and verdicts) with the prose in methods.md and findings.md, run.py (the
command).
"""
