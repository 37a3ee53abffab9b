"""Shared code of the portal sync functions (the Lambda layer)."""
