"""Reads that lag and answers that get lost: the real operator against the AWS stand-in with a read lag
of up to 3 s and a fifth of all writes losing their answer (the connection reset, or the answer held past
the operator's read timeout), for every kind: created, changed and deleted, with no duplicate and no
write the desired state did not call for (tests/reliability/writes.py counts them from the request log).
The first create, update and delete of each object lose their answer for certain, both ways for every
kind (a connection reset, and an answer held past the read timeout), and each of the three both ways
across the kinds.

The operator assumes a consistency bound of 8 s here (above the stand-in's lag; the default is 30 s,
which `make reliability` runs with). `make reliability --only lag lost lagged-lost` runs the same at
full size, with kill -9 in the create's windows and 30 % throttling on top.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from q_operator.emulate.aws.config import LOST_ANSWER_KINDS
from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import aws_resources, changed, facts_of, manifest
from tests.reliability.consistency import lost_ways
from tests.reliability.harness import KIND_PATHS, KINDS, owner_mark
from tests.reliability.writes import CHANGE_OP, CREATES, DELETES, Needed, tally

pytestmark = pytest.mark.e2e

READ_LAG = 3.0
AWS_ARGS = [
    "--build-seconds",
    "0.5",
    "--read-lag",
    str(READ_LAG),
    "--lost-answer-rate",
    "0.2",
    "--lost-answer-kinds",
    "reset,timeout",
    "--lost-answer-hold",
    "6",
    "--seed",
    "21",
]
#: A `timeout` lost answer is held 6 s; the operator gives up on it after 3 s (30 s by default).
OPERATOR_ENV = {"Q_OPERATOR_CONSISTENCY_SECONDS": "8", "Q_OPERATOR_AWS_READ_TIMEOUT": "3"}


LOST_RATE = 0.2


def forced_modes(kind: str) -> tuple[str, str, str]:
    """How the first create, update and delete of `kind` lose their answer: both ways for every kind,
    and every one of the three both ways across the kinds (they alternate from kind to kind)."""
    first, second = LOST_ANSWER_KINDS if KINDS.index(kind) % 2 == 0 else LOST_ANSWER_KINDS[::-1]
    return first, second, first


def _apply(sandbox: Sandbox, obj: Mapping[str, Any]) -> None:
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj))


def _losing_the_answer(sandbox: Sandbox, op: tuple[str, str], mode: str, act: Callable[[], object]) -> None:
    """Do `act` while every write loses its answer the `mode` way, until `op` has lost one so (then back
    to a fifth, either way)."""
    seen = len(sandbox.aws_requests())

    def lost() -> bool:
        return any(
            (e.get("service"), e.get("operation")) == op and e.get("lost") == mode
            for e in sandbox.aws_requests()[seen:]
        )

    sandbox.aws("POST", "/_emulator/config", {"lost_answer_rate": 1.0, "lost_answer_kinds": [mode]})
    try:
        act()
        wait_for(f"{op[1]} to lose its answer ({mode})", lost, timeout=60, interval=0.05)
    finally:
        restore = {"lost_answer_rate": LOST_RATE, "lost_answer_kinds": list(LOST_ANSWER_KINDS)}
        sandbox.aws("POST", "/_emulator/config", restore)


def _get(sandbox: Sandbox, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    return sandbox.get(KIND_PATHS[str(obj["kind"])], meta["namespace"], meta["name"])


def _ready(sandbox: Sandbox, obj: Mapping[str, Any], generation: int) -> bool:
    live = _get(sandbox, obj) or {}
    ready = condition(live, "Ready", "True", current=True)
    return ready is not None and live.get("metadata", {}).get("generation") == generation


def _held_by(sandbox: Sandbox, mark: str, kind: str, key: tuple[str, ...] | None) -> list[str]:
    """The AWS resources of `kind` tagged as this object's or (library items) under its natural key."""
    state = sandbox.aws("GET", "/_emulator/state")
    return [
        r.id
        for r in aws_resources(state)
        if r.kind == kind and (r.owner_tag == mark or (key is not None and r.natural_key == key))
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_lagging_reads_and_lost_answers_make_no_duplicate_and_no_unneeded_write(
    sandbox: Sandbox, namespace: str, kind: str
) -> None:
    """Create, change and delete one object while reads trail writes by up to 3 s and a fifth of the
    writes lose their answer (the first create, update and delete for certain, both ways among them): one
    resource at every moment it is looked at, then none; exactly the writes the three steps call for."""
    start = len(sandbox.aws_requests())
    obj = manifest(kind, "lagged", namespace)
    on_create, on_update, on_delete = forced_modes(kind)
    _losing_the_answer(sandbox, CREATES[kind], on_create, lambda: _apply(sandbox, obj))
    wait_for(f"{kind} Ready", lambda: _ready(sandbox, obj, 1), timeout=90, interval=0.5)
    live = _get(sandbox, obj) or {}
    mark = owner_mark(live)
    facts = facts_of(kind)
    key = None if facts.tagged else facts.natural_key(obj)  # untagged kinds: known by their natural key
    assert len(_held_by(sandbox, mark, kind, key)) == 1

    _losing_the_answer(sandbox, CHANGE_OP[kind], on_update, lambda: _apply(sandbox, changed(obj)))
    wait_for(f"{kind} Ready after the change", lambda: _ready(sandbox, obj, 2), timeout=90, interval=0.5)
    assert len(_held_by(sandbox, mark, kind, key)) == 1

    plural = KIND_PATHS[kind].rsplit("/", 1)[1]
    _losing_the_answer(
        sandbox,
        DELETES[kind],
        on_delete,
        lambda: sandbox.kubectl("delete", plural, "-n", namespace, "lagged", "--wait=false"),
    )
    wait_for(f"{kind} gone", lambda: _get(sandbox, obj) is None, timeout=90, interval=0.5)
    assert _held_by(sandbox, mark, kind, key) == []

    log = sandbox.aws_requests()[start:]
    counted = tally(log, Needed().add(kind, created=1, changed=1, deleted=1), [kind])
    modes = lost_ways(log)[kind]
    lagged = sum(1 for entry in log if entry.get("lagged"))
    said = ", ".join(f"{modes[m]} by {m}" for m in LOST_ANSWER_KINDS)
    print(f"{kind}: {counted.summary()}; {modes.total()} answers lost ({said}), {lagged} reads lagged")
    assert modes.total() >= 3
    assert all(modes[m] >= 1 for m in LOST_ANSWER_KINDS), f"a way of losing answers never hit {kind}: {modes}"
    assert counted.unneeded == 0, counted.summary()
    assert counted.missing == 0, counted.summary()
