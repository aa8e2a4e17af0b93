"""Relisten: recorded psychotherapy sessions, reviewed against the manual, measured over time."""

__version__ = "0.1.0"
