"""Membership and course events, whatever format they arrived in."""
