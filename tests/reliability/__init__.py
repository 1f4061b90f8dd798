"""Reliability suite: the real operator against both stand-ins under crashes, throttling, faults, drift,
deletion edge cases, downtime and name clashes; `python -m tests.reliability` prints one table."""
