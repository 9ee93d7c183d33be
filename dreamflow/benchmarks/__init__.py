"""Benchmarks (not tests): the APFO/SDS/VSD convergence race and per-stage throughput.

`dreamflow benchmark` runs both and writes docs/benchmarks.md; see README "Benchmarks".
"""
