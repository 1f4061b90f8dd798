"""Per-object memory: one entry per object, made on first use and forgotten when the finalizer goes
or the object is gone, so a process that sees many objects come and go keeps nothing of them — not
in its memory, its indexes, its List sweeps or its gauges."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import Mapping
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from q_operator.engine import bridge, configmaps, handlers, namespaces
from q_operator.engine.contract import ObserveEach
from q_operator.engine.memory import Index, Memory
from q_operator.engine.reconcile import Deps, Timing, Trigger
from q_operator.engine.sweep import Sweeper
from tests.unit.engine_fakes import DEFAULT_REGION, FakeAws, FakeClock, FakeCloud, merge_patch, thing_kind

#: the ConfigMap every driven object refers to (spec.payloadFrom)
SCHEMA = "schema"


async def _never(seconds: float) -> None:
    """A sweep's own task waits for ever: it never prunes its members, so a leak shows."""
    await asyncio.get_running_loop().create_future()


class Driver:
    """Plays kopf's part for many objects through the bridge: bodies in, status patches applied, and
    the watch events kopf hands the event handlers (handlers.py: index, forget).

    `list_mode`: the kind has a List parent (one List call covers the region, as ListConnectors
    does) and a Sweeper watches each Ready object, as `Q_OPERATOR_OBSERVE_MODE=list` does."""

    def __init__(self, find_before_create: bool = False, list_mode: bool = False) -> None:
        self.clock = FakeClock()
        self.cloud = FakeCloud(self.clock, build_polls=1)
        kind = thing_kind(find_before_create)
        self.kind = dataclasses.replace(kind, list_parent=()) if list_mode else kind
        self.versions = itertools.count(1)
        memory = Memory()
        self.sweeper = Sweeper(memory, 60.0, 3600.0, sleep=_never) if list_mode else None

        async def read_configmap(namespace: str, name: str) -> Mapping[str, str] | None:
            return {"openapi.yaml": "openapi: 3.0.0"} if name == SCHEMA else None

        self.deps = Deps(
            FakeAws({DEFAULT_REGION: self.cloud}),
            read_configmap,
            self.clock,
            random.Random(3),
            Timing(),
            default_region=DEFAULT_REGION,
            memory=memory,
            watcher=self.sweeper or ObserveEach(),
        )

    def spec(self, uid: str) -> dict[str, Any]:
        return {"name": uid, "payloadFrom": {"configMapKeyRef": {"name": SCHEMA, "key": "openapi.yaml"}}}

    def body(self, uid: str, status: dict[str, Any], deleting: bool) -> kopf.Body:
        raw = {
            "metadata": {
                "uid": uid,
                "namespace": "ns",
                "name": uid,
                "generation": 1,
                "resourceVersion": str(next(self.versions)),
                "deletionTimestamp": "2026-01-01T00:00:00Z" if deleting else None,
            },
            "spec": self.spec(uid),
            "status": status,
        }
        return kopf.Body(raw)  # type: ignore[arg-type]

    def seen(self, uid: str) -> None:
        """A watch event of the object (added or modified): what kopf's `index` handler does."""
        handlers.index(self.deps.memory, self.kind, uid, "ns", uid, self.spec(uid))

    def gone(self, uid: str) -> None:
        """Its DELETED event: what kopf's `forget` handler does."""
        bridge.forget(self.deps, uid)

    async def cycle(
        self, uid: str, status: dict[str, Any], *, deleting: bool = False, trigger: Trigger = Trigger.CHANGE
    ) -> tuple[dict[str, Any], str]:
        """One handler call: the new status, and how kopf was told to go on."""
        self.seen(uid)
        patch = kopf.Patch()
        body = self.body(uid, status, deleting)
        try:
            await bridge.run_cycle(self.deps, self.kind, trigger, body, patch, deleting=deleting)
            verdict = "done"
        except kopf.TemporaryError:
            verdict = "requeue"
        except kopf.PermanentError:
            verdict = "stop"
        self.clock.advance(2.0)
        return merge_patch(status, dict(patch.get("status", {}))), verdict

    async def create_until_ready(self, uid: str) -> dict[str, Any]:
        status: dict[str, Any] = {}
        for _ in range(20):
            status, verdict = await self.cycle(uid, status)
            if verdict == "done":
                return status
        raise AssertionError(f"{uid} never became ready: {status}")

    async def delete_until_released(self, uid: str, status: dict[str, Any]) -> None:
        """Delete handler calls until the finalizer goes; then the watch events that follow: the
        finalizer's removal (modified), and the object's deletion."""
        for _ in range(20):
            status, verdict = await self.cycle(uid, status, deleting=True)
            if verdict == "done":
                self.seen(uid)
                self.gone(uid)
                return
        raise AssertionError(f"{uid} was never released: {status}")

    def members(self) -> list[str]:
        """The uids the List sweeps hold as members."""
        if self.sweeper is None:
            return []
        return [uid for parent in self.sweeper.parents.values() for uid in parent.members.values()]


