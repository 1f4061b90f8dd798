"""Eventual consistency and lost answers: when a read may be older than the engine's own last write,
and what the engine records so that it knows, across restarts.

AWS's reads trail its writes: right after a create a Get may answer NotFound and a List may not show
the resource; after an update or a delete, reads may show the old state for a while. And a write may
act while its answer is lost (errors.OutcomeUnknown). The operator assumes a bound,
`Timing.consistency` (Q_OPERATOR_CONSISTENCY_SECONDS, default 30 s): a write is visible to every
read that many seconds after its answer came, or was lost. Within the bound, a read that would make
the engine write again — an absence (re-create), a difference (update, replace), the resource still
there after our delete (delete again) — or let a finalizer go is not acted on: the cycle waits and
reads again. A read showing what the engine wants ends a wait early, so the bound is paid in full
only when the unusual really happened (a create that did not act after its answer was lost, a
resource deleted by hand seconds after our write, an object deleted seconds after it was created).

What the engine records, in status (the truth across restarts):

- `lastWrite`: its last write to the current resource — which, when its answer came (or was lost),
  the generation it was sent for, when the operator created the resource, and the spec paths a read
  may not show yet: `*` (any) after an update or a delete; after a create, only those the create set
  with a later call (`Created.set_later`), since a read that shows the resource at all shows what
  the call that made it wrote;
- `createPending.sent`: a create under this intent may have reached AWS by then (its answer was lost,
  or the operator restarted and cannot know what the stopped process sent): it is looked for until
  the bound has passed after that, and only then is it concluded that it did not happen;
- `retiring[].deleteRequested`: when the delete of a replaced resource was sent.

And in memory (`memory.Met`): when this process first met an object that already held AWS resources.
A write an earlier process sent just before it stopped was never recorded, so for the bound after
that moment the engine doubts reads of the generations that existed then, as it doubts them after a
write of its own. A generation made later cannot have been written by the stopped process.

reconcile.py calls `meet` and `doubt`; the steps call in here at each write (`created`, `found`,
`updated`, `delete_sent`, `create_lost`) and before acting on a read (`create_sent_at`,
`wait_for_create`, `gone_doubted`, `delete_settling`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from q_operator.engine import conditions as c
from q_operator.engine.contract import Decision, Outcome
from q_operator.engine.cycle import Cycle, Held, same_ref
from q_operator.engine.memory import Met
from q_operator.kinds.base import Created, Observation, Phase

#: In `settling`: any spec path may still show its value from before the write.
ANY = "*"
#: Status times are whole seconds (a moment recorded as T happened up to a second after T).
SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Write:
    """status.lastWrite, parsed."""

    operation: str
    at: datetime
    generation: int
    created: datetime | None
    settling: frozenset[str]


def last_write(cy: Cycle) -> Write | None:
    value = cy.get("lastWrite")
    if not isinstance(value, Mapping):
        return None
    at = c.parse_rfc3339(str(value.get("at", "")))
    if at is None:
        return None
    generation = value.get("generation")
    return Write(
        operation=str(value.get("operation", "")),
        at=at,
        generation=generation if isinstance(generation, int) else 0,
        created=c.parse_rfc3339(str(value.get("created") or "")),
        settling=frozenset(str(path) for path in value.get("settling") or ()),
    )


def settled(cy: Cycle, moment: datetime) -> datetime | None:
    """When every read shows a write answered at `moment`; None if they already do (or no bound)."""
    bound = cy.deps.timing.consistency
    if bound <= 0:
        return None
    until = moment + timedelta(seconds=bound) + SLACK
    return until if cy.now < until else None


# ----- this process meets an object


def meet(cy: Cycle) -> None:
    """Remember this process's first cycle of the object, and whether it held AWS resources then."""
    entry = cy.deps.memory.of(cy.obj.uid)
    if entry.met is None:
        held = cy.current_ref() is not None or bool(cy.retiring)
        entry.met = Met(cy.now.timestamp(), cy.obj.generation, held)


