"""Bring an existing resource in line with the spec: update it in place, or replace it (create the
new one, and delete the old one only once the new one is READY)."""

from __future__ import annotations

from pydantic import BaseModel

from q_operator.engine import conditions as c
from q_operator.engine import consistency
from q_operator.engine.contract import Decision, Outcome
from q_operator.engine.cycle import Cycle, Held, ref_text, same_ref
from q_operator.engine.errors import SLOW_RETRY, RetryableError
from q_operator.engine.steps.create import record_intent
from q_operator.engine.steps.delete import delete_held
from q_operator.kinds.base import ExternalRef, Observation, Resolved


async def update(
    cy: Cycle, spec: BaseModel, resolved: Resolved, ref: ExternalRef, observation: Observation
) -> Outcome:
    """Change in place what differs (observation.diff), then watch the build."""
    try:
        await cy.aws.update(spec, ref, observation, cy.owner(), resolved)
    finally:
        # Answered or not, it may have acted (an update can be several calls, and an answer can be
        # lost): for the consistency bound a read showing the old state is not drift.
        consistency.updated(cy)
    ready = cy.prior(c.READY)
    drift = bool(
        ready and ready.get("status") == "True" and ready.get("observedGeneration") == cy.obj.generation
    )
    fields = ", ".join(observation.diff)
    if ready and ready.get("reason") == c.UPDATING and ready.get("observedGeneration") == cy.obj.generation:
        # Updated already at this generation, and AWS still differs: no second event. If that
        # lasts, the adapter's diff does not converge (AWS normalises a value, say): say so and
        # slow down to one update per slow retry instead of one per poll.
        since = c.parse_rfc3339(str(ready.get("lastTransitionTime", "")))
        elapsed = (cy.now - since).total_seconds() if since else 0.0
        if elapsed > cy.deps.timing.converge_timeout:
            raise RetryableError(
                c.NOT_CONVERGING,
                f"update failed: AWS still differs from the spec in {fields} {elapsed:.0f}s after the "
                "operator started updating it",
                SLOW_RETRY,
            )
        cy.set_ready("False", c.UPDATING, f"updating {fields}")
        cy.set_synced()
        return cy.finish(Decision.REQUEUE, cy.poll_delay())
    if drift:
        cy.event(
            c.EV_DRIFT_CORRECTED,
            f"AWS differed from the desired state in {fields} (changed outside the operator, or a "
            "referenced ConfigMap changed); corrected",
        )
    else:
        cy.event(c.EV_UPDATED, f"updated {fields}")
    cy.set_ready("False", c.UPDATING, f"updating {fields}")
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, cy.build_started("update"))


async def replace(cy: Cycle, spec: BaseModel, resolved: Resolved, ref: ExternalRef, why: str) -> Outcome:
    """Create a new resource; the old one is deleted only once the new one is READY."""
    retiring = list(cy.retiring)
    if not any(same_ref(ref, old.ref) for old in retiring):
        retiring.append(Held(ref, cy.recorded_region() or cy.region, created=consistency.created_at(cy)))
    cy.set_retiring(retiring)
    cy.clear_ref()
    cy.event(
        c.EV_REPLACING,
        f"replacing {cy.kind.kind} {ref_text(ref)} ({why}): creating a new one, deleting the old "
        "once the new one is ready",
    )
    return await record_intent(cy, spec, resolved, c.REPLACING)


async def retire_replaced(cy: Cycle, spec: BaseModel, resolved: Resolved) -> Outcome | None:
    """Delete the resources this one replaced; None when none is left."""
    old = cy.retiring
    if not old:
        return None
    remaining, failure = await delete_held(cy, spec, resolved, old)
    cy.set_retiring(remaining)
    if not remaining:
        gone = ", ".join(ref_text(held.ref) for held in old)
        cy.event(c.EV_REPLACED, f"replaced: the old {cy.kind.kind} {gone} is deleted")
        return None
    cy.set_ready("False", c.REPLACING, "the new resource is ready; waiting for the old one to be deleted")
    if failure is not None:
        raise failure
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, cy.poll_delay())
