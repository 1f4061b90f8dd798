"""Writes the desired state did not call for, counted from the AWS stand-in's request log.

A scenario knows what it asked for: so many objects created, so many changed, so many deleted. Each of
those calls for a known number of writes per kind (`Needed.of`); every write the operator sent beyond
that is unneeded — an update or a re-create made because a stale read looked like drift or absence, a
delete sent again while the first one had not shown yet, a call repeated blindly after its answer was
lost. What counts as sent:

- creates: those that made something. A token kind's replay of the same clientToken makes nothing
  (AWS answers with the first result), so CreatePlugin and RegisterConnector count distinct tokens; every
  CreateLibraryItem that was not refused makes an item. A refused create (409, 429, ...) made nothing.
- updates and deletes: every request AWS did not throttle (a throttled call is rejected unexecuted and
  resent by botocore itself), answered or lost, refused or not: each one the engine chose to send.

The tally is pure (a list of log entries in, counts out), so the fast e2e test and the reliability rows
judge by the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.kinds import TEST_KINDS, KindFacts

Op = tuple[str, str]

#: Writes of a kind besides its create, update and delete operations (tests/kinds.py): Q Apps sets
#: isVerified with a call of its own.
OTHER_UPDATES: Mapping[str, tuple[str, ...]] = {"QLibraryItem": ("UpdateLibraryItemMetadata",)}
#: Writes a create makes after the call that made the resource: RegisterConnector takes no tags.
CREATE_FOLLOW_UPS: Mapping[str, tuple[str, ...]] = {"AppFlowConnector": ("TagResource",)}
#: Creates that carry an idempotency token (the API's clientToken).
TOKEN_CREATES = frozenset({"CreatePlugin", "RegisterConnector"})


def _ops(facts: KindFacts, names: Iterable[str]) -> tuple[Op, ...]:
    return tuple((facts.info.service, name) for name in names)


#: (service, operation) of each kind's writes, by what they do.
CREATES: Mapping[str, Op] = {f.kind: (f.info.service, f.create_op) for f in TEST_KINDS}
#: The one update the harness's `changed()` calls for, per kind.
CHANGE_OP: Mapping[str, Op] = {f.kind: (f.info.service, f.update_op) for f in TEST_KINDS}
DELETES: Mapping[str, Op] = {f.kind: (f.info.service, f.delete_op) for f in TEST_KINDS}
TAGGING = ("TagResource", "UntagResource")
UPDATES: Mapping[str, tuple[Op, ...]] = {
    f.kind: _ops(f, (f.update_op, *OTHER_UPDATES.get(f.kind, ()), *(TAGGING if f.tagged else ())))
    for f in TEST_KINDS
}


@dataclass
class Needed:
    """Writes the desired state calls for, by (service, operation)."""

    counts: Counter[Op] = field(default_factory=Counter)

    def add(self, kind: str, created: int = 0, changed: int = 0, deleted: int = 0) -> Needed:
        """`created` objects of `kind` made from the harness's manifests, `changed` of them changed once
        with `changed()`, `deleted` deleted."""
        self.counts[CREATES[kind]] += created
        for follow_up in CREATE_FOLLOW_UPS.get(kind, ()):
            self.counts[(CREATES[kind][0], follow_up)] += created
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


def write_ops(kinds: Iterable[str]) -> set[Op]:
    ops: set[Op] = set()
    for kind in kinds:
        ops |= {CREATES[kind], DELETES[kind], *UPDATES[kind]}
    return ops


def tally(log: Iterable[Mapping[str, Any]], needed: Needed, kinds: Iterable[str]) -> Tally:
    """Count the writes of `kinds` in `log` (the operator's calls only) against `needed`."""
    ops = write_ops(kinds)
    creates = set(CREATES.values())
    sent: Counter[Op] = Counter()
    tokens: dict[Op, set[str]] = {}
    for entry in log:
        op = (str(entry.get("service")), str(entry.get("operation")))
        if op not in ops or entry.get("error") == "ThrottlingException":
            continue
        if op in creates:
            if entry.get("error"):
                continue  # refused: made nothing
            if op[1] in TOKEN_CREATES and entry.get("clientToken"):
                tokens.setdefault(op, set()).add(str(entry["clientToken"]))
                continue
        sent[op] += 1
    for op, seen in tokens.items():
        sent[op] += len(seen)
    return Tally(dict(sent), dict(needed.counts))
