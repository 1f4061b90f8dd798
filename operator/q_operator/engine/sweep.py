"""List-based observation: Ready objects are watched through their API's List call, one sweep of
pages per parent and drift interval, instead of a per-object observe each (`Q_OPERATOR_OBSERVE_MODE`,
`list` by default; `object`: every object observes itself at each drift interval).

A kind says what one List call covers (`KindInfo.list_parent`: ListPlugins an application,
ListLibraryItems a Q Apps instance, ListConnectors a region) and how a member maps to its ref and to
the status fields it shows (`Adapter.list_page`, `Summary.seen`). This module knows no kind.

- **Watching.** A cycle that ends Ready (DONE) *notes* its object (`note`): its parent, its ref and
  the status it left, which is what the operator last saw of the resource. Any other ending stops
  the watch; the object is back to its own cycles (builds, retries) until it is Ready again.
- **Sweeping.** Each parent with watched objects has one task: every drift interval it lists the
  parent page by page to the end and compares each member's summary with the status of the object
  that holds it. Members no object watches are ignored (not ours, or not Ready yet). A summary that
  differs (updatedAt, buildStatus, state, version ...), or a watched resource missing from a complete
  listing, *wakes* the object: its `q-operator.dev/drift-found` annotation is set (the kopf edge does
  the patch), kopf sees a change, and the object's own cycle observes it fully and corrects it.
- **A throttled sweep resumes.** A page that stays throttled (after the in-place resends) is asked
  again with the same nextToken after the Retry-After; a sweep never starts over because of it.
- **Drift checks skipped.** The per-object drift timer still fires; for a watched object it calls
  nothing (`covers`) while its parent's sweep is alive and the object's full check is not due. A full
  per-object observe comes every `Q_OPERATOR_FULL_CHECK_SECONDS` (tags, and fields no summary shows),
  on a wake, when the sweep has stopped working (say, the List call is denied), and for every object
  that is not Ready.
- **Forgetting.** An object forgotten (bridge.forget: released, or its DELETED event) leaves its
  parent's members at once (`forget`); a member whose object is no longer watched as that member is
  also dropped when a sweep meets it (`_member`).
- **Resume.** After a restart an object whose status shows it converged at its generation is watched
  at once (`takes_over`), without an observe: the first sweep of its parent looks at it. Not an
  object with a control waiting (a pause or a reconcile request set while the operator was down):
  its own cycle records the pause or acts on the request.

Pure of kopf: handlers.py sets `wake` to the function that patches the annotation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from q_operator.engine import conditions as c
from q_operator.engine import controls
from q_operator.engine.aws import env_float
from q_operator.engine.contract import Decision, Deps, ObjectView, ObserveEach, Outcome, Watcher
from q_operator.engine.errors import ReconcileError, RetryableError
from q_operator.engine.memory import Memory, Watched
from q_operator.engine.verbs import verbs_for
from q_operator.kinds.base import KindInfo, Page

log = logging.getLogger("q_operator.engine.sweep")

#: The annotation a sweep sets on an object whose resource it saw change or go: what and when.
WAKE_ANNOTATION = "q-operator.dev/drift-found"
#: (kind, scope: region and identity, the parent's ref fields as sorted items)
ParentKey = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]
RefKey = tuple[tuple[str, str], ...]
#: Sets the wake annotation on (kind, namespace, name) to the value given.
Wake = Callable[[KindInfo[Any, Any], str, str, str], Awaitable[None]]

#: a sweep is taken for dead (its objects are observed one by one again) when its last complete
#: listing is older than this many drift intervals (plus SLACK seconds)
STALE_INTERVALS = 2.0
STALE_SLACK = 30.0
#: the first listing of a new parent waits this long (at most a quarter interval), so that the objects
#: a restart resumes one after another are all in it
FIRST_DELAY = 5.0


def drift_seconds() -> float:
    """The operator's drift interval (`Q_OPERATOR_DRIFT_SECONDS`, at least 10 s): the sweeps' period
    and the drift timer's default (bridge.py; an object's annotation may override it there)."""
    return max(10.0, env_float("Q_OPERATOR_DRIFT_SECONDS", 300.0))


def observe_mode() -> str:
    """`list` (the default) or `object`."""
    mode = os.environ.get("Q_OPERATOR_OBSERVE_MODE", "list").strip().lower() or "list"
    if mode not in ("list", "object"):
        raise ValueError(f"Q_OPERATOR_OBSERVE_MODE must be list or object, not {mode!r}")
    return mode


def from_environment(memory: Memory) -> Watcher:
    """The watcher the settings ask for."""
    if observe_mode() == "object":
        return ObserveEach()
    interval = drift_seconds()
    full = max(interval, env_float("Q_OPERATOR_FULL_CHECK_SECONDS", 3600.0))
    return Sweeper(memory, interval, full)


def ref_key(ref: Mapping[str, str]) -> RefKey:
    return tuple(sorted((str(k), str(v)) for k, v in ref.items()))


def differences(seen: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    """The status fields a summary shows otherwise than the status holds them."""
    return [key for key, value in seen.items() if _comparable(value) != _comparable(status.get(key))]


def _comparable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        items = [_comparable(v) for v in value]
        return sorted(items, key=repr)  # AWS keeps no order in these lists (categories)
    return value


def merged_status(obj: ObjectView, outcome: Outcome) -> dict[str, Any]:
    """The object's status after this cycle's patch."""
    status = dict(obj.status)
    for key, value in outcome.status.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    return status


def converged(kind: KindInfo[Any, Any], obj: ObjectView, status: Mapping[str, Any]) -> bool:
    """Ready and Synced at the current generation, a resource recorded, nothing in flight, and no
    control waiting to be acted on (a pause or a reconcile request set while the operator was down
    must run the object's own cycle, not be handed to its parent's sweep)."""
    if obj.deleting or status.get("createPending") or status.get("retiring"):
        return False
    if controls.is_paused(obj.annotations) or controls.request_pending(obj.annotations, status):
        return False
    if not all(isinstance(status.get(f), str) and status.get(f) for f in kind.ref_fields):
        return False
    conditions = status.get("conditions") or []
    for type_ in (c.READY, c.SYNCED):
        found = c.find_condition(conditions, type_)
        if not found or found.get("status") != "True" or found.get("observedGeneration") != obj.generation:
            return False
    return status.get("observedGeneration") == obj.generation


@dataclass
class Parent:
    """One parent's sweep: who is watched under it, and where its listing is."""

    key: ParentKey
    #: ref → uid of the watched objects under this parent
    members: dict[RefKey, str] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    #: the nextToken of a listing that stopped on a throttle (resumed from there), else None
    token: str | None = None
    #: when the listing under way began (monotonic), and the members it has seen so far
    began: float = 0.0
    seen: set[RefKey] = field(default_factory=set)
    #: when the last complete listing ended (monotonic; None: none yet)
    completed: float | None = None
    #: the last failure, logged once until the sweep works again
    failing: str | None = None


