"""Deletion: every AWS resource the object holds (the current one and any being replaced) goes,
unless deletionPolicy is Retain; the finalizer is released only when AWS reports them gone.

Within the consistency bound (consistency.py) a read is not taken at its word: the resource still
there after our delete is waited out (never deleted again), and "gone" is believed only once the
resource is older than the bound — before that it may only be too new to show.

`delete_held` is also how replaced resources are retired (update.py)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from q_operator.engine import conditions as c
from q_operator.engine import consistency
from q_operator.engine.contract import Decision, Outcome
from q_operator.engine.cycle import Cycle, Held, ref_text, same_ref
from q_operator.engine.errors import SLOW_RETRY, OutcomeUnknown, RetryableError, TerminalError, backoff_delay
from q_operator.engine.steps.create import find_new, is_ours
from q_operator.engine.steps.inputs import validate_leniently
from q_operator.kinds.base import Phase, Resolved


async def delete(cy: Cycle) -> Outcome:
    """The deletion branch of a cycle: RELEASE once nothing this object holds is left in AWS."""
    spec = validate_leniently(cy)
    current = cy.current_ref()
    if getattr(spec, "deletionPolicy", "Delete") == "Retain":
        held = [*cy.retiring, *([Held(current)] if current else [])]
        if held:
            kept = ", ".join(ref_text(h.ref) for h in held)
            cy.event(c.EV_RETAINED, f"deletionPolicy is Retain: left {kept} in AWS")
        return cy.finish(Decision.RELEASE)
    resolved = Resolved()  # nothing is resolved while deleting: a ConfigMap may already be gone
    ready = cy.prior(c.READY)
    asked_at = consistency.delete_requested_at(cy)
    asked_current = asked_at is not None or bool(ready and ready.get("reason") == c.DELETING)
    created = consistency.created_at(cy)
    held = [*cy.retiring, *([Held(current, None, asked_current, asked_at, created)] if current else [])]
    try:
        if not held:
            pending = cy.pending()
            if pending is None:
                return cy.finish(Decision.RELEASE)  # nothing was ever created
            if cy.deps.memory.of(cy.obj.uid).fresh_intent == str(pending.get("since")):
                return cy.finish(Decision.RELEASE)  # the intent was recorded here; no create followed it
            # A create may have reached AWS without its ID being recorded: find it, or it is orphaned;
            # one too new to show yet is looked for until the consistency bound has passed.
            sent = consistency.create_sent_at(cy, pending)
            since = c.parse_rfc3339(str(pending.get("since")))
            found = await find_new(cy, spec, cy.owner(since))
            if found is None or not is_ours(cy, found, since):
                waiting = consistency.wait_for_create(cy, sent)
                if waiting is not None:
                    return waiting
                cy.set_pending(None)
                return cy.finish(Decision.RELEASE)
            cy.set_pending(None)
            current = found.ref
            await cy.write_ref(current)
            consistency.found(cy)
            held = [Held(current, created=consistency.created_at(cy))]
        # Whatever happens next (in use, throttled, a failed delete), the resource is on its
        # way out: Ready must not keep saying True while the deletion waits.
        cy.set_ready("False", c.DELETING, "AWS is deleting it")
        remaining, failure = await delete_held(cy, spec, resolved, held)
    except TerminalError as error:
        # Never let the finalizer go on a terminal error: the resource might stay behind.
        raise RetryableError(error.reason, error.message, SLOW_RETRY) from error
    current_left = current is not None and any(same_ref(h.ref, current) for h in remaining)
    cy.set_retiring([h for h in remaining if not (current and same_ref(h.ref, current))])
    if current is not None and not current_left:
        cy.clear_ref()
    if not remaining:
        gone = ", ".join(ref_text(h.ref) for h in held)
        cy.event(c.EV_DELETED, f"deleted {cy.kind.kind} {gone}")
        return cy.finish(Decision.RELEASE)
    cy.set_ready("False", c.DELETING, "AWS is deleting it")
    if failure is not None:
        raise failure
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, _next_look(cy, remaining))


def _next_look(cy: Cycle, remaining: Sequence[Held]) -> float:
    """On the poll schedule, and no later than the moment a consistency wait ends (a "gone" believed,
    a delete seen settled), so a finalizer goes when it may, not a poll interval after."""
    ends = [
        moment
        for item in remaining
        for moment in (consistency.gone_doubted(cy, item), consistency.delete_settling(cy, item))
        if moment is not None
    ]
    return consistency.delay_until(cy, min(ends)) if ends else cy.poll_delay()


async def delete_held(
    cy: Cycle, spec: BaseModel, resolved: Resolved, held: Sequence[Held]
) -> tuple[list[Held], RetryableError | None]:
    """Ask AWS to delete each held resource; return those not gone yet (marked as asked), and the
    failure to report once the caller has recorded them: a resource still FAILED after a delete we
    asked for in an earlier cycle is DELETE_FAILED."""
    remaining: list[Held] = []
    failures: list[str] = []
    mark = cy.owner().mark
    for item in held:
        region = cy.address(item)
        observation = await cy.aws.observe(spec, item.ref, cy.owner(), resolved, region)
        if observation.phase is Phase.ABSENT:
            if consistency.gone_doubted(cy, item) is None:
                continue
            # Created within the bound: it may only not show yet. Deleting calls for one delete all
            # the same; then "gone" is believed once the bound has passed.
            remaining.append(item if item.delete_requested else await _delete(cy, spec, item, region))
            continue
        if observation.owner_mark is not None and observation.owner_mark != mark:
            continue  # never delete what another object manages
        if not observation.owner_mark_read:
            remaining.append(item)  # mid-build, whose it is not read yet: deleted once the build ends
            continue
        if item.delete_requested and consistency.delete_settling(cy, item) is not None:
            # Our delete may not show yet: wait it out, never ask again within the bound. A failed
            # delete is said at once all the same (asked again only once the bound has passed).
            if observation.phase is Phase.FAILED:
                failures.append(f"{ref_text(item.ref)}: {observation.message or 'no reason given'}")
            remaining.append(item)
            continue
        if observation.phase is Phase.IN_PROGRESS and item.delete_requested:
            remaining.append(item)  # AWS is deleting it: wait
            continue
        if observation.phase is Phase.FAILED and item.delete_requested:
            # AWS gave up on the delete we asked for: say so on the resource, and ask again
            # only after a back-off (the requeue), never in a tight loop.
            failures.append(f"{ref_text(item.ref)}: {observation.message or 'no reason given'}")
        asked = await _delete(cy, spec, item, region)
        # Many deletes finish at once: look again so those release without another cycle.
        after = await cy.aws.observe(spec, item.ref, cy.owner(), resolved, region)
        if after.phase is Phase.ABSENT and consistency.gone_doubted(cy, item) is None:
            continue
        remaining.append(asked)
    if not failures:
        return remaining, None
    failure = RetryableError(
        c.DELETE_FAILED,
        f"delete failed: AWS could not delete {'; '.join(failures)}",
        backoff_delay(cy.obj.retry + 3, cy.deps.rng),
    )
    return remaining, failure


async def _delete(cy: Cycle, spec: BaseModel, item: Held, region: str | None) -> Held:
    """Ask AWS to delete one held resource; the item, marked as asked (and recorded at once if the
    answer was lost, so the next cycle reads before it asks again)."""
    try:
        await cy.aws.delete(spec, item.ref, region)
    except OutcomeUnknown:
        consistency.delete_sent(cy, item)
        raise
    return consistency.delete_sent(cy, item)