def _inherited(cy: Cycle) -> Met | None:
    """The first cycle of an object that already held resources: an unrecorded write may be settling."""
    entry = cy.deps.memory.peek(cy.obj.uid)
    met = entry.met if entry is not None else None
    return met if met is not None and met.held else None


def _met_at(met: Met) -> datetime:
    return datetime.fromtimestamp(met.at, UTC)


# ----- recording writes


def _record(cy: Cycle, operation: str, settling: Iterable[str], created: bool) -> None:
    now = cy.deps.now()  # after the call: its answer (or its loss) came no earlier
    prior = last_write(cy)
    created_at = now if created else (prior.created if prior is not None else None)
    value: dict[str, object] = {
        "operation": operation,
        "at": c.rfc3339(now),
        "generation": cy.obj.generation,
        "settling": sorted(set(settling)),
    }
    if created_at is not None:
        value["created"] = c.rfc3339(created_at)
    cy.set_last_write(value)


def created(cy: Cycle, made: Created) -> None:
    """A create was answered: reads may not show the resource yet, nor what it set with later calls."""
    _record(cy, "create", made.set_later, created=True)


def found(cy: Cycle) -> None:
    """A resource our interrupted create made was found: what else that create did may still lag."""
    _record(cy, "create", (ANY,), created=True)


def updated(cy: Cycle) -> None:
    """An update was sent, answered or not: reads may show the state before it."""
    _record(cy, "update", (ANY,), created=False)


def delete_sent(cy: Cycle, item: Held) -> Held:
    """A delete was sent (answered, or its answer lost): reads may still show the resource for the
    bound. Recorded at once, so a failure later in the cycle keeps it."""
    current = cy.current_ref()
    asked = item.asked(cy.deps.now())
    if current is not None and same_ref(item.ref, current):
        _record(cy, "delete", (ANY,), created=False)
    if any(same_ref(item.ref, old.ref) for old in cy.retiring):
        cy.set_retiring([asked if same_ref(old.ref, item.ref) else old for old in cy.retiring])
    return asked


def created_at(cy: Cycle) -> datetime | None:
    """When the operator created (or found) the current resource, if it recorded that."""
    write = last_write(cy)
    return write.created if write is not None else None


def delete_requested_at(cy: Cycle) -> datetime | None:
    """When the engine asked AWS to delete the current resource (None: it has not, as far as known)."""
    write = last_write(cy)
    return write.at if write is not None and write.operation == "delete" else None


# ----- the create's crash window


def create_sent_at(cy: Cycle, pending: Mapping[str, str]) -> datetime:
    """When a create under this intent may last have reached AWS: as recorded; else now, recorded — the
    operator restarted, and whatever the stopped process sent, it sent before now."""
    sent = c.parse_rfc3339(str(pending.get("sent") or ""))
    if sent is None:
        sent = cy.now
        cy.set_pending({**pending, "sent": c.rfc3339(sent)})
    return sent


def create_lost(cy: Cycle, pending: Mapping[str, str]) -> None:
    """The create's answer was lost: look for it (or replay its token) before creating again."""
    cy.set_pending({**pending, "sent": c.rfc3339(cy.deps.now())})


def wait_for_create(cy: Cycle, sent: datetime) -> Outcome | None:
    """A wait while a create sent at `sent` may still show; None once the bound has passed."""
    until = settled(cy, sent)
    if until is None:
        return None
    why = "an earlier create (its answer lost, or the operator interrupted) may not show yet"
    return wait(cy, until, f"{why}: looking until {c.rfc3339(until)}")


# ----- reads of the current resource


