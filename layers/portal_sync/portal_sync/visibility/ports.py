"""What the visibility logic needs from storage, Dynamics and Step Functions, and the records it
exchanges with them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from portal_sync.access.authority import Authority
from portal_sync.dataverse.connection import DEFAULT_API_KEY_HEADER, DynamicsConnection
from portal_sync.visibility.rules import MentorFacts


@dataclass
class MentorStatus:
    """A peer mentor's visibility in one organisation: what decides it, what is wanted, what
    Dynamics was last told, and the delivery of the current change."""

    organization_id: UUID
    profile_id: UUID
    contact_id: str | None
    membership_active: bool
    paused: bool
    hidden_manually: bool
    certified_until: date | None
    desired: bool
    applied: bool | None
    sync_state: str  # in_sync | pending | failed
    current_change_id: UUID | None
    attempts: int
    last_synced_at: datetime | None
    last_error: str | None
    # When the schedule delivers the state again (a failed change, or one waiting for a
    # connection); None: nothing planned. How many it started since the last success.
    next_attempt_at: datetime | None = None
    redeliveries: int = 0

    def facts(self) -> MentorFacts:
        return MentorFacts(
            self.membership_active, self.paused, self.hidden_manually, self.certified_until
        )


@dataclass(frozen=True)
class Change:
    """An outbox row: one change of a mentor's desired visibility, delivered by one execution."""

    id: UUID
    organization_id: UUID
    profile_id: UUID
    desired: bool
    reason: str


@dataclass(frozen=True)
class OutOfStep:
    """A mentor the reconciling sweep found: `facts` when the desired state no longer follows
    from what it depends on (a certificate expired today); `undelivered` when Dynamics was not
    told the desired state and nothing is under way to tell it."""

    organization_id: UUID
    profile_id: UUID
    reason: Literal["facts", "undelivered"]


@dataclass(frozen=True)
class DynamicsSettings:
    """An organisation's Dynamics connection as its integration settings hold it; the secret is
    kept apart (docs/security.md), so this alone cannot call Dynamics."""

    base_url: str
    auth_type: Literal["oauth_client_credentials", "api_key"]
    tenant_id: str | None
    client_id: str | None
    visibility_column: str
    api_key_header: str = DEFAULT_API_KEY_HEADER
    application_user_id: str | None = None  # learned through WhoAmI; None until then


@dataclass(frozen=True)
class DynamicsTarget:
    """Where and how to write an organisation's mentor visibility; `application_user_id` is
    who the connection acts as in Dynamics, once learned (None: not yet)."""

    connection: DynamicsConnection
    visibility_column: str
    application_user_id: str | None = None


# Who may do what, by user id (the access rules read it from the database, never from claims).
AuthorityOf = Callable[[UUID], Authority]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a mentor's visibility log (peer_mentor_sync_log)."""

    id: UUID
    action: str
    actor: str
    message: str
    desired: bool | None
    applied: bool | None
    created_at: datetime


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str | None


class VisibilityRepository(Protocol):
    def mentor_organizations(self, profile_id: UUID) -> list[UUID]: ...
    def history(
        self, organization_id: UUID, profile_id: UUID, limit: int, cursor: str | None
    ) -> HistoryPage:
        """The mentor's log newest first; `cursor` a page's `next_cursor` (ValueError when it
        is not one)."""
        ...

    def lock_mentor(self, organization_id: UUID, profile_id: UUID) -> MentorStatus | None: ...
    def save_mentor(self, status: MentorStatus) -> None: ...
    def add_change(
        self, organization_id: UUID, profile_id: UUID, desired: bool, reason: str
    ) -> UUID: ...
    def change(self, change_id: UUID) -> Change | None: ...
    def log(
        self,
        status: MentorStatus,
        action: str,
        message: str,
        actor: str,
        change_id: UUID | None = None,
    ) -> None: ...
    def undispatched_changes(self, limit: int, older_than_seconds: float) -> list[Change]: ...
    def mark_dispatched(
        self, change_id: UUID, execution_arn: str | None, error: str | None
    ) -> None: ...
    def mentors_out_of_step(self, today: date, limit: int) -> list[OutOfStep]:
        """Every mentor whose desired state no longer follows from its facts, or whose
        delivery was lost, at most `limit`: organisations take turns, the longest unchanged
        mentor of each first (the reconciling sweep)."""
        ...

    def audit(
        self, organization_id: UUID, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        """An entry in the organisation's audit log (audit_logs)."""
        ...

    def failed_mentors(self, organization_id: UUID, limit: int) -> list[UUID]:
        """The organisation's mentors whose sync failed, the longest failed first."""
        ...

    def due_redeliveries(self, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        """Mentors whose next_attempt_at has come, of organisations with a Dynamics
        connection, the longest waiting first."""
        ...

    def take_reconsiderations(self, limit: int) -> list[tuple[UUID, UUID]]:
        """The mentors a write of what their visibility depends on asked about (a database
        trigger records them), oldest first, taken off the list in the caller's transaction."""
        ...

    def join_outage(self, organization_id: UUID, profile_id: UUID, cause: str) -> None:
        """The mentor's delivery gave up: it joins the organisation's open outage, which is
        opened with `cause` when there is none (visibility/outages.py)."""
        ...

    def blocked_until(self, organization_id: UUID) -> datetime | None: ...
    def block_until(self, organization_id: UUID, moment: datetime) -> None: ...
    def dynamics_settings(self, organization_id: UUID) -> DynamicsSettings | None:
        """None when the organisation has no Dynamics base URL configured."""
        ...

    def learn_application_user(
        self, organization_id: UUID, connection: DynamicsConnection, user_id: str
    ) -> None:
        """Stores the application user `connection` acts as, unless the organisation's
        connection changed meanwhile (then it is another's, and is asked again)."""
        ...


class DynamicsTargets(Protocol):
    def target(self, organization_id: UUID) -> DynamicsTarget | None: ...


class ContactWriter(Protocol):
    def update_contact(
        self, connection: DynamicsConnection, contact_id: str, fields: dict[str, Any]
    ) -> None: ...


class ApplicationUsers(Protocol):
    def application_user_id(self, connection: DynamicsConnection) -> str:
        """The Dynamics systemuserid the connection's credentials act as (WhoAmI); raises
        DynamicsError."""
        ...


class ExecutionStarter(Protocol):
    def start(self, change: Change) -> str:
        """Starts (or finds already started) the delivery of one change; its execution ARN."""
        ...
