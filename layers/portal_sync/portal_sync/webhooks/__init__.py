"""Inbound webhooks: verification, source configuration, receipts and the queue envelope."""
