"""Create, through the crash window: record the intent, then (next cycle) look, then create; and the
ways an existing resource becomes this object's — claimed after an interruption, or adopted by ID.

The crash window: `status.createPending` (a time and a deterministic token) is stored, and the cycle
requeues, *before* any create call. Whatever happens next, a later cycle knows a create may have
reached AWS and looks for it (or replays the same token) before creating again. A create whose
answer was lost, or one a stopped process may have sent, is looked for until the consistency bound
has passed (consistency.py) before the engine concludes that it did not happen. docs/engine.md tells
the whole story.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from q_operator.engine import conditions as c
from q_operator.engine import consistency
from q_operator.engine.contract import ADOPT_ANNOTATION, Decision, Outcome
from q_operator.engine.cycle import Cycle, ref_text, same_ref
from q_operator.engine.errors import (
    OutcomeUnknown,
    ReconcileError,
    RetryableError,
    TerminalError,
    backoff_delay,
)
from q_operator.kinds.base import AlreadyExists, ClientToken, ExternalRef, Found, Owner, Phase, Resolved


def make_token(uid: str, since: str, spec: BaseModel, resolved: Resolved) -> ClientToken:
    """The create's idempotency token: the same object, spec and attempt always give the same token,
    so a create replayed after a crash is the same request to AWS. 64 printable characters."""
    canonical = json.dumps(
        {"spec": spec.model_dump(mode="json"), "resolved": dict(resolved.values)},
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(f"{uid}\n{since}\n{canonical}".encode()).hexdigest()
    return ClientToken(digest)


async def create(cy: Cycle, spec: BaseModel, resolved: Resolved) -> Outcome:
    """No resource recorded: record the intent, or (an intent recorded) look, then create."""
    memory = cy.deps.memory
    pending = cy.pending()
    if pending is None:
        if cy.kind.find_before_create:
            found = await find_new(cy, spec, cy.owner())
            if found is not None:
                return await claim(cy, found, None)
        return await record_intent(cy, spec, resolved, c.REPLACING if cy.retiring else c.CREATING)
    since_text = str(pending.get("since"))
    since = c.parse_rfc3339(since_text) or cy.now
    owner = cy.owner(since)
    token = make_token(cy.obj.uid, since_text, spec, resolved)
    # The create may have reached AWS before a crash. Replaying the same token is safe where the
    # API has one, the spec is unchanged and the token has not expired; otherwise look first.
    replay_is_safe = (
        not cy.kind.find_before_create
        and pending.get("token") == token
        and (cy.now - since).total_seconds() < cy.deps.timing.token_trust
    )
    entry = memory.of(cy.obj.uid)
    sent_nothing = entry.fresh_intent == since_text
    # A replay of a create another process (or this one, before a failure it did not see) may have
    # finished: its follow-up calls may have been made, so the adapter must not repeat them.
    repeat = not sent_nothing and entry.failed_create != since_text
    entry.fresh_intent = entry.failed_create = None  # from here on a create may reach AWS
    if not replay_is_safe and not sent_nothing:
        # A create under this intent may have reached AWS (its answer was lost, or the operator
        # stopped): look for it, and go on looking until the consistency bound has passed, before
        # concluding that it did not happen — a resource too new to show would be duplicated.
        sent = consistency.create_sent_at(cy, pending)
        found = await find_new(cy, spec, owner)
        if found is not None:
            return await claim(cy, found, since)
        waiting = consistency.wait_for_create(cy, sent)
        if waiting is not None:
            return waiting
        # It did not happen. A new intent first: a create is only ever sent under an intent no
        # earlier create was sent under, so the look above stays conclusive.
        return await record_intent(cy, spec, resolved, c.REPLACING if cy.retiring else c.CREATING)
    try:
        created = await cy.aws.create(spec, cy.owner(since, repeat), token, resolved)
    except AlreadyExists as error:
        # Sent with the intent's own token, a create that reached AWS before a crash would have
        # been answered with its resource, not a conflict: an untagged resource in the way is
        # somebody else's, however recent (the time-based claim is for creates without a token).
        return await _collided(cy, spec, owner, None if replay_is_safe else since, str(error))
    except OutcomeUnknown:
        consistency.create_lost(cy, pending)  # resolved by reading (or the token), never blindly
        entry.failed_create = since_text
        raise
    except ReconcileError:
        entry.fresh_intent = since_text  # AWS refused it: nothing was created under this intent
        raise
    cy.hold(created.ref, cy.region)
    await cy.write_ref(created.ref)
    consistency.created(cy, created)
    cy.merge_outputs(created.outputs)
    cy.set_pending(None)
    cy.event(c.EV_CREATED, f"created {cy.kind.kind} {ref_text(created.ref)}")
    reason = c.REPLACING if cy.retiring else c.CREATING
    cy.set_ready("False", reason, "created: waiting for AWS to finish building it")
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, cy.build_started("create"))


async def record_intent(cy: Cycle, spec: BaseModel, resolved: Resolved, reason: str) -> Outcome:
    """Persist createPending and requeue at once: no create call before the marker is stored. The
    intent names the account its create will act in: a later cycle never looks in, or creates in,
    another (verbs.py refuses it: AccountMismatch)."""
    await cy.record_account("create")  # admitted first: a refused identity records no intent
    since = c.rfc3339(cy.now)
    token = make_token(cy.obj.uid, since, spec, resolved)
    cy.set_pending({"token": token, "since": since})
    cy.deps.memory.of(cy.obj.uid).fresh_intent = since
    # Unknown, not False: the flip to False when the create is sent starts the build clock that
    # paces the polls, however long the create waited for the rate limiter.
    ready = c.find_condition(cy.conditions, c.READY)
    status: c.ConditionStatus = "False" if ready and ready.get("status") == "False" else "Unknown"
    cy.set_ready(status, reason, "recording the intent to create before calling AWS")
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, 0.0)


async def _collided(cy: Cycle, spec: BaseModel, owner: Owner, since: datetime | None, said: str) -> Outcome:
    """The create met an existing resource under the natural key."""
    found = await find_new(cy, spec, owner)
    if found is not None:
        return await claim(cy, found, since)
    if cy.retiring:
        # The name is held by the resource being replaced: delete it first, then create.
        for old in cy.retiring:
            await cy.aws.delete(spec, old.ref, cy.address(old))
        cy.set_retiring([old.asked(cy.deps.now()) for old in cy.retiring])
        cy.set_ready("False", c.REPLACING, "deleting the old resource first: it holds the name")
        cy.set_synced()
        return cy.finish(Decision.REQUEUE, cy.poll_delay())
    raise RetryableError(
        c.ALREADY_EXISTS,
        f"create failed: {said} (and no matching resource was found to adopt)",
        backoff_delay(cy.obj.retry + 3, cy.deps.rng),
    )


async def find_new(cy: Cycle, spec: BaseModel, owner: Owner) -> Found | None:
    """The resource under this spec's natural key, unless it is one being replaced."""
    found = await cy.aws.find(spec, owner)
    if found is not None and any(same_ref(found.ref, old.ref) for old in cy.retiring):
        return None  # the resource being replaced, not a new one
    return found


