"""Roster: a self-hosted people directory service."""

__version__ = "0.1.0"