def _no_event(*_: object, **__: object) -> None:
    """kopf posts events only inside a running operator: the events are not what these tests check."""


def _gauge(kind: str) -> float:
    total = 0.0
    for condition, status in itertools.product(("Ready", "Synced"), ("True", "False", "Unknown")):
        labels = {"kind": kind, "condition": condition, "status": status}
        total += REGISTRY.get_sample_value("q_operator_resources", labels) or 0.0
    return total


@pytest.mark.parametrize("list_mode", [False, True], ids=["observe-each", "list-sweep"])
@pytest.mark.parametrize("find_before_create", [False, True], ids=["token-kind", "find-before-create-kind"])
def test_a_thousand_create_delete_cycles_leave_nothing_behind(
    find_before_create: bool, list_mode: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects created to Ready (watched by their parent's List sweep in list mode), deleted between
    the intent and the create, checked by the drift timer, deleted mid-build, or gone with their
    finalizer removed by hand (only the DELETED event says so): once each is gone, the process
    remembers none of them (no lock, no written patch, no build, no held resource, no fresh intent,
    no index entry, no sweep member, no count in the resources gauge)."""
    monkeypatch.setattr(kopf, "event", _no_event)
    driver = Driver(find_before_create, list_mode)
    memory = driver.deps.memory
    counted_before = _gauge(driver.kind.kind)
    refs = memory.index(configmaps.index_name(driver.kind))
    residents = memory.index(namespaces.index_name(driver.kind))
    left_in_aws = 0

    async def lives() -> None:
        nonlocal left_in_aws
        for i in range(1000):
            uid = f"uid-{i}"
            if i % 5 == 0:  # created and ready, then deleted
                status = await driver.create_until_ready(uid)
                assert (uid in driver.members()) is list_mode
                status, _ = await driver.cycle(uid, status, trigger=Trigger.DRIFT)
            elif i % 5 == 1:  # deleted right after the intent was recorded: no create was ever sent
                status, verdict = await driver.cycle(uid, {})
                assert "createPending" in status and verdict == "requeue"
                assert memory.of(uid).fresh_intent is not None
            elif i % 5 == 2:  # deleted while AWS still builds it
                status, _ = await driver.cycle(uid, {})
                status, _ = await driver.cycle(uid, status)
                assert memory.of(uid).build is not None
            elif i % 5 == 3:  # a drift check of an object with nothing yet
                status, _ = await driver.cycle(uid, {}, trigger=Trigger.DRIFT)
            else:  # ready, then its finalizer removed by hand: no delete cycle, its resource stays
                await driver.create_until_ready(uid)
                assert uid in refs.get(("ns", SCHEMA)) and residents.get("ns") == [uid]
                driver.seen(uid)
                driver.gone(uid)
                left_in_aws += 1
                continue
            await driver.delete_until_released(uid, status)

    asyncio.run(lives())
    assert len(memory) == 0, f"left behind: {list(memory)[:5]}"
    assert memory.holdings() == 0
    assert memory.indexed() == 0 and ("ns", SCHEMA) not in refs and "ns" not in residents
    assert driver.members() == [], "forgotten objects still members of a List sweep"
    assert not list_mode or (driver.sweeper is not None and driver.sweeper.parents)  # a sweep was there
    assert _gauge(driver.kind.kind) == counted_before
    assert len(driver.cloud.things) == left_in_aws  # and nothing else left in AWS either


def test_forgetting_an_object_frees_what_it_held_for_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resource held by a released object no longer counts as held: a new object may claim it."""
    monkeypatch.setattr(kopf, "event", _no_event)
    driver = Driver(find_before_create=True)

    async def life() -> None:
        status = await driver.create_until_ready("a")
        ref = {"thingId": status["thingId"]}
        where = ("own", DEFAULT_REGION)
        assert driver.deps.memory.holder("Thing", ref, where) == "a"
        driver.gone("a")
        assert driver.deps.memory.holder("Thing", ref, where) is None

    asyncio.run(life())


def test_holdings_are_told_apart_by_account_and_region() -> None:
    """A natural key (a connector's label) is unique only within an account and region: the same
    label held in one account says nothing about the other's."""
    memory = Memory()
    label = {"connectorLabel": "inventory"}
    memory.hold("Connector", label, "a", ("111111111111", "us-east-1"))
    assert memory.holder("Connector", label, ("111111111111", "us-east-1")) == "a"
    assert memory.holder("Connector", label, ("222222222222", "us-east-1")) is None
    assert memory.holder("Connector", label, ("111111111111", "eu-west-1")) is None


class Writer:
    """The status writer of a running operator (process.write_status), in memory: what it stored, in
    order with the cloud's calls; `fail` makes the next write raise (the API server unreachable)."""

    def __init__(self, cloud_calls: list[str]) -> None:
        self.cloud_calls = cloud_calls
        self.writes: list[tuple[str, dict[str, Any], int]] = []
        self.slept: list[float] = []
        self.fail = False

    async def __call__(self, kind: Any, namespace: str, name: str, patch: Mapping[str, Any]) -> str:
        if self.fail:
            raise OSError("connection refused")
        self.writes.append((name, dict(patch), len(self.cloud_calls)))
        return f"written-{len(self.writes)}"


def _with_writer(driver: Driver) -> Writer:
    writer = Writer(driver.cloud.calls)

    async def sleep(seconds: float) -> None:
        writer.slept.append(seconds)
        driver.clock.advance(seconds)

    driver.deps = dataclasses.replace(driver.deps, write_status=writer, sleep=sleep)
    return writer


def test_one_handler_call_stores_the_intent_creates_and_waits_for_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a status writer, the cycle that records the intent stores it at once, the create follows
    in the same handler call — never before the intent is stored — and the call waits for the build's
    next looks itself, storing what each cycle found, until the object is Ready (no kopf round trip)."""
    monkeypatch.setattr(kopf, "event", _no_event)
    driver = Driver()  # its builds stay IN_PROGRESS for one look
    writer = _with_writer(driver)

    async def life() -> None:
        patch = kopf.Patch()
        body = driver.body("a", {}, False)
        await bridge.run_cycle(driver.deps, driver.kind, Trigger.CHANGE, body, patch, deleting=False)
        assert driver.cloud.calls == ["create", "observe", "observe"]
        intent, created, building = writer.writes
        assert intent[0] == "a" and "createPending" in intent[1] and intent[2] == 0  # before the create
        assert created[1].get("thingId") and created[1].get("createPending", "kept") is None
        assert created[2] == 1 and building[2] == 2  # each stored before the next call to AWS
        assert len(writer.slept) == 2 and all(0 < s <= bridge.WAIT_HERE_SECONDS for s in writer.slept)
        status: dict[str, Any] = {}
        for _, written, _ in writer.writes:
            status = merge_patch(status, written)
        status = merge_patch(status, dict(patch["status"]))
        ready = [c for c in status["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True" and "createPending" not in status
        # kopf may hand a handler one of the bodies those writes made (its consistency wait timed
        # out): at the spec the call converged on, it has nothing to add — no AWS call.
        raw: dict[str, Any] = dict(body)
        raw["metadata"] = {**raw["metadata"], "resourceVersion": "written-2"}
        stale = kopf.Body(raw)  # type: ignore[arg-type]
        await bridge.run_cycle(driver.deps, driver.kind, Trigger.CHANGE, stale, kopf.Patch(), deleting=False)
        assert driver.cloud.calls == ["create", "observe", "observe"]

    asyncio.run(life())


def test_a_long_build_goes_back_to_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that outlasts the wait allowed in one call is polled through kopf's requeue."""
    monkeypatch.setattr(kopf, "event", _no_event)
    driver = Driver()
    driver.cloud.build_polls = 100
    writer = _with_writer(driver)

    async def life() -> None:
        _, verdict = await driver.cycle("a", {})
        assert verdict == "requeue" and any(w.get("thingId") for _, w, _ in writer.writes)
        assert 0 < sum(writer.slept) <= bridge.WAIT_HERE_TOTAL

    asyncio.run(life())


def test_an_intent_that_cannot_be_stored_at_once_goes_through_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the direct write fails, the cycle hands the intent to kopf and sends no create."""
    monkeypatch.setattr(kopf, "event", _no_event)
    driver = Driver()
    writer = _with_writer(driver)
    writer.fail = True

    async def life() -> None:
        status, verdict = await driver.cycle("a", {})
        assert verdict == "requeue" and "createPending" in status
        assert driver.cloud.calls == []
        writer.fail = False
        _, verdict = await driver.cycle("a", status)  # the intent stored: create, wait, Ready
        assert verdict == "done" and driver.cloud.calls.count("create") == 1

    asyncio.run(life())


def test_the_index_follows_each_object_and_forgets_it_when_gone() -> None:
    """An object's entries replace its earlier ones; a key is listed while some object names it."""
    index = Index()
    index.replace("u1", {("ns", "cm"): "a"})
    index.replace("u2", {("ns", "cm"): "b", ("ns", "other"): "b"})
    assert index.get(("ns", "cm")) == ["a", "b"] and ("ns", "other") in index
    index.replace("u2", {("ns", "other"): "b"})  # its spec no longer names cm
    assert index.get(("ns", "cm")) == ["a"]
    index.discard("u1")
    index.replace("u2", {})
    assert ("ns", "cm") not in index and ("ns", "other") not in index and len(index) == 0
    assert index.get(("ns", "cm")) == []
