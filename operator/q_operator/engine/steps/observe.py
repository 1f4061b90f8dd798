"""Observe the recorded resource, and what its state means when it is not ready to compare: a build
to wait for, a failed build, or a resource that matches the spec (Ready).

`observe` is the one place a cycle asks AWS about its current resource; what it returns drives the
rest of the cycle (reconcile.py), whoever produced it.
"""

from __future__ import annotations

from pydantic import BaseModel

from q_operator.engine import conditions as c
from q_operator.engine.contract import Decision, Outcome
from q_operator.engine.cycle import Cycle, Held, ref_text
from q_operator.engine.errors import TerminalError
from q_operator.engine.steps.update import replace
from q_operator.kinds.base import ExternalRef, Observation, Resolved


async def observe(cy: Cycle, spec: BaseModel, ref: ExternalRef, resolved: Resolved) -> Observation:
    """Read the current resource; refuse one marked as another object's."""
    observation = await cy.aws.observe(spec, ref, cy.owner(), resolved, cy.address(Held(ref)))
    if observation.owner_mark is not None and observation.owner_mark != cy.owner().mark:
        raise TerminalError(
            c.OWNED_BY_ANOTHER,
            f"observe refused: {cy.kind.kind} {ref_text(ref)} belongs to {observation.owner_mark}",
        )
    cy.merge_outputs(observation.outputs)  # AWS's view of the current resource, always
    if observation.exists and (cy.recorded_region() is None or cy.get("accountId") is None):
        await cy.record_region()  # recorded from now on (objects from before region and account were)
    return observation


def wait_for_build(cy: Cycle, observation: Observation) -> Outcome:
    """AWS is still building (or updating) it: say which, and look again."""
    ready = cy.prior(c.READY)
    if ready is not None and ready.get("status") == "True":
        reason = c.UPDATING
    elif ready is not None and ready.get("reason") in (c.CREATING, c.UPDATING, c.REPLACING):
        reason = str(ready["reason"])
    else:
        reason = c.REPLACING if cy.retiring else c.CREATING
    cy.set_ready("False", reason, observation.message or "AWS is building it")
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, cy.build_poll_delay())


async def build_failed(
    cy: Cycle, spec: BaseModel, resolved: Resolved, ref: ExternalRef, observation: Observation
) -> Outcome:
    """AWS failed to build it: stop until the spec changes, then replace it with a fresh one."""
    ready = cy.prior(c.READY)
    failed_at = ready.get("observedGeneration") if ready and ready.get("reason") == c.BUILD_FAILED else None
    if failed_at is not None and failed_at != cy.obj.generation:
        # The spec changed since the build failed: a fresh resource, not a blind retry.
        return await replace(cy, spec, resolved, ref, "the build failed and the spec has changed since")
    cy.deps.builds.abandon(cy.obj.uid)
    message = f"AWS failed to build {cy.kind.kind} {ref_text(ref)}: {observation.message or 'no reason'}"
    cy.set_ready("False", c.BUILD_FAILED, message)
    cy.set_not_synced(c.BUILD_FAILED, message)
    if failed_at is None:
        cy.event(c.BUILD_FAILED, message, "Warning")
    return cy.finish(Decision.STOP, message=message)


def up_to_date(cy: Cycle) -> Outcome:
    """It exists, its build is done and it matches the spec: Ready."""
    cy.deps.builds.done(cy.obj.uid, cy.deps.now().timestamp())
    cy.set_ready("True", c.AVAILABLE, "the AWS resource is ready and matches the spec")
    cy.set_synced()
    if cy.get("createPending") is not None:
        cy.set_pending(None)
    return cy.finish(Decision.DONE)
