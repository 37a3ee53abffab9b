"""Applying queued events to the database: the logic of `process_event`."""
