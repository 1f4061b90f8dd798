"""The stand-in held to the real kube-apiserver: every case's answers compared, field by field.

A difference either is in `known.KNOWN` (with the reason it does not matter) or fails the test; a
KNOWN entry that no longer matches anything fails too, so the list stays the list of what differs.
`python -m tests.differential` prints the same comparison as a report.
"""

from __future__ import annotations

import fnmatch
import re

import pytest

from tests.differential import cases, known, servers
from tests.differential.conftest import Pair
from tests.differential.harness import Difference, Record, Steps, compare, judge

# Which KNOWN entries matched something, for the staleness check at the end.
_USED: set[int] = set()
_RAN: set[str] = set()


def run_case(pair: Pair, name: str) -> tuple[list[Record], list[Record]]:
    """Run one case on both servers, each in a fresh namespace of the case's name."""
    namespace = re.sub(r"[^a-z0-9-]", "-", f"d-{name}")[:63].strip("-")
    recorded = []
    for endpoint in (pair.real, pair.standin):
        servers.create_namespace(endpoint, namespace)
        steps = Steps(endpoint, namespace)
        try:
            cases.CASES[name](steps)
        finally:
            steps.close()
        recorded.append(steps.records)
    return recorded[0], recorded[1]


def _explain(name: str, new: list[Difference]) -> str:
    lines = [f"{len(new)} difference(s) between the stand-in and kube-apiserver in case {name!r}:"]
    lines += [f"  {d}" for d in new[:60]]
    lines.append("Fix the stand-in, or add an entry with its reason to tests/differential/known.py.")
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(cases.CASES))
def test_the_stand_in_answers_as_kube_apiserver(pair: Pair, name: str) -> None:
    real, standin = run_case(pair, name)
    assert real, f"case {name} recorded nothing"
    verdict = judge(name, compare(real, standin), known.KNOWN)
    _RAN.add(name)
    _USED.update(id(entry) for _, entry in verdict.accepted)
    assert not verdict.new, _explain(name, verdict.new)


def test_every_known_difference_still_occurs() -> None:
    """An entry whose case ran but which matched nothing describes a difference that is gone."""
    stale = [
        entry
        for entry in known.KNOWN
        if id(entry) not in _USED and any(fnmatch.fnmatchcase(ran, entry.case) for ran in _RAN)
    ]
    assert not stale, "KNOWN entries that match no difference any more (remove them):\n" + "\n".join(
        f"  {e.case} {e.path}: {e.why}" for e in stale
    )
