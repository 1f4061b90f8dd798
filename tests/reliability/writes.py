"""Writes the desired state did not call for, counted from the AWS stand-in's request log.

A scenario knows what it asked for: so many objects created, so many changed, so many deleted. Each of
those calls for a known number of writes per kind (`Needed.of`); every write the operator sent beyond
that is unneeded — an update or a re-create made because a stale read looked like drift or absence, a
delete sent again while the first one had not shown yet, a call repeated blindly after its answer was
lost. What counts as sent:

- creates: those that made something. A replay of the same clientToken makes nothing (AWS answers with
  the first result), so a create that takes a token (botocore's model says which) counts distinct
  tokens; one without a token makes a resource each time it is not refused. A refused create (409,
  429, ...) made nothing.
- updates and deletes: every request AWS did not throttle (a throttled call is rejected unexecuted and
  resent by botocore itself), answered or lost, refused or not: each one the engine chose to send.

The tally is pure (a list of log entries in, counts out), so the fast e2e test and the reliability rows
judge by the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session

from tests.kinds import TEST_KINDS, KindFacts

Op = tuple[str, str]

#: The stand-in's own test of a read (docs/aws-standin.md): everything else is a write.
READ_PREFIXES = ("Get", "List", "Describe", "BatchGet")


@cache
def _input_members(service: str, operation: str) -> frozenset[str]:
    """The request members of an operation, from botocore's model (the source of truth)."""
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    return frozenset(model.input_shape.members) if model.input_shape is not None else frozenset()


def _follow_ups(facts: KindFacts) -> tuple[str, ...]:
    """Writes a create makes after the call that made the resource: TagResource, for a tagged kind
    whose create call takes no tags (RegisterConnector)."""
    if facts.tagged and "tags" not in _input_members(facts.info.service, facts.create_op):
        return ("TagResource",)
    return ()


#: (service, operation) of each kind's create, the one update `changed()` calls for, its delete.
CREATES: Mapping[str, Op] = {f.kind: (f.info.service, f.create_op) for f in TEST_KINDS}
CHANGE_OP: Mapping[str, Op] = {f.kind: (f.info.service, f.update_op) for f in TEST_KINDS}
DELETES: Mapping[str, Op] = {f.kind: (f.info.service, f.delete_op) for f in TEST_KINDS}
SERVICES: Mapping[str, str] = {f.kind: f.info.service for f in TEST_KINDS}
FOLLOW_UPS: Mapping[str, tuple[str, ...]] = {f.kind: _follow_ups(f) for f in TEST_KINDS}


@dataclass
class Needed:
    """Writes the desired state calls for, by (service, operation)."""

    counts: Counter[Op] = field(default_factory=Counter)

    def add(self, kind: str, created: int = 0, changed: int = 0, deleted: int = 0) -> Needed:
        """`created` objects of `kind` made from the harness's manifests, `changed` of them changed once
        with `changed()`, `deleted` deleted."""
        self.counts[CREATES[kind]] += created
        for follow_up in FOLLOW_UPS[kind]:
            self.counts[(SERVICES[kind], follow_up)] += created
        self.counts[CHANGE_OP[kind]] += changed
        self.counts[DELETES[kind]] += deleted
        return self


@dataclass(frozen=True)
class Tally:
    """What was sent, what was needed, and the difference."""

    sent: Mapping[Op, int]
    needed: Mapping[Op, int]

    @property
    def unneeded(self) -> int:
        return sum(max(0, n - self.needed.get(op, 0)) for op, n in self.sent.items())

    @property
    def missing(self) -> int:
        """Needed writes never sent (the audit would show the object stuck or drifted)."""
        return sum(max(0, n - self.sent.get(op, 0)) for op, n in self.needed.items())

    def extra(self) -> dict[str, int]:
        """Operation → writes beyond the needed ones (only those with any)."""
        return {
            f"{service}:{operation}": n - self.needed.get((service, operation), 0)
            for (service, operation), n in sorted(self.sent.items())
            if n > self.needed.get((service, operation), 0)
        }

    def summary(self) -> str:
        sent = sum(self.sent.values())
        needed = sum(self.needed.values())
        extra = ", ".join(f"{op} +{n}" for op, n in self.extra().items())
        said = f"{sent} writes for {needed} needed, {self.unneeded} unneeded"
        return f"{said} ({extra})" if extra else said


def is_write(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


def tally(log: Iterable[Mapping[str, Any]], needed: Needed, kinds: Iterable[str]) -> Tally:
    """Count the writes of `kinds` (every call to their services that is not a read) in `log` (the
    operator's calls only) against `needed`."""
    services = {SERVICES[kind] for kind in kinds}
    creates = set(CREATES.values())
    sent: Counter[Op] = Counter()
    tokens: dict[Op, set[str]] = {}
    for entry in log:
        op = (str(entry.get("service")), str(entry.get("operation")))
        if op[0] not in services or not is_write(op[1]) or entry.get("error") == "ThrottlingException":
            continue
        if op in creates:
            if entry.get("error"):
                continue  # refused: made nothing
            if "clientToken" in _input_members(*op) and entry.get("clientToken"):
                tokens.setdefault(op, set()).add(str(entry["clientToken"]))
                continue
        sent[op] += 1
    for op, seen in tokens.items():
        sent[op] += len(seen)
    return Tally(dict(sent), dict(needed.counts))
