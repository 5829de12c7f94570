"""Crucible: durable test orchestration on Temporal."""

__version__ = "0.1.0"
