"""The performance benchmark (`make bench`, `python -m tests.bench [--quick]`): the real operator against
both stand-ins, the AWS one enforcing per-operation rate limits and a build time, measured against the
bound AWS sets. Not part of `make test`; docs/performance.md publishes its figures.

- harness.py: the measuring instruments (a watch that timestamps Ready, a psutil sampler, the call logs).
- cases.py: the cases (N QPlugins, a mix of kinds, steady state, restart) and their figures.
- __main__.py: the command line and the printed report.
"""
