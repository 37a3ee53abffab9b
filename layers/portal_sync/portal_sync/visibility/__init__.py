"""Peer mentors on HLF's public website: desired state, outbox, delivery to Dynamics."""
