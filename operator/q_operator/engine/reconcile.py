"""The one reconcile path every kind goes through: a resource's whole life in `reconcile()`.

Pure of kopf and Kubernetes clients: it takes the KindInfo, a view of the object, and injected
dependencies (an AWS caller, a ConfigMap reader, a clock), and returns an `Outcome` — the status patch
for this cycle, the events to post, and a decision (done, requeue after N seconds, stop until the
spec changes, release the finalizer). handlers.py maps that onto kopf; the unit tests drive it with
fake adapters.

The crash window: the engine records `status.createPending` (a time and a deterministic token) and
requeues *before* any create call, so whatever happens next, a later cycle knows a create may have
reached AWS and looks for it before creating again. docs/engine.md tells the whole story.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from q_operator.engine import conditions as c
from q_operator.engine.errors import (
    SLOW_RETRY,
    ReconcileError,
    RetryableError,
    TerminalError,
    backoff_delay,
    classify,
)
from q_operator.engine.polling import BuildClock
from q_operator.kinds.base import (
    Adapter,
    AlreadyExists,
    ClientToken,
    Created,
    ExternalRef,
    Found,
    KindInfo,
    Observation,
    Owner,
    Phase,
    Resolved,
)

T = TypeVar("T")

#: Annotation asking the operator to adopt an existing AWS resource by ID.
ADOPT_ANNOTATION = "q-operator.dev/adopt-id"
#: Status keys the engine owns; adapter outputs never overwrite them.
_ENGINE_KEYS = frozenset({"conditions", "observedGeneration", "createPending", "retiring", "region"})
#: Key in a `status.retiring` entry: when the engine asked AWS to delete it (a DELETE_FAILED after
#: that is a failure to report, not a build failure of the replaced resource).
_REQUESTED = "deleteRequested"
#: Key in a `status.retiring` entry: the region the replaced resource lives in.
_REGION = "region"

log = logging.getLogger("q_operator.engine")


class Decision(enum.Enum):
    DONE = "done"  # converged: nothing to do until something changes (the drift timer looks again)
    REQUEUE = "requeue"  # run again after Outcome.delay seconds
    STOP = "stop"  # the input is wrong: wait until the spec (or an input) changes
    RELEASE = "release"  # deletion finished: let the finalizer go


class Trigger(enum.Enum):
    CHANGE = "change"  # create, update, resume: the object (or an input) changed
    DRIFT = "drift"  # the periodic timer: look for out-of-band changes


@dataclass(frozen=True)
class ObjectView:
    """What reconcile needs of the custom resource."""

    uid: str
    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False
    #: how many cycles of this object have failed in a row: drives back-off.
    retry: int = 0


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    #: seconds until the next cycle (REQUEUE only).
    delay: float = 0.0
    #: a JSON merge patch for `status` (None deletes a key); empty when nothing changed.
    status: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    #: one line for logs and for kopf's error, e.g. why we stop.
    message: str = ""


class AwsCaller(Protocol):
    """Runs one adapter verb in a worker thread behind the rate limiter (engine/aws.py)."""

    async def call(
        self,
        kind: KindInfo[Any, Any],
        region: str | None,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> T: ...


#: Reads a ConfigMap's data: None when the ConfigMap does not exist.
ConfigMapReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]


@dataclass(frozen=True)
class Timing:
    """Requeue timing. Polls grow with the time a build has been running, up to poll_max."""

    poll_min: float = 1.0
    poll_max: float = 15.0
    #: each poll waits this fraction of the time waited so far: 0.5 gives 1, 1, 1.5, 2.25, 3.4 … s, so
    #: Ready lags AWS's READY by at most a third of the build time (and at most poll_max).
    poll_factor: float = 0.5
    #: an unmarked resource created this long before our recorded intent is still ours (clock skew).
    create_grace: float = 60.0
    #: a fresh ref that reads as absent this soon after the create is eventual consistency, not deletion.
    absent_grace: float = 30.0
    #: after this long, an idempotency token may have expired on the AWS side: look before re-creating.
    token_trust: float = 3600.0
    #: an update whose diff has not cleared after this long is reported (UpdateNotConverging).
    converge_timeout: float = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Holdings:
    """Which object holds which AWS resource, as far as this process has seen.

    An untagged resource found by its natural key after a recorded intent is taken as our own
    interrupted create (a library item has neither tags nor a client token). Two objects asking for
    the same natural key at once both find the one item the first created: without this record the
    second would take it too, and deleting either object would delete the other's item.
    """

    def __init__(self) -> None:
        self._holders: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    @staticmethod
    def _key(kind: str, ref: ExternalRef) -> tuple[str, tuple[tuple[str, str], ...]]:
        return kind, tuple(sorted(ref.items()))

    def hold(self, kind: str, ref: ExternalRef, uid: str) -> None:
        self._holders.setdefault(self._key(kind, ref), uid)

    def holder(self, kind: str, ref: ExternalRef) -> str | None:
        return self._holders.get(self._key(kind, ref))

    def release(self, uid: str) -> None:
        for key in [k for k, v in self._holders.items() if v == uid]:
            del self._holders[key]


@dataclass(frozen=True)
class Deps:
    aws: AwsCaller
    read_configmap: ConfigMapReader
    now: Callable[[], datetime] = _utcnow
    rng: random.Random = field(default_factory=random.Random)
    timing: Timing = field(default_factory=Timing)
    #: when each build began and how long builds take, in this process: paces the polls.
    builds: BuildClock = field(default_factory=BuildClock)
    #: the operator's region (AWS_REGION), for objects without spec.region.
    default_region: str | None = None
    #: which object holds which AWS resource, in this process (see Holdings).
    holdings: Holdings = field(default_factory=Holdings)
    #: (uid, createPending.since) of intents this process recorded and has not yet sent a create for:
    #: no create can have reached AWS under them, so the look before creating would find nothing.
    fresh_intents: set[tuple[str, str]] = field(default_factory=set)


async def reconcile(
    kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps, trigger: Trigger = Trigger.CHANGE
) -> Outcome:
    """One cycle of one object: observe, then create, update, replace, delete or wait."""
    cycle = _Cycle(kind, obj, deps)
    cycle.by_timer = trigger is Trigger.DRIFT
    try:
        if obj.deleting:
            deps.builds.forget(obj.uid)
            outcome = await cycle.delete()
            if outcome.decision is Decision.RELEASE:
                deps.holdings.release(obj.uid)
            return outcome
        if trigger is Trigger.DRIFT and deps.builds.polling(obj.uid, deps.now().timestamp()):
            # The change handler is polling this build on its own schedule: a drift check now would
            # only repeat its calls (kopf's timer does not count status writes as changes).
            return Outcome(Decision.STOP, message="a build in progress is being polled")
        if trigger is Trigger.DRIFT and cycle.waiting_for_spec_change():
            # A terminal failure at this generation: the timer must not retry it (no hot loop).
            return Outcome(Decision.STOP, message="waiting for the spec to change")
        spec = cycle.validate()  # AWS never sees a spec that fails the model
        resolved = await cycle.resolve()
        ref = cycle.ref()
        if ref is not None:
            deps.holdings.hold(kind.kind, ref, obj.uid)
        if ref is None:
            adopt_id = obj.annotations.get(ADOPT_ANNOTATION, "").strip()
            if adopt_id and cycle.pending() is None:  # (a recorded intent is settled first: no orphan)
                return await cycle.adopt(spec, resolved, adopt_id)
            return await cycle.create(spec, resolved)
        moved_from = cycle.moved_from()
        if moved_from is not None:  # a resource cannot change region: make one there, then delete this
            return cycle.replace(
                spec, resolved, ref, f"spec.region changed from {moved_from} to {cycle.region}"
            )
        observation = await cycle.observe(spec, ref, resolved)
        if observation.phase is Phase.ABSENT:
            return await cycle.recreate(spec, resolved, ref)
        if observation.phase is Phase.IN_PROGRESS:
            return cycle.wait_for_build(observation)
        if observation.phase is Phase.FAILED:
            return await cycle.build_failed(spec, resolved, ref, observation)
        waiting = await cycle.retire_replaced(spec, resolved)  # the new one is READY: drop the old
        if waiting is not None:
            return waiting
        if observation.replace:
            return cycle.replace(spec, resolved, ref, ", ".join(observation.replace))
        if observation.diff:
            return await cycle.update(spec, resolved, ref, observation)
        return cycle.up_to_date(observation)
    except ReconcileError as error:
        return cycle.failed(error)
    except Exception as error:  # a bug (ours or an adapter's): report it, back off, never crash
        log.exception("reconcile of %s/%s failed unexpectedly", obj.namespace, obj.name)
        return cycle.failed(classify(error, "reconcile", obj.retry, deps.rng))


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


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return c.rfc3339(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _loc(path: Sequence[int | str]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _refs_equal(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return dict(a) == dict(b)


class _Cycle:
    """The state of one reconcile cycle: the status patch and events it is building."""

    def __init__(self, kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps) -> None:
        self.kind = kind
        self.obj = obj
        self.deps = deps
        self.now = deps.now()
        #: a drift-timer cycle: a build it starts is polled by the timer, not by a change handler.
        self.by_timer = False
        self.prior_conditions: list[Mapping[str, Any]] = list(obj.status.get("conditions") or [])
        self.conditions: list[dict[str, Any]] = [dict(x) for x in self.prior_conditions]
        self.patch: dict[str, Any] = {}
        self.events: list[Event] = []
        self.pending_failure: RetryableError | None = None
        #: the region new resources go to: spec.region, else the operator's.
        spec_region = obj.spec.get("region")
        self.region: str | None = (
            spec_region if isinstance(spec_region, str) and spec_region else deps.default_region
        )
        #: regions of the resources in status.retiring, by ref_text (they may live elsewhere).
        self.retiring_regions: dict[str, str] = {}
        self.log_fields: dict[str, object] = {
            "obj_kind": kind.kind,
            "obj_namespace": obj.namespace,
            "obj_name": obj.name,
            "obj_region": self.region,
        }
        self.logger = logging.LoggerAdapter(log, self.log_fields)

    # ----- status bookkeeping

    def get(self, key: str) -> Any:
        """The status as it will be after this cycle's patch."""
        return self.patch[key] if key in self.patch else self.obj.status.get(key)

    def ref(self) -> ExternalRef | None:
        values = {f: self.get(f) for f in self.kind.ref_fields}
        if all(isinstance(v, str) and v for v in values.values()):
            ref = {k: str(v) for k, v in values.items()}
            self.log_fields["obj_id"] = self.ref_text(ref)
            return ref
        return None

    def ref_text(self, ref: ExternalRef) -> str:
        return "/".join(ref.values())

    def write_ref(self, ref: ExternalRef) -> None:
        """Record the current resource, made (or found) in this cycle's region."""
        self.log_fields["obj_id"] = self.ref_text(ref)
        for key, value in ref.items():
            self.patch[key] = value
        if self.region:
            self.patch["region"] = self.region

    def clear_ref(self) -> None:
        for key in self.kind.ref_fields:
            self.patch[key] = None
        self.patch["region"] = None

    def recorded_region(self) -> str | None:
        """Where the current resource lives (None for objects from before the region was recorded)."""
        value = self.get("region")
        return value if isinstance(value, str) and value else None

    def moved_from(self) -> str | None:
        """The recorded region, when the spec now asks for another one."""
        recorded = self.recorded_region()
        return recorded if recorded and self.region and recorded != self.region else None

    def region_of(self, ref: ExternalRef) -> str | None:
        """The region to address `ref` in: a replaced one's own, the current one's recorded one."""
        return self.retiring_regions.get(self.ref_text(ref)) or self.recorded_region() or self.region

    def retiring_refs(self) -> list[tuple[ExternalRef, bool]]:
        """Replaced resources still to delete, each with whether its delete was already requested."""
        result: list[tuple[ExternalRef, bool]] = []
        for entry in self.get("retiring") or []:
            ref = {k: str(v) for k, v in entry.items() if k not in (_REQUESTED, _REGION)}
            if entry.get(_REGION):
                self.retiring_regions[self.ref_text(ref)] = str(entry[_REGION])
            result.append((ref, _REQUESTED in entry))
        return result

    def retiring(self) -> list[ExternalRef]:
        return [r for r, _ in self.retiring_refs()]

    def set_retiring(self, entries: Sequence[tuple[ExternalRef, bool]]) -> None:
        stored: list[dict[str, str]] = []
        for ref, asked in entries:
            entry = dict(ref)
            region = self.retiring_regions.get(self.ref_text(ref))
            if region:
                entry[_REGION] = region
            if asked:
                entry[_REQUESTED] = "true"
            stored.append(entry)
        self.patch["retiring"] = stored

    def pending(self) -> Mapping[str, str] | None:
        value = self.get("createPending")
        return value if isinstance(value, Mapping) and value.get("since") else None

    def merge_outputs(self, outputs: Mapping[str, Any]) -> None:
        for key, value in outputs.items():
            if key not in _ENGINE_KEYS and value is not None:
                self.patch[key] = _jsonable(value)

    def owner(self, since: datetime | None = None) -> Owner:
        return Owner(self.obj.uid, self.obj.namespace, self.obj.name, create_pending_since=since)

    def prior(self, type_: str) -> Mapping[str, Any] | None:
        return c.find_condition(self.prior_conditions, type_)

    def set_ready(self, status: c.ConditionStatus, reason: str, message: str) -> None:
        new = c.condition(c.READY, status, reason, message, self.obj.generation, self.now)
        self.conditions = c.set_condition(self.conditions, new)

    def set_synced(self) -> None:
        self.conditions = c.set_condition(self.conditions, c.reconcile_success(self.obj.generation, self.now))

    def event(self, reason: str, message: str, type_: Literal["Normal", "Warning"] = "Normal") -> None:
        self.events.append(Event(type_, reason, message))

    def finish(self, decision: Decision, delay: float = 0.0, message: str = "") -> Outcome:
        """Build the single status patch of this cycle, leaving out what did not change."""
        patch = dict(self.patch)
        patch["conditions"] = self.conditions
        patch["observedGeneration"] = self.obj.generation
        patch = {k: v for k, v in patch.items() if self.obj.status.get(k) != v}
        if not message and decision is Decision.REQUEUE:
            ready = c.find_condition(self.conditions, c.READY) or {}
            message = f"{ready.get('reason', 'waiting')}: {ready.get('message', '')}".rstrip(": ")
        return Outcome(decision, max(0.0, delay), patch, tuple(self.events), message)

    def poll_delay(self) -> float:
        """Short and growing: a fraction of the wait so far, between poll_min and poll_max."""
        timing = self.deps.timing
        ready = c.find_condition(self.conditions, c.READY)
        since = c.parse_rfc3339(str(ready.get("lastTransitionTime", ""))) if ready else None
        elapsed = (self.now - since).total_seconds() if since else 0.0
        return min(timing.poll_max, max(timing.poll_min, elapsed * timing.poll_factor))

    def build_started(self, what: str) -> float:
        """A create or update was accepted: start this object's build clock; the delay to the first poll."""
        # Now, not the cycle's start: the create may have waited long for the rate limiter.
        self.deps.builds.begin(
            self.obj.uid, f"{self.kind.kind}/{what}", self.deps.now().timestamp(), by_timer=self.by_timer
        )
        return self.build_poll_delay()

    def build_poll_delay(self) -> float:
        """Until the next look at a build: paced by when it began and how long this kind's builds take;
        without that (a restart), by the Ready condition's last transition."""
        timing = self.deps.timing
        known = self.deps.builds.next_poll(
            self.obj.uid, self.deps.now().timestamp(), timing.poll_min, timing.poll_max
        )
        return self.poll_delay() if known is None else known

    def waiting_for_spec_change(self) -> bool:
        synced = self.prior(c.SYNCED)
        return bool(
            synced
            and synced.get("status") == "False"
            and synced.get("reason") in c.TERMINAL_REASONS
            and synced.get("observedGeneration") == self.obj.generation
        )

    # ----- the AWS edge

    async def aws(
        self,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        passthrough: tuple[type[Exception], ...] = (),
        region: str | None = None,
    ) -> T:
        """Run one adapter verb; whatever it raises is classified here, with the step leading the message."""
        try:
            return await self.deps.aws.call(self.kind, region or self.region, step, fn, self.logger)
        except ReconcileError:
            raise
        except passthrough:
            raise
        except Exception as error:
            raise classify(error, step, self.obj.retry, self.deps.rng) from error

    async def observe(self, spec: BaseModel, ref: ExternalRef, resolved: Resolved) -> Observation:
        observation = await self.observe_ref(spec, ref, resolved)
        if observation.owner_mark is not None and observation.owner_mark != self.owner().mark:
            raise TerminalError(
                c.OWNED_BY_ANOTHER,
                f"observe refused: {self.kind.kind} {self.ref_text(ref)} belongs to {observation.owner_mark}",
            )
        self.merge_outputs(observation.outputs)  # AWS's view of the current resource, always
        if observation.exists and self.recorded_region() is None and self.region:
            self.patch["region"] = self.region  # recorded from now on (objects from before it was)
        return observation

    async def find(self, spec: BaseModel, owner: Owner) -> Found | None:
        found = await self.aws("find", lambda a: a.find(spec, owner))
        if found is not None and any(_refs_equal(found.ref, r) for r in self.retiring()):
            return None  # the resource being replaced, not a new one
        return found

    # ----- steps

    def validate(self) -> BaseModel:
        try:
            spec: BaseModel = self.kind.spec_model.model_validate(dict(self.obj.spec))
        except ValidationError as error:
            problems = "; ".join(f"spec.{_loc(e['loc'])}: {e['msg']}" for e in error.errors())
            raise TerminalError(c.INVALID_SPEC, f"validation failed: {problems}") from None
        return spec

    def validate_leniently(self) -> BaseModel:
        """For deletion: an invalid spec must not keep the finalizer (the ref addresses the resource)."""
        try:
            return self.validate()
        except TerminalError:
            spec: BaseModel = self.kind.spec_model.model_construct(**dict(self.obj.spec))
            return spec

    async def resolve(self) -> Resolved:
        """Read every `...From: {configMapKeyRef: {name, key}}` in the spec."""
        values: dict[str, str] = {}
        for path, name, key in _config_map_refs(self.obj.spec):
            try:
                data = await self.deps.read_configmap(self.obj.namespace, name)
            except Exception as error:
                raise classify(error, "resolve", self.obj.retry, self.deps.rng) from error
            if data is None or key not in data:
                what = f"ConfigMap {self.obj.namespace}/{name}" + (
                    "" if data is None else f" has no key {key!r}"
                )
                raise RetryableError(
                    c.REFERENCE_NOT_FOUND,
                    f"resolve failed: spec.{path}: {what}" + (" not found" if data is None else ""),
                    backoff_delay(self.obj.retry + 4, self.deps.rng),
                )
            values[path] = data[key]
        return Resolved(values)

    async def adopt(self, spec: BaseModel, resolved: Resolved, adopt_id: str) -> Outcome:
        """Take over an existing resource the user named; create nothing, never take another's."""
        ref = await self.aws("adopt", lambda a: a.ref_for_id(spec, adopt_id))
        observation = await self.aws("observe", lambda a: a.observe(spec, ref, self.owner(), resolved))
        if observation.phase is Phase.ABSENT:
            raise TerminalError(
                c.ADOPT_TARGET_NOT_FOUND,
                f"adopt failed: no {self.kind.kind} {adopt_id} in AWS ({ADOPT_ANNOTATION})",
            )
        if observation.owner_mark is not None and observation.owner_mark != self.owner().mark:
            raise TerminalError(
                c.OWNED_BY_ANOTHER, f"adopt refused: {adopt_id} is managed by {observation.owner_mark}"
            )
        self.write_ref(ref)
        self.merge_outputs(observation.outputs)
        self.patch["createPending"] = None
        self.event(c.EV_ADOPTED, f"adopted the existing {self.kind.kind} {adopt_id}")
        self.set_ready("False", c.UPDATING, "adopted: bringing it in line with the spec")
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.deps.timing.poll_min)

    async def create(self, spec: BaseModel, resolved: Resolved, replacing: bool = False) -> Outcome:
        """Create through the crash window: intent first, then (next cycle) look, then create."""
        pending = self.pending()
        if pending is None:
            if self.kind.find_before_create:
                found = await self.find(spec, self.owner())
                if found is not None:
                    return self.claim(found, None)
            return self.record_intent(spec, resolved, c.REPLACING if self.retiring() else c.CREATING)
        since = c.parse_rfc3339(str(pending.get("since"))) or self.now
        owner = self.owner(since)
        token = make_token(self.obj.uid, str(pending.get("since")), spec, resolved)
        # The create may have reached AWS before a crash. Replaying the same token is safe where the
        # API has one, the spec is unchanged and the token has not expired; otherwise look first.
        replay_is_safe = (
            not self.kind.find_before_create
            and pending.get("token") == token
            and (self.now - since).total_seconds() < self.deps.timing.token_trust
        )
        fresh = (self.obj.uid, str(pending.get("since")))
        sent_nothing = fresh in self.deps.fresh_intents
        self.deps.fresh_intents.discard(fresh)  # from here on a create may reach AWS
        if not replay_is_safe and not sent_nothing:
            found = await self.find(spec, owner)
            if found is not None:
                return self.claim(found, since)
        try:
            created: Created = await self.aws(
                "create", lambda a: a.create(spec, owner, token, resolved), passthrough=(AlreadyExists,)
            )
        except AlreadyExists as error:
            # Sent with the intent's own token, a create that reached AWS before a crash would have
            # been answered with its resource, not a conflict: an untagged resource in the way is
            # somebody else's, however recent (the time-based claim is for creates without a token).
            return await self.create_collided(spec, owner, None if replay_is_safe else since, str(error))
        self.deps.holdings.hold(self.kind.kind, created.ref, self.obj.uid)
        self.write_ref(created.ref)
        self.merge_outputs(created.outputs)
        self.patch["createPending"] = None
        self.event(c.EV_CREATED, f"created {self.kind.kind} {self.ref_text(created.ref)}")
        reason = c.REPLACING if self.retiring() else c.CREATING
        self.set_ready("False", reason, "created: waiting for AWS to finish building it")
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.build_started("create"))

    async def create_collided(
        self, spec: BaseModel, owner: Owner, since: datetime | None, said: str
    ) -> Outcome:
        found = await self.find(spec, owner)
        if found is not None:
            return self.claim(found, since)
        if self.retiring():
            # The name is held by the resource being replaced: delete it first, then create.
            for old in self.retiring():
                await self.delete_ref(spec, old)
            self.set_retiring([(r, True) for r in self.retiring()])
            self.set_ready("False", c.REPLACING, "deleting the old resource first: it holds the name")
            self.set_synced()
            return self.finish(Decision.REQUEUE, self.poll_delay())
        raise RetryableError(
            c.ALREADY_EXISTS,
            f"create failed: {said} (and no matching resource was found to adopt)",
            backoff_delay(self.obj.retry + 3, self.deps.rng),
        )

    def record_intent(self, spec: BaseModel, resolved: Resolved, reason: str) -> Outcome:
        """Persist createPending and requeue at once: no create call before the marker is stored."""
        since = c.rfc3339(self.now)
        token = make_token(self.obj.uid, since, spec, resolved)
        self.patch["createPending"] = {"token": token, "since": since}
        self.deps.fresh_intents.add((self.obj.uid, since))
        # Unknown, not False: the flip to False when the create is sent starts the build clock that
        # paces the polls, however long the create waited for the rate limiter.
        ready = c.find_condition(self.conditions, c.READY)
        status: c.ConditionStatus = "False" if ready and ready.get("status") == "False" else "Unknown"
        self.set_ready(status, reason, "recording the intent to create before calling AWS")
        self.set_synced()
        return self.finish(Decision.REQUEUE, 0.0)

    def claim(self, found: Found, since: datetime | None) -> Outcome:
        """A resource with our natural key exists: ours (adopt it) or somebody else's (refuse)."""
        what = f"{self.kind.kind} {self.ref_text(found.ref)}"
        ours = self.is_ours(found, since)
        if not ours:
            self.patch["createPending"] = None
            if found.owner_mark is not None:
                raise TerminalError(
                    c.OWNED_BY_ANOTHER, f"create refused: {what} belongs to {found.owner_mark}"
                )
            raise TerminalError(
                c.ALREADY_EXISTS,
                f"create refused: {what} already exists and is not this object's; adopt it with the "
                f"annotation {ADOPT_ANNOTATION} or choose another name",
            )
        self.deps.holdings.hold(self.kind.kind, found.ref, self.obj.uid)
        self.write_ref(found.ref)
        self.patch["createPending"] = None
        self.event(c.EV_CREATED, f"found {what}, created before an interruption; using it")
        reason = c.REPLACING if self.retiring() else c.CREATING
        self.set_ready("False", reason, "waiting for AWS to finish building it")
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.build_started("create"))

    async def recreate(self, spec: BaseModel, resolved: Resolved, ref: ExternalRef) -> Outcome:
        ready = self.prior(c.READY)
        changed_at = c.parse_rfc3339(str(ready.get("lastTransitionTime", ""))) if ready else None
        if (
            ready is not None
            and ready.get("reason") in (c.CREATING, c.REPLACING)
            and changed_at is not None
            and (self.now - changed_at).total_seconds() < self.deps.timing.absent_grace
        ):
            # Read-after-create: AWS may not list a resource it just made. Do not create a second one.
            self.set_synced()
            return self.finish(Decision.REQUEUE, self.poll_delay())
        self.event(
            c.EV_RECREATED,
            f"{self.kind.kind} {self.ref_text(ref)} was deleted outside the operator; creating it again",
        )
        self.clear_ref()
        return self.record_intent(spec, resolved, c.CREATING)

    def wait_for_build(self, observation: Observation) -> Outcome:
        ready = self.prior(c.READY)
        if ready is not None and ready.get("status") == "True":
            reason = c.UPDATING
        elif ready is not None and ready.get("reason") in (c.CREATING, c.UPDATING, c.REPLACING):
            reason = str(ready["reason"])
        else:
            reason = c.REPLACING if self.retiring() else c.CREATING
        self.set_ready("False", reason, observation.message or "AWS is building it")
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.build_poll_delay())

    async def build_failed(
        self, spec: BaseModel, resolved: Resolved, ref: ExternalRef, observation: Observation
    ) -> Outcome:
        ready = self.prior(c.READY)
        failed_at = (
            ready.get("observedGeneration") if ready and ready.get("reason") == c.BUILD_FAILED else None
        )
        if failed_at is not None and failed_at != self.obj.generation:
            # The spec changed since the build failed: a fresh resource, not a blind retry.
            return self.replace(spec, resolved, ref, "the build failed and the spec has changed since")
        self.deps.builds.forget(self.obj.uid)
        message = (
            f"AWS failed to build {self.kind.kind} {self.ref_text(ref)}: {observation.message or 'no reason'}"
        )
        self.set_ready("False", c.BUILD_FAILED, message)
        self.conditions = c.set_condition(
            self.conditions, c.reconcile_error(c.BUILD_FAILED, message, self.obj.generation, self.now)
        )
        if failed_at is None:
            self.event(c.BUILD_FAILED, message, "Warning")
        return self.finish(Decision.STOP, message=message)

    def replace(self, spec: BaseModel, resolved: Resolved, ref: ExternalRef, why: str) -> Outcome:
        """Create a new resource; the old one is deleted only once the new one is READY."""
        retiring = self.retiring_refs()
        if not any(_refs_equal(ref, r) for r, _ in retiring):
            retiring.append((ref, False))
            self.retiring_regions[self.ref_text(ref)] = self.region_of(ref) or ""
        self.set_retiring(retiring)
        self.clear_ref()
        self.event(
            c.EV_REPLACING,
            f"replacing {self.kind.kind} {self.ref_text(ref)} ({why}): creating a new one, deleting the old "
            "once the new one is ready",
        )
        return self.record_intent(spec, resolved, c.REPLACING)

    async def retire_replaced(self, spec: BaseModel, resolved: Resolved) -> Outcome | None:
        """Delete the resources this one replaced; None when none is left."""
        retiring = self.retiring_refs()
        if not retiring:
            return None
        remaining = await self.delete_refs(spec, resolved, retiring)
        self.set_retiring(remaining)
        if not remaining:
            gone = ", ".join(self.ref_text(r) for r, _ in retiring)
            self.event(c.EV_REPLACED, f"replaced: the old {self.kind.kind} {gone} is deleted")
            return None
        self.set_ready(
            "False", c.REPLACING, "the new resource is ready; waiting for the old one to be deleted"
        )
        if self.pending_failure is not None:
            raise self.pending_failure
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.poll_delay())

    async def update(
        self, spec: BaseModel, resolved: Resolved, ref: ExternalRef, observation: Observation
    ) -> Outcome:
        await self.aws("update", lambda a: a.update(spec, ref, observation, self.owner(), resolved))
        ready = self.prior(c.READY)
        drift = bool(
            ready and ready.get("status") == "True" and ready.get("observedGeneration") == self.obj.generation
        )
        fields = ", ".join(observation.diff)
        if (
            ready
            and ready.get("reason") == c.UPDATING
            and ready.get("observedGeneration") == self.obj.generation
        ):
            # Updated already at this generation, and AWS still differs: no second event. If that
            # lasts, the adapter's diff does not converge (AWS normalises a value, say): say so and
            # slow down to one update per slow retry instead of one per poll.
            since = c.parse_rfc3339(str(ready.get("lastTransitionTime", "")))
            elapsed = (self.now - since).total_seconds() if since else 0.0
            if elapsed > self.deps.timing.converge_timeout:
                raise RetryableError(
                    c.NOT_CONVERGING,
                    f"update failed: AWS still differs from the spec in {fields} {elapsed:.0f}s after the "
                    "operator started updating it",
                    SLOW_RETRY,
                )
            self.set_ready("False", c.UPDATING, f"updating {fields}")
            self.set_synced()
            return self.finish(Decision.REQUEUE, self.poll_delay())
        if drift:
            self.event(
                c.EV_DRIFT_CORRECTED,
                f"AWS differed from the desired state in {fields} (changed outside the operator, or a "
                "referenced ConfigMap changed); corrected",
            )
        else:
            self.event(c.EV_UPDATED, f"updated {fields}")
        self.set_ready("False", c.UPDATING, f"updating {fields}")
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.build_started("update"))

    def up_to_date(self, observation: Observation) -> Outcome:
        self.deps.builds.done(self.obj.uid, self.deps.now().timestamp())
        self.set_ready("True", c.AVAILABLE, "the AWS resource is ready and matches the spec")
        self.set_synced()
        if self.get("createPending") is not None:
            self.patch["createPending"] = None
        return self.finish(Decision.DONE)

    async def observe_ref(self, spec: BaseModel, ref: ExternalRef, resolved: Resolved) -> Observation:
        return await self.aws(
            "observe", lambda a: a.observe(spec, ref, self.owner(), resolved), region=self.region_of(ref)
        )

    async def delete_ref(self, spec: BaseModel, ref: ExternalRef) -> None:
        await self.aws("delete", lambda a: a.delete(spec, ref), region=self.region_of(ref))

    async def delete_refs(
        self, spec: BaseModel, resolved: Resolved, refs: Sequence[tuple[ExternalRef, bool]]
    ) -> list[tuple[ExternalRef, bool]]:
        """Ask AWS to delete each (ref, delete already requested); return those not gone yet.
        A resource still FAILED after a delete we asked for in an earlier cycle is DELETE_FAILED."""
        remaining: list[tuple[ExternalRef, bool]] = []
        failures: list[str] = []
        for ref, asked in refs:
            observation = await self.observe_ref(spec, ref, resolved)
            if observation.phase is Phase.ABSENT:
                continue
            if observation.owner_mark is not None and observation.owner_mark != self.owner().mark:
                continue  # never delete what another object manages
            if observation.phase is Phase.IN_PROGRESS and asked:
                remaining.append((ref, True))  # AWS is deleting it: wait
                continue
            if observation.phase is Phase.FAILED and asked:
                # AWS gave up on the delete we asked for: say so on the resource, and ask again
                # only after a back-off (the requeue below), never in a tight loop.
                failures.append(f"{self.ref_text(ref)}: {observation.message or 'no reason given'}")
            await self.delete_ref(spec, ref)
            # Many deletes finish at once: look again so those release without another cycle.
            after = await self.observe_ref(spec, ref, resolved)
            if after.phase is Phase.ABSENT:
                continue
            remaining.append((ref, True))
        if failures:
            self.pending_failure = RetryableError(
                c.DELETE_FAILED,
                f"delete failed: AWS could not delete {'; '.join(failures)}",
                backoff_delay(self.obj.retry + 3, self.deps.rng),
            )
        return remaining

    def is_ours(self, found: Found, since: datetime | None) -> bool:
        """Ours when it carries our mark, or when untagged and made after we recorded the intent."""
        if found.owner_mark is not None:
            return found.owner_mark == self.owner().mark
        created_at = found.created_at
        if since is None or created_at is None:
            return False
        if self.deps.holdings.holder(self.kind.kind, found.ref) not in (None, self.obj.uid):
            return False  # another object created or recorded it: the same key, asked for at once
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        return created_at >= since - timedelta(seconds=self.deps.timing.create_grace)

    async def delete(self) -> Outcome:
        """The deletion branch: every ref this object holds (current and retiring) goes, unless Retain."""
        spec = self.validate_leniently()
        current = self.ref()
        held = [*self.retiring_refs(), *([(current, False)] if current else [])]
        if getattr(spec, "deletionPolicy", "Delete") == "Retain":
            if held:
                kept = ", ".join(self.ref_text(r) for r, _ in held)
                self.event(c.EV_RETAINED, f"deletionPolicy is Retain: left {kept} in AWS")
            return self.finish(Decision.RELEASE)
        resolved = Resolved()
        ready = self.prior(c.READY)
        asked_current = bool(ready and ready.get("reason") == c.DELETING)
        held = [(r, a) for r, a in self.retiring_refs()] + ([(current, asked_current)] if current else [])
        try:
            if not held:
                pending = self.pending()
                if pending is None:
                    return self.finish(Decision.RELEASE)  # nothing was ever created
                # A create may have reached AWS without its ID being recorded: find it, or it is orphaned.
                since = c.parse_rfc3339(str(pending.get("since")))
                found = await self.find(spec, self.owner(since))
                self.patch["createPending"] = None
                if found is None or not self.is_ours(found, since):
                    return self.finish(Decision.RELEASE)
                current = found.ref
                self.write_ref(current)
                held = [(current, False)]
            # Whatever happens next (in use, throttled, a failed delete), the resource is on its
            # way out: Ready must not keep saying True while the deletion waits.
            self.set_ready("False", c.DELETING, "AWS is deleting it")
            remaining = await self.delete_refs(spec, resolved, held)
        except TerminalError as error:
            # Never let the finalizer go on a terminal error: the resource might stay behind.
            raise RetryableError(error.reason, error.message, SLOW_RETRY) from error
        left_current = current is not None and any(_refs_equal(r, current) for r, _ in remaining)
        self.set_retiring([(r, a) for r, a in remaining if not (current and _refs_equal(r, current))])
        if current is not None and not left_current:
            self.clear_ref()
        if not remaining:
            gone = ", ".join(self.ref_text(r) for r, _ in held)
            self.event(c.EV_DELETED, f"deleted {self.kind.kind} {gone}")
            return self.finish(Decision.RELEASE)
        self.set_ready("False", c.DELETING, "AWS is deleting it")
        if self.pending_failure is not None:
            raise self.pending_failure
        self.set_synced()
        return self.finish(Decision.REQUEUE, self.poll_delay())

    def failed(self, error: ReconcileError) -> Outcome:
        """Every failure ends here: a Synced=False condition, a Warning on the transition, a decision."""
        if self.obj.deleting and isinstance(error, TerminalError):
            error = RetryableError(error.reason, error.message, SLOW_RETRY)
        prior = self.prior(c.SYNCED)
        if not (prior and prior.get("status") == "False" and prior.get("reason") == error.reason):
            self.event(error.reason, error.message, "Warning")
        self.conditions = c.set_condition(
            self.conditions, c.reconcile_error(error.reason, error.message, self.obj.generation, self.now)
        )
        ready = c.find_condition(self.conditions, c.READY)
        if ready is None or ready.get("status") == "Unknown":
            # Unknown only says an intent was being recorded: a failed create must not leave it.
            self.set_ready("False", c.UNAVAILABLE, f"not created: {error.reason}")
        if isinstance(error, RetryableError):
            self.logger.info("%s; retrying in %.1fs", error.message, error.delay)
            return self.finish(Decision.REQUEUE, error.delay, error.message)
        self.logger.info("%s; waiting for the spec to change", error.message)
        return self.finish(Decision.STOP, message=error.message)


def _config_map_refs(spec: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted path of the `...From` key, ConfigMap name, key) for every ConfigMap reference."""
    found: list[tuple[str, str, str]] = []
    for key, value in spec.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            ref = value.get("configMapKeyRef")
            if str(key).endswith("From") and isinstance(ref, Mapping):
                found.append((path, str(ref.get("name", "")), str(ref.get("key", ""))))
            else:
                found.extend(_config_map_refs(value, path))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    found.extend(_config_map_refs(item, f"{path}[{index}]"))
    return found


def config_map_names(spec: Mapping[str, Any]) -> set[str]:
    """The ConfigMaps (in the object's namespace) a spec refers to: for the ConfigMap watch."""
    return {name for _, name, _ in _config_map_refs(spec) if name}