async def claim(cy: Cycle, found: Found, since: datetime | None) -> Outcome:
    """A resource with our natural key exists: ours (take it) or somebody else's (refuse)."""
    what = f"{cy.kind.kind} {ref_text(found.ref)}"
    if not is_ours(cy, found, since):
        cy.set_pending(None)
        if found.owner_mark is not None:
            raise TerminalError(c.OWNED_BY_ANOTHER, f"create refused: {what} belongs to {found.owner_mark}")
        raise TerminalError(
            c.ALREADY_EXISTS,
            f"create refused: {what} already exists and is not this object's; adopt it with the "
            f"annotation {ADOPT_ANNOTATION} or choose another name",
        )
    cy.hold(found.ref, cy.region)
    await cy.write_ref(found.ref)
    consistency.found(cy)
    cy.set_pending(None)
    cy.event(c.EV_CREATED, f"found {what}, created before an interruption; using it")
    reason = c.REPLACING if cy.retiring else c.CREATING
    cy.set_ready("False", reason, "waiting for AWS to finish building it")
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, cy.build_started("create"))


def is_ours(cy: Cycle, found: Found, since: datetime | None) -> bool:
    """Ours when it carries our mark, or when untagged and made after we recorded the intent."""
    if found.owner_mark is not None:
        return found.owner_mark == cy.owner().mark
    created_at = found.created_at
    if since is None or created_at is None:
        return False
    if cy.deps.memory.holder(cy.kind.kind, found.ref, cy.where(cy.region)) not in (None, cy.obj.uid):
        return False  # another object created or recorded it: the same key, asked for at once
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return created_at >= since - timedelta(seconds=cy.deps.timing.create_grace)


async def adopt(cy: Cycle, spec: BaseModel, resolved: Resolved, adopt_id: str) -> Outcome:
    """Take over an existing resource the user named; create nothing, never take another's.

    Also the way an observed resource is taken over when its object's managementPolicy turns from
    Observe to Manage (steps/controls.py `take_over`). Both callers ask `cy.aws.adoption_allowed`
    first; a rule about what may be adopted belongs here, so it holds for both."""
    ref = await cy.aws.ref_for_id(spec, adopt_id)
    observation = await cy.aws.observe(spec, ref, cy.owner(), resolved, cy.region)
    if observation.phase is Phase.ABSENT:
        raise TerminalError(
            c.ADOPT_TARGET_NOT_FOUND,
            f"adopt failed: no {cy.kind.kind} {adopt_id} in AWS ({ADOPT_ANNOTATION})",
        )
    await cy.aws.same_account(adopt_id, observation.outputs)  # adoption never crosses accounts
    if not observation.owner_mark_read:  # mid-build: whose it is is read once the build ends
        cy.set_ready("False", c.UPDATING, f"adopt: waiting for AWS to finish building {adopt_id}")
        cy.set_synced()
        return cy.finish(Decision.REQUEUE, cy.poll_delay())
    if observation.owner_mark is not None and observation.owner_mark != cy.owner().mark:
        raise TerminalError(
            c.OWNED_BY_ANOTHER, f"adopt refused: {adopt_id} is managed by {observation.owner_mark}"
        )
    await cy.write_ref(ref)
    cy.merge_outputs(observation.outputs)
    cy.set_pending(None)
    cy.event(c.EV_ADOPTED, f"adopted the existing {cy.kind.kind} {adopt_id}")
    cy.set_ready("False", c.UPDATING, "adopted: bringing it in line with the spec")
    cy.set_synced()
    return cy.finish(Decision.REQUEUE, cy.deps.timing.poll_min)


async def recreate(cy: Cycle, spec: BaseModel, resolved: Resolved, ref: ExternalRef) -> Outcome:
    """The recorded resource is gone from AWS: create it again. (An absence within the consistency
    bound after our own write never gets here: consistency.doubt waits it out.)"""
    cy.event(
        c.EV_RECREATED,
        f"{cy.kind.kind} {ref_text(ref)} was deleted outside the operator; creating it again",
    )
    cy.clear_ref()
    return await record_intent(cy, spec, resolved, c.CREATING)
