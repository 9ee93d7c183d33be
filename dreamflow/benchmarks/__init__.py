"""Comparisons and speed (not tests): the race, tuning and recipe reports read the stages' quality
curves (the workflow's compare rules call them), the 2D race, and per-stage throughput.

See README "Comparisons and benchmarks" and docs/guides/comparisons.md.
"""