def doubt(cy: Cycle, observation: Observation) -> Outcome | None:
    """A wait, when this read of the current resource may be older than a write and would make the
    cycle write (re-create, update, replace); None when it may be acted on."""
    if observation.phase is Phase.ABSENT:
        until = _absence_doubted(cy)
        why = "AWS does not show it (yet)"
    elif observation.phase is Phase.READY and not observation.up_to_date:
        paths = (*observation.diff, *observation.replace)
        until = _difference_doubted(cy, paths)
        why = f"AWS still differs in {', '.join(paths)}"
    else:
        return None
    if until is None:
        return None
    # Time spent waiting for reads to catch up says nothing about how long builds take: learn none of it.
    cy.deps.builds.abandon(cy.obj.uid)
    return wait(cy, until, f"{why}: reads may trail the last write until {c.rfc3339(until)}")


def _absence_doubted(cy: Cycle) -> datetime | None:
    """A NotFound within the bound after our create or update (or after this process met the object)
    is not a deletion outside the operator."""
    moments = []
    write = last_write(cy)
    if write is not None:
        moments.append(write.at)
    met = _inherited(cy)
    if met is not None:
        moments.append(_met_at(met))
    return settled(cy, max(moments)) if moments else None


def _difference_doubted(cy: Cycle, paths: Iterable[str]) -> datetime | None:
    """A difference in paths our last write may not show yet is not drift — unless the spec changed
    since that write (the change calls for a write of its own)."""
    moments = []
    write = last_write(cy)
    lagging = write is not None and (ANY in write.settling or bool(write.settling & set(paths)))
    if write is not None and lagging and cy.obj.generation <= write.generation:
        moments.append(write.at)
    met = _inherited(cy)
    if met is not None and cy.obj.generation <= met.generation:
        moments.append(_met_at(met))
    return settled(cy, max(moments)) if moments else None


def confirm(cy: Cycle, outcome: Outcome) -> Outcome:
    """Ready at a generation newer than our last update, within the bound after it: the read may show the
    state from before that update (A, then B, then A again) rather than its result. Look once more when
    the bound has passed instead of calling it done."""
    write = last_write(cy)
    if outcome.decision is not Decision.DONE or write is None or write.operation != "update":
        return outcome
    until = settled(cy, write.at) if cy.obj.generation > write.generation else None
    if until is None:
        return outcome
    delay = (until - cy.now).total_seconds()
    message = "Ready; confirming once the last update has settled"
    return dataclasses.replace(outcome, decision=Decision.REQUEUE, delay=delay, message=message)


# ----- deletion


def gone_doubted(cy: Cycle, item: Held) -> datetime | None:
    """An absent read within the bound after the operator created the resource may only say it does not
    show yet: not a reason to let the finalizer go (or to forget a replaced one) before then."""
    return settled(cy, item.created) if item.created is not None else None


def delete_settling(cy: Cycle, item: Held) -> datetime | None:
    """Our delete of `item` may not show yet: a read showing it still there is waited out."""
    return settled(cy, item.requested_at) if item.requested_at is not None else None


# ----- waiting


def delay_until(cy: Cycle, until: datetime) -> float:
    """The next look: on the poll schedule, and no later than `until` (at least half a second on)."""
    return min(cy.poll_delay(), max((until - cy.now).total_seconds(), 0.5))


def wait(cy: Cycle, until: datetime, why: str, reason: str | None = None) -> Outcome:
    """Look again soon (on the poll interval, and no later than `until`); write nothing to AWS."""
    ready = cy.prior(c.READY)
    if ready is None or ready.get("status") != "True" or reason is not None:
        if reason is None:
            prior = str(ready.get("reason")) if ready else ""
            waiting = (c.CREATING, c.UPDATING, c.REPLACING, c.DELETING)
            reason = prior if prior in waiting else (c.REPLACING if cy.retiring else c.CREATING)
        cy.set_ready("False", reason, why)
    cy.set_synced()
    delay = delay_until(cy, until)
    cy.logger.debug("waiting %.1fs: %s", delay, why)
    return cy.finish(Decision.REQUEUE, delay, why)
