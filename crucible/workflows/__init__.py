"""Deterministic workflow code only: one module per kind of run."""
