"""Side effects, grouped by the outside system they touch."""
