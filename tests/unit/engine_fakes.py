"""Fakes for the engine's unit tests: a tiny kind, an in-memory "cloud" adapter built from functions,
and a driver that applies each Outcome's status patch the way kopf would."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import Field

from q_operator.engine.identity import Identities, Role
from q_operator.engine.memory import Memory
from q_operator.engine.reconcile import Decision, Deps, ObjectView, Outcome, Timing, Trigger, reconcile
from q_operator.kinds.base import (
    Adapter,
    AlreadyExists,
    ClientToken,
    CommonSpec,
    CommonStatus,
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

DEFAULT_REGION = "us-east-1"


class ThingSpec(CommonSpec):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=20)
    size: int = Field(default=1, ge=1, le=10)
    payload: str | None = None
    payloadFrom: dict[str, Any] | None = None


class ThingStatus(CommonStatus):
    thingId: str | None = None


@dataclass
class Thing:
    id: str
    name: str
    size: int
    payload: str | None
    mark: str | None
    created_at: datetime
    phase: Phase = Phase.READY
    building: int = 0  # observes left that report IN_PROGRESS
    message: str = ""


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@dataclass
class FakeCloud:
    """An AWS service in memory. Set `fail[verb]` to a list of exceptions to raise on the next calls,
    or replace any verb with `override[verb]`."""

    clock: FakeClock
    tags: bool = True  # whether the service marks ownership
    build_polls: int = 0  # how many observes a fresh build stays IN_PROGRESS
    delete_polls: int = 0  # how many observes a delete stays IN_PROGRESS
    delete_fails: bool = False  # a delete ends in DELETE_FAILED
    unread_mid_build: bool = False  # mid-build the owner tag is not read (as the plugin adapter does)
    things: dict[str, Thing] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    updates: list[tuple[str, ...]] = field(default_factory=list)
    fail: dict[str, list[BaseException]] = field(default_factory=dict)
    override: dict[str, Callable[..., Any]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    deleting: dict[str, int] = field(default_factory=dict)

    def _enter(self, verb: str) -> None:
        self.calls.append(verb)
        queue = self.fail.get(verb)
        if queue:
            raise queue.pop(0)

    def observe(self, spec: ThingSpec, ref: ExternalRef, owner: Owner, resolved: Resolved) -> Observation:
        self._enter("observe")
        thing = self.things.get(ref["thingId"])
        if thing is None:
            return Observation(Phase.ABSENT)
        if thing.id in self.deleting:
            if self.deleting[thing.id] > 0:
                self.deleting[thing.id] -= 1
                return Observation(Phase.IN_PROGRESS, owner_mark=thing.mark)
            if self.delete_fails:
                del self.deleting[thing.id]
                thing.phase, thing.message = Phase.FAILED, "DELETE_FAILED: still attached"
                return Observation(Phase.FAILED, message=thing.message, owner_mark=thing.mark)
            del self.things[thing.id]
            del self.deleting[thing.id]
            return Observation(Phase.ABSENT)
        outputs = {"thingId": thing.id, "size": thing.size, "createdAt": thing.created_at}
        if thing.building > 0:
            thing.building -= 1
            if self.unread_mid_build:
                return Observation(Phase.IN_PROGRESS, outputs, owner_mark_read=False)
            return Observation(Phase.IN_PROGRESS, outputs, owner_mark=thing.mark)
        payload = resolved.values.get("payloadFrom", spec.payload)
        diff = tuple(
            name
            for name, ok in (
                ("size", thing.size == spec.size),
                ("payload", thing.payload == payload),
                # (an observe-only object compares the user's tags only: the fake has none)
                ("tags", not self.tags or thing.mark is not None or owner.observe_only),
            )
            if not ok
        )
        replace = ("name",) if thing.name != spec.name else ()
        return Observation(thing.phase, outputs, diff, replace, thing.message, thing.mark)

    def find(self, spec: ThingSpec, owner: Owner) -> Found | None:
        self._enter("find")
        for thing in self.things.values():
            if thing.name == spec.name and thing.id not in self.deleting:
                return Found({"thingId": thing.id}, thing.mark, thing.created_at)
        return None

    def create(self, spec: ThingSpec, owner: Owner, token: ClientToken, resolved: Resolved) -> Created:
        self._enter("create")
        if token in self.tokens and self.tokens[token] in self.things:
            thing = self.things[self.tokens[token]]
            return Created({"thingId": thing.id}, {"thingArn": f"arn:thing/{thing.id}"})
        if any(t.name == spec.name for t in self.things.values()):
            raise AlreadyExists(f"a thing named {spec.name} exists")
        thing_id = f"t-{next(self.ids)}"
        self.things[thing_id] = Thing(
            thing_id,
            spec.name,
            spec.size,
            resolved.values.get("payloadFrom", spec.payload),
            owner.mark if self.tags else None,
            self.clock(),
            building=self.build_polls,
        )
        self.tokens[token] = thing_id
        return Created({"thingId": thing_id}, {"thingArn": f"arn:thing/{thing_id}"})

    def update(
        self, spec: ThingSpec, ref: ExternalRef, observation: Observation, owner: Owner, resolved: Resolved
    ) -> None:
        self._enter("update")
        thing = self.things[ref["thingId"]]
        self.updates.append(observation.diff)
        if "size" in observation.diff:
            thing.size = spec.size
        if "payload" in observation.diff:
            thing.payload = resolved.values.get("payloadFrom", spec.payload)
        if "tags" in observation.diff:
            thing.mark = owner.mark

    def delete(self, spec: ThingSpec, ref: ExternalRef) -> None:
        self._enter("delete")
        thing = self.things.get(ref["thingId"])
        if thing is not None and self.delete_polls == 0 and not self.delete_fails:
            del self.things[thing.id]  # a delete that finishes at once
        elif thing is not None and thing.id not in self.deleting:
            self.deleting[thing.id] = self.delete_polls

    def ref_for_id(self, spec: ThingSpec, external_id: str) -> ExternalRef:
        return {"thingId": external_id}

    def count(self, verb: str) -> int:
        return self.calls.count(verb)


class CloudAdapter:
    """Routes each verb to the cloud, or to an override function when a test gives one."""

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def __getattr__(self, verb: str) -> Callable[..., Any]:
        override = self.cloud.override.get(verb)
        return override if override is not None else getattr(self.cloud, verb)


def thing_kind(find_before_create: bool = False) -> KindInfo[ThingSpec, ThingStatus]:
    return KindInfo(
        kind="Thing",
        group="test.q-operator.dev",
        version="v1alpha1",
        plural="things",
        singular="thing",
        short_names=("th",),
        spec_model=ThingSpec,
        status_model=ThingStatus,
        service="things",
        adapter_factory=lambda client: client,
        ref_fields=("thingId",),
        find_before_create=find_before_create,
    )


OWN_ACCOUNT = "123456789012"


class FakeAws:
    """One fake cloud per region; the default region's is the world's `cloud`. A role's calls go to
    its account's clouds, keyed "<account>/<region>"; `calls` lists (step, role ARN or None)."""

    def __init__(self, clouds: dict[str, FakeCloud]) -> None:
        self.clouds = clouds
        self.calls: list[tuple[str, str | None]] = []
        #: the operator's own account as STS tells it (None: GetCallerIdentity fails)
        self.own_account: str | None = OWN_ACCOUNT

    async def call(
        self,
        kind: KindInfo[Any, Any],
        region: str | None,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        logger: logging.LoggerAdapter[logging.Logger],
        role: Role | None = None,
    ) -> T:
        self.calls.append((step, role.arn if role else None))
        key = region or DEFAULT_REGION
        if role is not None and role.account != OWN_ACCOUNT:
            key = f"{role.account}/{key}"
        cloud = self.clouds.get(key)
        if cloud is None:
            first = next(iter(self.clouds.values()))
            cloud = self.clouds[key] = FakeCloud(first.clock, tags=first.tags)
        return fn(CloudAdapter(cloud))  # type: ignore[arg-type]

    async def account(self, role: Role | None) -> str | None:
        return role.account if role is not None else self.own_account


