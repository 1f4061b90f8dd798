"""The context every step of one cycle shares: the object, its dependencies, and the single status
patch, conditions and events the cycle is building (`finish` turns them into the Outcome).

Reads are plain: a getter here never changes what another getter returns. Everything a step changes
goes through a method named for it (`write_ref`, `set_retiring`, `set_ready`, `event`), and the
replaced resources are parsed once, when the cycle starts, into `Held` values that carry their own
region. The account recorded with a resource or an intent (`record_account`) is the admission's
answer (verbs.py `admit`), asked for where it is recorded: it does not depend on which AWS call the
cycle happened to make first.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from q_operator.engine import conditions as c
from q_operator.engine.contract import Decision, Deps, Event, ObjectView, Outcome, Trigger
from q_operator.engine.verbs import OWN_ACCOUNT, Verbs, verbs_for
from q_operator.kinds.base import ExternalRef, KindInfo, Owner

#: Status keys the engine owns; adapter outputs never overwrite them.
_ENGINE_KEYS = frozenset(
    {"conditions", "observedGeneration", "createPending", "retiring", "region", "accountId", "lastWrite"}
    | {"observeOnly", "lastHandledReconcileAt"}
)
#: Key in a `status.retiring` entry: when the engine asked AWS to delete it (RFC 3339; "true" from
#: before the time was kept). A DELETE_FAILED after that is a failure to report, not a build failure
#: of the replaced resource; a read showing it still there within the consistency bound is waited out.
_REQUESTED = "deleteRequested"
#: Key in a `status.retiring` entry: the region the replaced resource lives in.
_REGION = "region"
#: Key in a `status.retiring` entry: when the operator created it (RFC 3339), if it did within memory.
_CREATED = "created"

log = logging.getLogger("q_operator.engine")


@dataclass(frozen=True)
class Held:
    """An AWS resource this object holds and may have to delete: a replaced one (status.retiring), or
    the current one while the object is deleted."""

    ref: ExternalRef
    #: where it lives; None: where the current resource is recorded (objects from before regions were).
    region: str | None = None
    #: the engine already asked AWS to delete it (in an earlier cycle).
    delete_requested: bool = False
    #: when it asked (None: not asked, or asked before the time was kept).
    requested_at: datetime | None = None
    #: when the operator created it (None: long ago, or not the operator): reads may not show it for
    #: the consistency bound after that.
    created: datetime | None = None

    def asked(self, at: datetime) -> Held:
        """The same resource, its delete sent at `at`."""
        return Held(self.ref, self.region, True, at, self.created)


def same_ref(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return dict(a) == dict(b)


def ref_text(ref: ExternalRef) -> str:
    return "/".join(ref.values())


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


class Cycle:
    """One reconcile cycle of one object: what it read, and the patch and events it is building."""

    def __init__(self, kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps, trigger: Trigger) -> None:
        self.kind = kind
        self.obj = obj
        self.deps = deps
        self.now = deps.now()
        #: a drift-timer cycle: a build it starts is polled by the timer, not by a change handler.
        self.by_timer = trigger is Trigger.DRIFT
        self.prior_conditions: list[Mapping[str, Any]] = list(obj.status.get("conditions") or [])
        self.conditions: list[dict[str, Any]] = [dict(x) for x in self.prior_conditions]
        self.patch: dict[str, Any] = {}
        self.events: list[Event] = []
        #: the region new resources go to: spec.region, else the namespace's (identity.py), else the
        #: operator's.
        spec_region = obj.spec.get("region")
        self.region: str | None = (
            spec_region
            if isinstance(spec_region, str) and spec_region
            else deps.identities.of(obj.namespace).region or deps.default_region
        )
        #: replaced resources still to delete, as the cycle started (set_retiring changes both).
        self.retiring: list[Held] = [_parse_retiring(entry) for entry in obj.status.get("retiring") or []]
        self.log_fields: dict[str, object] = {
            "obj_kind": kind.kind,
            "obj_namespace": obj.namespace,
            "obj_name": obj.name,
            "obj_region": self.region,
        }
        self.logger = logging.LoggerAdapter(log, self.log_fields)
        #: the adapter's verbs, as this object calls them (its AWS session, its region).
        self.aws: Verbs = verbs_for(kind, obj, deps, self.region, self.logger)

    # ----- what the status says (after this cycle's patch so far)

    def get(self, key: str) -> Any:
        return self.patch[key] if key in self.patch else self.obj.status.get(key)

    def current_ref(self) -> ExternalRef | None:
        """The recorded AWS resource, or None when none is recorded yet."""
        values = {f: self.get(f) for f in self.kind.ref_fields}
        if all(isinstance(v, str) and v for v in values.values()):
            return {k: str(v) for k, v in values.items()}
        return None

    def recorded_region(self) -> str | None:
        """Where the current resource lives (None for objects from before the region was recorded)."""
        value = self.get("region")
        return value if isinstance(value, str) and value else None

    def moved_from(self) -> str | None:
        """The recorded region, when the spec now asks for another one."""
        recorded = self.recorded_region()
        return recorded if recorded and self.region and recorded != self.region else None

    def address(self, held: Held) -> str | None:
        """The region to call AWS in for a held resource: its own, else the current one's."""
        return held.region or self.recorded_region() or self.region

    def where(self, region: str | None) -> tuple[str, str]:
        """Where a resource is, for telling natural keys apart (memory.py holdings): the account this
        object's identity acts in ("own": the operator's) and the region."""
        role = self.aws.identity.role
        return (role.account if role is not None else OWN_ACCOUNT, region or "")

    def hold(self, ref: Mapping[str, str], region: str | None) -> None:
        """Record that this object holds the resource (memory.py `hold`)."""
        self.deps.memory.hold(self.kind.kind, ref, self.obj.uid, self.where(region))

    def pending(self) -> Mapping[str, str] | None:
        """status.createPending: an intent to create that a create may have followed."""
        value = self.get("createPending")
        return value if isinstance(value, Mapping) and value.get("since") else None

    def owner(self, since: datetime | None = None, repeat: bool = False, observe_only: bool = False) -> Owner:
        obj = self.obj
        return Owner(
            obj.uid,
            obj.namespace,
            obj.name,
            create_pending_since=since,
            repeat=repeat,
            observe_only=observe_only,
        )

    def prior(self, type_: str) -> Mapping[str, Any] | None:
        """A condition as the cycle found it."""
        return c.find_condition(self.prior_conditions, type_)

    def waiting_for_spec_change(self) -> bool:
        synced = self.prior(c.SYNCED)
        return bool(
            synced
            and synced.get("status") == "False"
            and synced.get("reason") in c.TERMINAL_REASONS
            and synced.get("observedGeneration") == self.obj.generation
        )

    # ----- what the cycle writes

    def identify(self, ref: ExternalRef) -> None:
        """Name the AWS resource in this cycle's log lines."""
        self.log_fields["obj_id"] = ref_text(ref)

    async def write_ref(self, ref: ExternalRef) -> None:
        """Record the current resource, made (or found) in this cycle's region."""
        self.identify(ref)
        for key, value in ref.items():
            self.patch[key] = value
        await self.record_region()

    async def record_region(self) -> None:
        """Record that the current resource lives in this cycle's region, and in the account of the
        identity that acts for it."""
        if self.region:
            self.patch["region"] = self.region
        await self.record_account("record")

    async def record_account(self, step: str) -> None:
        """Record the account this object's identity acts in (status.accountId): where its resource
        is, or where the create of a recorded intent will act. The admission's answer (`step` names
        it in a refusal): the same at any point of the cycle. Unknown (the operator's own account
        could not be learned): nothing is recorded."""
        account = await self.aws.admit(step)
        if account:
            self.patch["accountId"] = account

    def clear_ref(self) -> None:
        for key in self.kind.ref_fields:
            self.patch[key] = None
        self.patch["region"] = None
        self.patch["accountId"] = None

    def set_retiring(self, entries: Sequence[Held]) -> None:
        self.retiring = list(entries)
        self.patch["retiring"] = [_stored_retiring(held) for held in entries]

    def set_pending(self, value: Mapping[str, str] | None) -> None:
        """status.createPending: a new intent records its account too (steps/create.py `record_intent`)."""
        self.patch["createPending"] = value

    def set_last_write(self, value: Mapping[str, Any]) -> None:
        """Record the engine's last write to the current resource (consistency.py)."""
        self.patch["lastWrite"] = dict(value)

    def set_control(self, key: str, value: Any) -> None:
        """A status key of the user's controls (controls.py: observeOnly, lastHandledReconcileAt)."""
        self.patch[key] = value

    def merge_outputs(self, outputs: Mapping[str, Any]) -> None:
        """AWS's view of the resource into status (never over the engine's own keys)."""
        for key, value in outputs.items():
            if key not in _ENGINE_KEYS and value is not None:
                self.patch[key] = _jsonable(value)

    def set_ready(self, status: c.ConditionStatus, reason: str, message: str) -> None:
        new = c.condition(c.READY, status, reason, message, self.obj.generation, self.now)
        self.conditions = c.set_condition(self.conditions, new)

    def set_synced(self, reason: str = c.RECONCILE_SUCCESS, message: str = "") -> None:
        new = c.condition(c.SYNCED, "True", reason, message, self.obj.generation, self.now)
        self.conditions = c.set_condition(self.conditions, new)

    def set_not_synced(self, reason: str, message: str) -> None:
        new = c.reconcile_error(reason, message, self.obj.generation, self.now)
        self.conditions = c.set_condition(self.conditions, new)

    def event(self, reason: str, message: str, type_: Literal["Normal", "Warning"] = "Normal") -> None:
        self.events.append(Event(type_, reason, message))

    def finish(
        self, decision: Decision, delay: float = 0.0, message: str = "", observed: bool = True
    ) -> Outcome:
        """Build the single status patch of this cycle, leaving out what did not change. `observed`
        False: the cycle did not act on this generation (paused), so observedGeneration stays."""
        patch = dict(self.patch)
        patch["conditions"] = self.conditions
        if observed:
            patch["observedGeneration"] = self.obj.generation
        patch = {k: v for k, v in patch.items() if self.obj.status.get(k) != v}
        if not message and decision is Decision.REQUEUE:
            ready = c.find_condition(self.conditions, c.READY) or {}
            message = f"{ready.get('reason', 'waiting')}: {ready.get('message', '')}".rstrip(": ")
        return Outcome(decision, max(0.0, delay), patch, tuple(self.events), message)

    # ----- when to look again

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
            self.obj.uid,
            self.deps.now().timestamp(),
            timing.poll_min,
            timing.poll_max,
            timing.first_build_factor,
        )
        return self.poll_delay() if known is None else known


def _parse_retiring(entry: Mapping[str, Any]) -> Held:
    ref = {k: str(v) for k, v in entry.items() if k not in (_REQUESTED, _REGION, _CREATED)}
    region = entry.get(_REGION)
    requested = entry.get(_REQUESTED)
    at = c.parse_rfc3339(str(requested)) if requested else None
    created = c.parse_rfc3339(str(entry.get(_CREATED) or ""))
    return Held(ref, str(region) if region else None, requested is not None, at, created)


def _stored_retiring(held: Held) -> dict[str, str]:
    entry = dict(held.ref)
    if held.region:
        entry[_REGION] = held.region
    if held.delete_requested:
        entry[_REQUESTED] = c.rfc3339(held.requested_at) if held.requested_at else "true"
    if held.created:
        entry[_CREATED] = c.rfc3339(held.created)
    return entry
