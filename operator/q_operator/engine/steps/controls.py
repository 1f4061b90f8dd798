"""The cycle's part of the user's controls (the rules are in engine/controls.py): hold a paused
object, look at an observe-only object's resource without changing it, leave AWS alone when such an
object is deleted, and take an observed resource over — through adoption — when the policy becomes
Manage. `reconcile()` calls these before the steps that could change AWS.
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel

from q_operator.engine import conditions as c
from q_operator.engine import controls
from q_operator.engine.contract import ADOPT_ANNOTATION, Decision, Outcome
from q_operator.engine.cycle import Cycle, Held, ref_text, same_ref
from q_operator.engine.errors import TerminalError
from q_operator.engine.steps.create import adopt
from q_operator.kinds.base import ExternalRef, Phase, Resolved

#: A paused object's deletion waits: kopf looks again this often (resuming wakes it at once).
PAUSED_DELETION_RECHECK = 300.0

_OBSERVE_ONLY = "spec.managementPolicy is Observe: the operator reads this resource and never changes it"


def hold(cy: Cycle) -> Outcome | None:
    """A paused object: an Outcome that calls AWS for nothing and changes nothing but the Synced
    condition. Otherwise None, once the cycle has noted a resume and a reconcile request."""
    obj = cy.obj
    prior = cy.prior(c.SYNCED)
    was_paused = bool(prior and prior.get("status") == "False" and prior.get("reason") == c.PAUSED)
    value = controls.pause_value(obj.annotations)
    if value is not None:
        message = (
            f'paused by the annotation {controls.PAUSED_ANNOTATION}="{value}": no AWS call and no change '
            + ("(the deletion waits) " if obj.deleting else "")
            + "until it is removed"
        )
        if not was_paused:
            cy.event(c.EV_PAUSED, message)
        cy.set_not_synced(c.PAUSED, message)
        # observedGeneration stays: a spec changed while paused has not been acted on.
        if obj.deleting:
            # Never release: the finalizer stays until the pause is lifted (kopf is woken then).
            return cy.finish(Decision.REQUEUE, PAUSED_DELETION_RECHECK, message, observed=False)
        return cy.finish(Decision.DONE, message=message, observed=False)
    if was_paused:
        cy.event(c.EV_RESUMED, f"the annotation {controls.PAUSED_ANNOTATION} is gone: reconciling again")
    requested = controls.reconcile_request(obj.annotations)
    if requested is not None and cy.get(controls.HANDLED_REQUEST_KEY) != requested:
        cy.set_control(controls.HANDLED_REQUEST_KEY, requested)  # this cycle is the one asked for
    return None


def leaves_aws_alone(cy: Cycle) -> bool:
    """Deleting this object must not touch AWS: it only observes, or only observed, its resource."""
    return controls.observes_only(cy.obj.spec) or controls.observed_only(cy.obj.status)


def leave(cy: Cycle) -> Outcome:
    """The deletion of an object that only observes: the finalizer goes, AWS is left as it is."""
    current = cy.current_ref()
    held = [*cy.retiring, *([Held(current)] if current else [])]
    if held:
        kept = ", ".join(ref_text(h.ref) for h in held)
        cy.event(c.EV_RETAINED, f"the operator only observed it: left {kept} in AWS")
    return cy.finish(Decision.RELEASE)


async def observe_only(cy: Cycle, spec: BaseModel, resolved: Resolved) -> Outcome:
    """Read the resource the object observes and report it: status, Ready (and where AWS differs
    from the spec); never create, update, tag or delete."""
    obj = cy.obj
    recorded = cy.current_ref()
    adopt_id = obj.annotations.get(ADOPT_ANNOTATION, "").strip()
    if recorded is not None and (not controls.observed_only(obj.status) or not adopt_id):
        ref: ExternalRef = recorded  # its own resource, or the one it observes already
    elif adopt_id:
        # The annotation names what to observe: only where the namespace allows adoption, and never in
        # another account (checked at every look, so taking the permission back stops the reads).
        await cy.aws.adoption_allowed(adopt_id, "observe")
        ref = await cy.aws.ref_for_id(spec, adopt_id)
    else:
        raise TerminalError(
            c.ADOPT_ID_REQUIRED,
            f"observe failed: spec.managementPolicy is Observe and no AWS resource is named: set the "
            f"annotation {ADOPT_ANNOTATION} to the ID of the {cy.kind.kind} to observe",
        )
    new = recorded is None or not same_ref(ref, recorded)
    region = cy.region if new else cy.address(Held(ref))
    observation = await cy.aws.observe(spec, ref, cy.owner(observe_only=True), resolved, region)
    what = f"{cy.kind.kind} {ref_text(ref)}"
    if observation.phase is Phase.ABSENT:
        if new:
            raise TerminalError(
                c.ADOPT_TARGET_NOT_FOUND, f"observe failed: no {what} in AWS ({ADOPT_ANNOTATION})"
            )
        cy.set_ready(
            "False",
            c.UNAVAILABLE,
            f"{what} no longer exists in AWS; spec.managementPolicy is Observe, so the operator does not "
            "create it",
        )
        return _observed(cy, observation.owner_mark)
    if new:
        await cy.write_ref(ref)
        cy.set_control(controls.OBSERVED_ONLY_KEY, True)
        cy.event(
            c.EV_OBSERVING, f"observing {what}: the operator only reads it (spec.managementPolicy Observe)"
        )
    cy.merge_outputs(observation.outputs)
    ready = cy.prior(c.READY)
    if observation.phase is Phase.IN_PROGRESS:
        if (
            ready is not None
            and ready.get("reason") in (c.CREATING, c.UPDATING)
            and ready.get("status") == "False"
        ):
            busy = str(ready["reason"])  # still the same build
        else:
            busy = c.UPDATING if ready is not None and ready.get("status") == "True" else c.CREATING
        cy.set_ready("False", busy, observation.message or "AWS is building it")
        return _observed(cy, observation.owner_mark, Decision.REQUEUE, cy.poll_delay())
    if observation.phase is Phase.FAILED:
        message = f"AWS failed to build {what}: {observation.message or 'no reason'}"
        if not (ready and ready.get("reason") == c.BUILD_FAILED):
            cy.event(c.BUILD_FAILED, message, "Warning")
        cy.set_ready("False", c.BUILD_FAILED, message)
        return _observed(cy, observation.owner_mark)
    differs = (*observation.diff, *observation.replace)
    if differs:
        message = (
            f"AWS differs from the spec in {', '.join(differs)}; spec.managementPolicy is Observe, so the "
            "operator does not change it"
        )
        if not (ready and ready.get("reason") == c.DIFFERS_FROM_SPEC and ready.get("message") == message):
            cy.event(c.EV_DIFFERS, message, "Warning")
        cy.set_ready("False", c.DIFFERS_FROM_SPEC, message)
    else:
        cy.set_ready("True", c.AVAILABLE, "the AWS resource is ready and matches the spec (observed only)")
    return _observed(cy, observation.owner_mark)


def _observed(
    cy: Cycle, owner_mark: str | None, decision: Decision = Decision.DONE, delay: float = 0.0
) -> Outcome:
    """Synced=True, ObserveOnly: the look succeeded (the drift timer looks again)."""
    message = _OBSERVE_ONLY
    if owner_mark is not None and owner_mark != cy.owner().mark:
        message += f" (it is managed by {owner_mark})"
    cy.set_synced(c.OBSERVE_ONLY, message)
    return cy.finish(decision, delay)


def taking_over(cy: Cycle) -> bool:
    """The policy is Manage and the recorded resource was only observed: it must be adopted first."""
    return controls.observed_only(cy.obj.status) and not controls.observes_only(cy.obj.spec)


async def take_over(cy: Cycle, spec: BaseModel, resolved: Resolved, ref: ExternalRef) -> Outcome:
    """Observe → Manage: the observed resource becomes this object's through adoption, under its
    rules (only where the namespace allows adoption, never another object's or another account's,
    never one that is gone), as if it were named by the annotation."""
    adopt_id = cy.obj.annotations.get(ADOPT_ANNOTATION, "").strip() or ref[cy.kind.ref_fields[-1]]
    await cy.aws.adoption_allowed(adopt_id)  # only where the namespace allows adoption (identity.py)
    outcome = await adopt(cy, spec, resolved, adopt_id)
    synced = c.find_condition(cy.conditions, c.SYNCED)
    if synced is None or synced.get("status") != "True":
        return outcome  # refused: still only observed, still not to be changed
    return dataclasses.replace(outcome, status={**outcome.status, controls.OBSERVED_ONLY_KEY: None})