class Sweeper:
    """List mode (see the module's docstring). Runs in the operator's event loop."""

    def __init__(
        self,
        memory: Memory,
        interval: float,
        full_interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.memory = memory
        self.interval = interval
        self.full_interval = full_interval
        self.clock = clock
        self.sleep = sleep
        self.parents: dict[ParentKey, Parent] = {}
        #: sets the wake annotation (the kopf edge, handlers.py); None: only mark the object
        self.wake: Wake | None = None
        #: (kind, what) → how many wakes the sweeps made (for tests and logs)
        self.found: dict[tuple[str, str], int] = {}

    # ----- the bridge's questions

    def covers(self, kind: KindInfo[Any, Any], obj: ObjectView) -> bool:
        watched = self._watched(obj.uid)
        if watched is None or watched.suspect is not None or obj.deleting:
            return False
        if controls.drift_interval(obj.annotations, self.interval).seconds < self.interval:
            return False  # it asks to be looked at more often than its parent is listed
        if watched.generation != obj.generation:
            return False
        now = self.clock()
        if now >= watched.full_due:
            return False  # time for the full observe: what no summary shows (tags)
        parent = self.parents.get(watched.parent)
        if parent is None:
            return False
        last = max(parent.completed if parent.completed is not None else float("-inf"), watched.since)
        return now - last <= STALE_INTERVALS * self.interval + STALE_SLACK

    def takes_over(self, kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps) -> bool:
        if kind.list_parent is None or not converged(kind, obj, obj.status):
            return False
        # The first full checks after a restart are spread over the full interval, not all at once.
        spread = (zlib.crc32(obj.uid.encode()) % 1000) / 1000.0
        self._watch(kind, obj, obj.status, deps, full_due=self.clock() + self.full_interval * (0.25 + spread))
        return True

    def note(self, kind: KindInfo[Any, Any], obj: ObjectView, outcome: Outcome, deps: Deps) -> None:
        status = merged_status(obj, outcome)
        if (
            kind.list_parent is None
            or outcome.decision is not Decision.DONE
            or not converged(kind, obj, status)
        ):
            self._unwatch(obj.uid)
            return
        self._watch(kind, obj, status, deps, full_due=self.clock() + self.full_interval)

    def forget(self, uid: str, watched: Watched | None) -> None:
        """The object is forgotten (bridge.forget): it leaves its parent's sweep now, not at the
        sweep's next turn. A sweep left without members ends at that turn (`_run`)."""
        if watched is not None:
            self._leave(watched, uid)

    # ----- who is watched

    def _watched(self, uid: str) -> Watched | None:
        entry = self.memory.peek(uid)
        return entry.watched if entry is not None else None

    def _watch(
        self,
        kind: KindInfo[Any, Any],
        obj: ObjectView,
        status: Mapping[str, Any],
        deps: Deps,
        full_due: float,
    ) -> None:
        assert kind.list_parent is not None
        ref = {f: str(status[f]) for f in kind.ref_fields}
        region_value = status.get("region") or obj.spec.get("region") or deps.default_region
        region = str(region_value) if region_value else None
        fields = {"obj_kind": kind.kind, "obj_namespace": obj.namespace, "obj_name": obj.name}
        logger = logging.LoggerAdapter(log, fields)
        role = deps.identities.of(obj.namespace).role
        # One sweep per identity and region: AWS lists what the caller's account holds there.
        scope = (region or "", role.arn if role else "", (role.external_id or "") if role else "")

        async def lister(parent: Mapping[str, str], token: str | None) -> Page:
            # Built at each call: the namespace's identity (and the user's controls) as they are now,
            # admitted as for any cycle (a namespace that lost its identity lists nothing).
            verbs = verbs_for(kind, obj, deps, region, logger)
            await verbs.admit("sweep")
            return await verbs.list_page(parent, token)

        parent: ParentKey = (kind.kind, scope, tuple((f, ref[f]) for f in kind.list_parent))
        entry = self.memory.of(obj.uid)
        previous = entry.watched
        if previous is not None and previous.parent != parent:
            self._leave(previous, obj.uid)
        entry.watched = Watched(
            kind=kind,
            parent=parent,
            ref=ref,
            status=status,
            namespace=obj.namespace,
            name=obj.name,
            generation=obj.generation,
            lister=lister,
            since=self.clock(),
            full_due=full_due,
        )
        sweep = self.parents.get(parent)
        if sweep is None:
            sweep = self.parents[parent] = Parent(parent)
        sweep.members[ref_key(ref)] = obj.uid
        if sweep.task is None or sweep.task.done():
            sweep.task = asyncio.get_running_loop().create_task(self._run(sweep), name=f"sweep {parent}")

    def _unwatch(self, uid: str) -> None:
        entry = self.memory.peek(uid)
        if entry is None or entry.watched is None:
            return
        self._leave(entry.watched, uid)
        entry.watched = None

    def _leave(self, watched: Watched, uid: str) -> None:
        sweep = self.parents.get(watched.parent)
        key = ref_key(watched.ref)
        if sweep is not None and sweep.members.get(key) == uid:
            del sweep.members[key]

    def _member(self, sweep: Parent, key: RefKey) -> Watched | None:
        """The watched object holding this resource, if it is still watched (forgotten ones go)."""
        uid = sweep.members.get(key)
        if uid is None:
            return None
        watched = self._watched(uid)
        if watched is None or ref_key(watched.ref) != key or watched.parent != sweep.key:
            del sweep.members[key]
            return None
        return watched

    # ----- the sweep of one parent

    async def _run(self, sweep: Parent) -> None:
        """List the parent every interval while anything under it is watched."""
        await self.sleep(min(FIRST_DELAY, self.interval / 4))
        while self._prune(sweep):
            started = self.clock()
            try:
                retry_in = await self._list(sweep)
            except Exception:  # a bug: the timers fall back to per-object observes when this is stale
                log.exception("sweep of %s failed", _describe(sweep.key))
                sweep.token = None
                retry_in = None
            if retry_in is not None:
                await self.sleep(retry_in)  # throttled: resume the same listing from its token
                continue
            await self.sleep(max(1.0, started + self.interval - self.clock()))
        if self.parents.get(sweep.key) is sweep and not sweep.members:
            del self.parents[sweep.key]

    def _prune(self, sweep: Parent) -> bool:
        """Drop members no longer watched; whether any are left."""
        for key in list(sweep.members):
            self._member(sweep, key)
        return bool(sweep.members)

    async def _list(self, sweep: Parent) -> float | None:
        """One complete listing (or the rest of one): wake what changed or went. Returns the seconds
        to wait before resuming a throttled listing, None when it ended (complete or failed)."""
        if sweep.token is None:
            sweep.began = self.clock()
            sweep.seen = set()
        parent = dict(sweep.key[2])
        while True:
            member = self._any(sweep)
            if member is None:
                return None
            asked = self.clock()
            try:
                page = await member.lister(parent, sweep.token)
            except RetryableError as error:
                if error.reason == c.THROTTLED:
                    return max(1.0, error.delay)
                if error.reason == c.DEPENDENCY_NOT_FOUND:
                    page = Page(())  # the parent is gone: so is everything under it
                else:
                    self._failed(sweep, error)
                    return None
            except ReconcileError as error:
                self._failed(sweep, error)
                return None
            for summary in page.summaries:
                await self._compare(sweep, summary.ref, summary.seen, asked)
            sweep.token = page.next_token
            if sweep.token is None:
                break
        for key in list(sweep.members):
            watched = self._member(sweep, key)
            if watched is not None and key not in sweep.seen and watched.since < sweep.began:
                await self._wake(watched, "not listed")
        sweep.completed = self.clock()
        if sweep.failing is not None:
            log.info("sweep of %s works again", _describe(sweep.key))
            sweep.failing = None
        return None

    def _any(self, sweep: Parent) -> Watched | None:
        for key in list(sweep.members):
            watched = self._member(sweep, key)
            if watched is not None:
                return watched
        return None

    def _failed(self, sweep: Parent, error: ReconcileError) -> None:
        sweep.token = None
        if sweep.failing != error.reason:
            log.warning(
                "sweep of %s failed (%s); its objects are observed one by one until it works: %s",
                _describe(sweep.key),
                error.reason,
                error.message,
            )
        sweep.failing = error.reason
        return None

    async def _compare(
        self, sweep: Parent, ref: Mapping[str, str], seen: Mapping[str, Any], asked: float
    ) -> None:
        key = ref_key(ref)
        watched = self._member(sweep, key)
        if watched is None:
            return  # not an object of ours, or not Ready: its own cycles look after it
        sweep.seen.add(key)
        if watched.since > asked:
            return  # noted after this page was asked for: its status is the newer of the two
        changed = differences(seen, watched.status)
        if changed:
            await self._wake(watched, ", ".join(changed) + " changed")

    async def _wake(self, watched: Watched, what: str) -> None:
        """Have the object's own cycle observe it now (once per finding)."""
        if watched.suspect is not None:
            return
        watched.suspect = what
        found = (watched.kind.kind, "gone" if what == "not listed" else "changed")
        self.found[found] = self.found.get(found, 0) + 1
        log.info(
            "sweep: %s %s/%s: %s; observing it", watched.kind.kind, watched.namespace, watched.name, what
        )
        if self.wake is not None:
            stamp = c.rfc3339(datetime.now(UTC))
            await self.wake(watched.kind, watched.namespace, watched.name, f"{stamp} {what}")


def _describe(key: ParentKey) -> str:
    kind, scope, parent = key
    where = " as ".join(s for s in scope[:2] if s) or "the default region"
    return f"{kind} {'/'.join(v for _, v in parent) or 'all'} in {where}"
