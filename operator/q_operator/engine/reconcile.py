"""The one reconcile path every kind goes through: a resource's whole life in `reconcile()`.

Pure of kopf and Kubernetes clients: it takes the KindInfo, a view of the object, and injected
dependencies (contract.py: an AWS caller, a ConfigMap reader, a clock, the process's memory), and
returns an `Outcome` — the status patch for this cycle, the events to post, and a decision (done,
requeue after N seconds, stop until the spec changes, release the finalizer). bridge.py maps that
onto kopf; the unit tests drive it with fake adapters.

`reconcile()` only chooses the step; each step lives in a module of its own under steps/ (inputs,
create, observe, update, delete) and works on the cycle's shared context (cycle.py), calling the
adapter's verbs through verbs.py. docs/engine.md tells the whole story.
"""

from __future__ import annotations

import logging
from typing import Any

from q_operator.engine import conditions as c
from q_operator.engine import consistency
from q_operator.engine.contract import (
    ADOPT_ANNOTATION,
    AwsCaller,
    ConfigMapReader,
    Decision,
    Deps,
    Event,
    ObjectView,
    Outcome,
    Timing,
    Trigger,
)
from q_operator.engine.cycle import Cycle
from q_operator.engine.errors import SLOW_RETRY, ReconcileError, RetryableError, TerminalError, classify
from q_operator.engine.steps import controls, create, delete, inputs, observe, update
from q_operator.engine.steps.create import make_token
from q_operator.engine.steps.inputs import config_map_names
from q_operator.kinds.base import KindInfo, Phase

__all__ = [
    "ADOPT_ANNOTATION",
    "AwsCaller",
    "ConfigMapReader",
    "Decision",
    "Deps",
    "Event",
    "ObjectView",
    "Outcome",
    "Timing",
    "Trigger",
    "config_map_names",
    "make_token",
    "reconcile",
]

log = logging.getLogger("q_operator.engine")


async def reconcile(
    kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps, trigger: Trigger = Trigger.CHANGE
) -> Outcome:
    """One cycle of one object: observe, then create, update, replace, delete or wait."""
    await deps.identities.ensure(obj.namespace)  # who acts in AWS for it is known, never guessed
    cy = Cycle(kind, obj, deps, trigger)
    consistency.meet(cy)
    try:
        held = controls.hold(cy)  # paused: no AWS call, no change, a deletion included
        if held is not None:
            return held
        ref = cy.current_ref()
        if ref is not None:
            cy.identify(ref)
        if obj.deleting:
            deps.builds.abandon(obj.uid)  # nothing to poll: the build's end no longer matters
            if controls.leaves_aws_alone(cy):  # observe-only: deleting the object leaves AWS as it is
                return controls.leave(cy)
            return await delete.delete(cy)
        if trigger is Trigger.DRIFT and deps.builds.polling(obj.uid, deps.now().timestamp()):
            # The change handler is polling this build on its own schedule: a drift check now would
            # only repeat its calls (kopf's timer does not count status writes as changes).
            return Outcome(Decision.STOP, message="a build in progress is being polled")
        if trigger is Trigger.DRIFT and cy.waiting_for_spec_change():
            # A terminal failure at this generation: the timer must not retry it (no hot loop).
            return Outcome(Decision.STOP, message="waiting for the spec to change")
        spec = inputs.validate(cy)  # AWS never sees a spec that fails the model
        resolved = await inputs.resolve(cy)
        if controls.leaves_aws_alone(cy):
            if not controls.taking_over(cy):
                return await controls.observe_only(cy, spec, resolved)  # reads, and reports
            if ref is not None:
                return await controls.take_over(cy, spec, resolved, ref)  # Observe → Manage: adopt
        if ref is None:
            adopt_id = obj.annotations.get(ADOPT_ANNOTATION, "").strip()
            if adopt_id and cy.pending() is None:  # (a recorded intent is settled first: no orphan)
                await cy.aws.adoption_allowed(adopt_id)  # only where the namespace allows it
                return await create.adopt(cy, spec, resolved, adopt_id)
            return await create.create(cy, spec, resolved)
        cy.hold(ref, cy.recorded_region() or cy.region)
        moved_from = cy.moved_from()
        if moved_from is not None:  # a resource cannot change region: make one there, then delete this
            why = f"spec.region changed from {moved_from} to {cy.region}"
            return await update.replace(cy, spec, resolved, ref, why)
        observation = await observe.observe(cy, spec, ref, resolved)
        waiting = consistency.doubt(cy, observation)  # a read older than our last write is not drift
        if waiting is not None:
            return waiting
        if observation.phase is Phase.ABSENT:
            return await create.recreate(cy, spec, resolved, ref)
        if observation.phase is Phase.IN_PROGRESS:
            return observe.wait_for_build(cy, observation)
        if observation.phase is Phase.FAILED:
            return await observe.build_failed(cy, spec, resolved, ref, observation)
        waiting = await update.retire_replaced(cy, spec, resolved)  # the new one is READY: drop the old
        if waiting is not None:
            return waiting
        if observation.replace:
            return await update.replace(cy, spec, resolved, ref, ", ".join(observation.replace))
        if observation.diff:
            return await update.update(cy, spec, resolved, ref, observation)
        return consistency.confirm(cy, observe.up_to_date(cy))
    except ReconcileError as error:
        return failed(cy, error)
    except Exception as error:  # a bug (ours or an adapter's): report it, back off, never crash
        log.exception("reconcile of %s/%s failed unexpectedly", obj.namespace, obj.name)
        return failed(cy, classify(error, "reconcile", obj.retry, deps.rng))


def failed(cy: Cycle, error: ReconcileError) -> Outcome:
    """Every failure ends here: a Synced=False condition, a Warning on the transition, a decision."""
    if cy.obj.deleting and isinstance(error, TerminalError):
        error = RetryableError(error.reason, error.message, SLOW_RETRY)
    prior = cy.prior(c.SYNCED)
    if not (prior and prior.get("status") == "False" and prior.get("reason") == error.reason):
        cy.event(error.reason, error.message, "Warning")
    cy.set_not_synced(error.reason, error.message)
    ready = c.find_condition(cy.conditions, c.READY)
    if ready is None or ready.get("status") == "Unknown":
        # Unknown only says an intent was being recorded: a failed create must not leave it.
        cy.set_ready("False", c.UNAVAILABLE, f"not created: {error.reason}")
    if isinstance(error, RetryableError):
        cy.logger.info("%s; retrying in %.1fs", error.message, error.delay)
        return cy.finish(Decision.REQUEUE, error.delay, error.message)
    cy.logger.info("%s; waiting for the spec to change", error.message)
    return cy.finish(Decision.STOP, message=error.message)
