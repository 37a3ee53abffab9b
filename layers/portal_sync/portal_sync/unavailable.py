"""The failures that are nobody's fault and pass with time: each flow retries them (the queue
redelivers, an HTTP caller gets a 503), none is logged as an error of the event or request.
Adapters raise them; logic and the entry points handle them without knowing the adapter."""

from __future__ import annotations


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached or dropped the connection; the work can be retried."""


class SourceStoreUnavailable(Exception):
    """The webhook source store (Secrets Manager) could not be asked; answer 503."""
