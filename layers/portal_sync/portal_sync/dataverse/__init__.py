"""Dataverse webhooks: the `RemoteExecutionContext` wire format and its mapping to sync events."""
