"""Benchmarks that print ratios against a baseline measured in the same run.

The machines Crucible is measured on are shared and noisy, so a figure on its own
means little: each benchmark times a baseline and its subject side by side, in
alternating rounds, and reports the subject as a ratio of the baseline.
"""
