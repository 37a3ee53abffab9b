"""What on-call would receive, for a person running `make run`: every message published to the
on-call SNS topic, collected from a queue subscribed to it and answered as JSON at
`oncall_alerts_url` (run.json). On AWS the topic's subscribers (e-mail, a pager) get them."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3


class OnCallAlerts:
    def __init__(self, queue_url: str) -> None:
        self._sqs = boto3.client("sqs")
        self._queue_url = queue_url
        self._alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._collector = threading.Thread(target=self._collect, name="on-call", daemon=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def start(self) -> OnCallAlerts:
        self._collector.start()
        threading.Thread(
            target=self._server.serve_forever, name="on-call-http", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._collector.join(timeout=5)

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._alerts)

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except Exception:  # the emulator stopping under us: try again, or stop
                self._stop.wait(1)
                continue
            for message in messages:
                notification = json.loads(message["Body"])
                with self._lock:
                    self._alerts.append(
                        {
                            "subject": notification.get("Subject"),
                            "message": notification.get("Message"),
                            "published_at": notification.get("Timestamp"),
                        }
                    )
                self._sqs.delete_message(
                    QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def _handler(alerts: OnCallAlerts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/alerts", "/alerts/"):
                self.send_error(404)
                return
            body = json.dumps(alerts.alerts()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
