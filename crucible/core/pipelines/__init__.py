"""Pipelines of steps (seed 002, diagram 4)."""
