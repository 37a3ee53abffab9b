"""Data access: the only place that talks to PostgreSQL."""
