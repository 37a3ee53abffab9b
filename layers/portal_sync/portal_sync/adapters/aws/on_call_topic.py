"""The on-call SNS topic (template.yaml's OnCallTopic): where the website-sync schedule publishes
an organisation's outage alert and its recovery notice (the OnCallPublisher of
visibility/outages.py)."""

from __future__ import annotations

import unicodedata
from typing import Any

from portal_sync.observability import tracer

# SNS takes only ASCII subjects under 100 characters, with no line breaks (the message itself
# is any UTF-8); organisations' names are Norwegian and can be long.
MAX_SUBJECT = 99
_SPELLED = str.maketrans({"æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "\n": " ", "\r": " "})


def sns_subject(subject: str) -> str:
    decomposed = unicodedata.normalize("NFKD", subject.translate(_SPELLED))
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii")
    printable = "".join(c for c in ascii_only if c.isprintable())
    return printable if len(printable) <= MAX_SUBJECT else printable[: MAX_SUBJECT - 3] + "..."


class OnCallTopic:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self._arn = topic_arn

    @tracer.capture_method
    def publish(self, subject: str, message: str) -> None:
        self._client.publish(TopicArn=self._arn, Subject=sns_subject(subject), Message=message)