def merge_patch(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


@dataclass
class World:
    """One custom resource, the fake cloud, and a driver that plays kopf's part."""

    cloud: FakeCloud
    clock: FakeClock
    kind: KindInfo[ThingSpec, ThingStatus]
    spec: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False
    configmaps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    uid: str = "uid-1"
    retry: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    clouds: dict[str, FakeCloud] = field(default_factory=dict)
    #: the namespaces' AWS bindings (the object lives in namespace "ns").
    identities: Identities = field(default_factory=Identities)
    aws: FakeAws = field(init=False)
    timing: Timing = field(default_factory=Timing)
    #: the operator process's memory: kept across cycles, lost by `restart()`.
    memory: Memory = field(default_factory=Memory)
    #: restart before every cycle (nothing is remembered between cycles).
    forgetful: bool = False

    def __post_init__(self) -> None:
        self.clouds.setdefault(DEFAULT_REGION, self.cloud)
        self.aws = FakeAws(self.clouds)

    def restart(self) -> None:
        """The operator process restarts: everything it remembered in memory is gone."""
        self.memory = Memory()

    @property
    def deps(self) -> Deps:
        async def read_configmap(namespace: str, name: str) -> Mapping[str, str] | None:
            return self.configmaps.get((namespace, name))

        return Deps(
            self.aws,
            read_configmap,
            self.clock,
            self.rng,
            self.timing,
            default_region=DEFAULT_REGION,
            identities=self.identities,
            memory=self.memory,
        )

    def view(self) -> ObjectView:
        return ObjectView(
            self.uid,
            "ns",
            "obj",
            self.generation,
            dict(self.spec),
            dict(self.status),
            dict(self.annotations),
            self.deleting,
            self.retry,
        )

    def change_spec(self, **changes: Any) -> None:
        self.spec.update(changes)
        self.generation += 1

    async def cycle(self, trigger: Trigger = Trigger.CHANGE) -> Outcome:
        if self.forgetful:
            self.restart()
        outcome = await reconcile(self.kind, self.view(), self.deps, trigger)
        self.status = merge_patch(self.status, outcome.status)
        self.events += [(e.type, e.reason, e.message) for e in outcome.events]
        self.outcomes.append(outcome)
        self.retry = self.retry + 1 if outcome.decision is Decision.REQUEUE else 0
        self.clock.advance(outcome.delay)
        return outcome

    async def converge(self, limit: int = 30) -> Outcome:
        """Cycle until the engine stops requeueing (bounded)."""
        for _ in range(limit):
            outcome = await self.cycle()
            if outcome.decision is not Decision.REQUEUE:
                return outcome
        raise AssertionError(f"no convergence in {limit} cycles: {self.outcomes[-3:]}")

    def condition(self, type_: str) -> dict[str, Any]:
        for item in self.status.get("conditions", []):
            if item["type"] == type_:
                return dict(item)
        raise AssertionError(f"no {type_} condition in {self.status}")

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


def world(*, tags: bool = True, build_polls: int = 0, find_before_create: bool = False, **spec: Any) -> World:
    clock = FakeClock()
    cloud = FakeCloud(clock, tags=tags, build_polls=build_polls)
    return World(cloud, clock, thing_kind(find_before_create), {"name": "alpha", **spec})
