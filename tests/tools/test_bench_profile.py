"""Where `make bench` says a handler's time goes (tools/portal_sync_dev/bench/profile.py): the
samples of a pyinstrument profile put into categories."""

from __future__ import annotations

from portal_sync_dev.bench.profile import APPLY_RULES, EMULATOR, INGEST_RULES, OTHER, categorise

HANDLER = "handler\x00/var/task/functions/webhook_ingest/app.py\x0060"


def frame(function: str, path: str) -> str:
    return f"{function}\x00{path}\x001\x01attributes"


def test_samples_outside_the_handler_are_not_counted() -> None:
    totals, handler = categorise(
        [([frame("main", "/x/bench/workers.py"), frame("claim", "/x/receipt_ledger.py")], 1.0)],
        INGEST_RULES,
        "functions/webhook_ingest/app.py",
    )
    assert (totals, handler) == ({}, 0.0)


def test_a_sticky_frame_keeps_its_category_but_the_emulator_wins() -> None:
    sqs = frame("send", "/layer/portal_sync/adapters/aws/sqs_queue.py")
    records = [
        # Inside the SQS adapter, pydantic stays the SQS call's time (sticky).
        ([HANDLER, sqs, frame("dump", "/site-packages/pydantic/main.py")], 2.0),
        # moto answering in the same process is the emulator's, whoever called it.
        ([HANDLER, sqs, frame("dispatch", "/site-packages/moto/core/responses.py")], 3.0),
        # Not sticky: what the check calls is named by the innermost rule.
        (
            [HANDLER, frame("_verify", "/x/ingest.py"), frame("v", "/site-packages/pydantic/x.py")],
            1.0,
        ),
        ([HANDLER, frame("route", "/site-packages/aws_lambda_powertools/x.py")], 4.0),
    ]
    totals, handler = categorise(records, INGEST_RULES, "functions/webhook_ingest/app.py")
    assert handler == 10.0
    assert totals == {
        "SQS SendMessage (boto3/botocore client side)": 2.0,
        EMULATOR: 3.0,
        "pydantic (receipt, queue message)": 1.0,
        OTHER: 4.0,
    }


def test_the_batch_writes_are_named_by_their_table() -> None:
    handler = "handler\x00/var/task/functions/process_event/app.py\x0010"
    records = [
        ([handler, frame("flush", "/x/batched.py"), frame("insert_profiles", "/x/w.py")], 1.0),
        (
            [
                handler,
                frame("flush", "/x/batched.py"),
                frame("write_many", "/x/postgres/sync_log.py"),
            ],
            1.0,
        ),
    ]
    totals, _ = categorise(records, APPLY_RULES, "functions/process_event/app.py")
    assert set(totals) == {"write: profiles (1 insert, 1 update)", "write: sync log (1 upsert)"}
