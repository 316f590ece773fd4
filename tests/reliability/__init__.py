"""The reliability suite: load, faults, fds, environment, generated bad input, broker abuse.

Every test runs in the testbed and prints its figures as `reliability: ...` lines, which
tests/reliability/conftest.py repeats in pytest's terminal summary.
"""
