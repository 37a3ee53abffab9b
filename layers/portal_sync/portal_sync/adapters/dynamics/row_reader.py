"""Reads the rows Dataverse leaves out of events over 256 KB, through the organisation's
Dynamics connection (the one website visibility writes with): the RowReader of
inbound/ports.py. What an administrator is told of a row that cannot be read is the logic's
(RowUnreadable, DynamicsError.message); this only picks which case it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from portal_sync.dataverse.connection import DynamicsError
from portal_sync.inbound.ports import RowUnreadable

if TYPE_CHECKING:
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi
    from portal_sync.visibility.ports import DynamicsTargets


class WebApiRowReader:
    """One per invocation of the consumer."""

    def __init__(self, targets: DynamicsTargets, web_api: DataverseWebApi) -> None:
        self._targets = targets
        self._web_api = web_api
        # Organisations whose Dynamics failed transiently in this invocation: their other
        # events fail at once instead of each waiting for a timeout (a failed batch is applied
        # a second time one by one, and the function's time is bounded).
        self._unavailable: dict[UUID, DynamicsError] = {}

    # Not traced: the Tracer records a method's answer in X-Ray, and this one is a member's row
    # (the Web API call itself is traced by the client).
    def read_row(
        self, organization_id: UUID, entity_set: str, row_id: str, select: Sequence[str]
    ) -> dict[str, Any] | None:
        if organization_id in self._unavailable:
            raise self._unavailable[organization_id]
        target = self._targets.target(organization_id)
        if target is None:
            raise RowUnreadable.no_connection()
        try:
            return self._web_api.read_row(target.connection, entity_set, row_id, select)
        except DynamicsError as exc:
            if exc.retryable:
                self._unavailable[organization_id] = exc
                raise  # an outage or a 429: the event is retried by the queue
            raise RowUnreadable.refused(exc.message) from None
