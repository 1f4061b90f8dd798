"""The bridge from kopf's edge-triggered handlers to one level-triggered `reconcile()`.

kopf calls a handler when something happened (created, updated, resumed, deleted, a timer fired);
the engine wants to be called with the object as it is and to say when to look again. This module
is the whole of that translation. Its contract:

- **One cycle at a time per object.** Every handler runs `run_cycle`, which holds the object's lock
  (memory.py) around its cycles: a timer and a handler never reconcile the same object at once.
- **A call may go on** (`goes_on`, `_cycles`): a cycle that only stored a step (the intent to create)
  or polls a build due within seconds is stored here at once (`_persist`) and followed by the next
  cycle in the same call, at most MAX_GO_ON times; the last cycle's Outcome goes to kopf. Every
  cycle is counted and its events posted once (`_report`), whoever stores its status.
- **A cycle sees every write of ours.** kopf may hand a handler or a timer a body older than any
  number of the status patches earlier cycles wrote (watch events are late when the event loop is
  busy; kopf's consistency wait gives up): the status as our patches left it is laid over every
  body (`object_view`). This process is the status's only writer, so a fresh body changes nothing.
- **No cycle twice on one version.** At startup kopf runs resume and then create/update on the same
  body; a change-cycle on a version that already converged (DONE) returns at once.
- **Back-off counts failures.** `ObjectView.retry` is the number of failed cycles in a row (Synced
  False), not kopf's retry count, which also counts a healthy create's requeues.
- **Outcome → kopf** (`verdict`): DONE and RELEASE return; STOP is kopf.PermanentError (the timer
  just waits for its next turn); REQUEUE is kopf.TemporaryError(delay). A requeue longer than
  PARK_SECONDS outside deletion *parks*: the handler ends (PermanentError) so a spec change is seen
  at once, and the drift timer retries at its interval and polls any build itself. The timer's own
  requeues are at least 1 s (its body may lag our patch) and at most the drift interval.
- **A spec change is never sat out** (`catch_up_on_spec_change`, on every watch event while the
  status lags the generation): a handler's pending requeue delay is dropped, and a spec reverted to
  the last one kopf handled — a change kopf cannot see — is made visible by recording an older
  handled state in kopf's own annotations, so kopf runs the update handler now.
- **List mode** (sweep.py): a drift check of an object its parent's List sweep watches calls nothing
  (counted as outcome `watched`); a resume of an object converged at its generation is not observed,
  its parent's first sweep looks at it; every cycle's end tells the watcher whether it is Ready.
- **Forgetting.** When the finalizer goes (RELEASE) or the object is gone (its DELETED event), all
  the process kept of it is forgotten, in `forget` and nowhere else: its memory, the resources it
  holds, its index entries, its place in its parent's List sweep, its count in the resources gauge.
- **The user's controls** (controls.py): a waiting handler is woken when a pause is set or lifted or
  a reconcile is asked for (`control_changed`, `wake`); a paused object never counts as lagging; the
  drift timer ticks often and runs a cycle only when the object's own interval is due (`drift_due`).

`run_cycle` reads in that order: the view (`_view`: the body under our writes), `_repair`, the
watcher's questions, the cycles (`_cycles`), what the next call needs (`_remember`), then kopf's part
(the status patch, `_report`, `forget` or the gauge, `verdict`).

Process state (process.py), the ConfigMap watch (configmaps.py), the metrics server (metrics.py)
and the registration of handlers (handlers.py) live elsewhere; nothing here is global.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any, cast

import kopf

from q_operator.engine import conditions, controls, metrics
from q_operator.engine.memory import ObjectMemory
from q_operator.engine.reconcile import Decision, Deps, ObjectView, Outcome, Trigger, reconcile
from q_operator.engine.sweep import drift_seconds
from q_operator.kinds.base import KindInfo

log = logging.getLogger("q_operator.engine")

#: kopf keeps its own bookkeeping (handler progress, last-handled spec) under this prefix. It is a
#: sub-domain on purpose: kopf ignores every annotation under its storage prefix when it looks for
#: changes, and `q-operator.dev/adopt-id` and `q-operator.dev/configmap-hash` must count as changes.
KOPF_PREFIX = "kopf.q-operator.dev"
#: kopf's record of each handler's progress (retries, requeue delay), kept in annotations.
PROGRESS = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
#: kopf's record of the last spec (and annotations) it handled: what it diffs each event against.
DIFFBASE = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
DELETE_HANDLER = kopf.HandlerId("delete")
UPDATE_HANDLER = kopf.HandlerId("update")
CREATE_HANDLER = kopf.HandlerId("create")

#: The outcome counted for a drift check a working List sweep made unnecessary (list mode).
WATCHED = "watched"
#: At most this many cycles follow the first in one handler call (`goes_on`): intent, create, two
#: looks at the build; then the outcome goes through kopf, so nothing can spin inside one call.
MAX_GO_ON = 3
#: A change handler waits here for a build's next look if it is at most this far off (`goes_on`)…
WAIT_HERE_SECONDS = 10.0
#: …and waits no longer than this in all, in one call.
WAIT_HERE_TOTAL = 15.0
#: Our status writes not in a body this long after the last one are taken as lost, and written again.
REPAIR_SECONDS = 30.0
#: Requeues longer than this, outside deletion, end the kopf handler (PermanentError) and are retried
#: by the drift timer instead: kopf would otherwise sit out the whole delay even if the spec changed.
PARK_SECONDS = 60.0


def drift_tick() -> float:
    """The drift timer's interval: it wakes each object this often, and checks when it is due."""
    return controls.drift_tick(drift_seconds())


def drift_interval(body: kopf.Body) -> controls.Interval:
    """This object's drift interval: its annotation (bounded), else the operator's."""
    return controls.drift_interval(body.get("metadata", {}).get("annotations") or {}, drift_seconds())


def drift_due(deps: Deps, body: kopf.Body) -> bool:
    """Whether the drift timer's tick should run a cycle of this object now (its interval passed)."""
    entry = deps.memory.peek(str(body.get("metadata", {}).get("uid", "")))
    last = entry.drift_checked if entry is not None else None
    return controls.drift_due(last, time.monotonic(), drift_interval(body).seconds, drift_tick())


async def run_cycle(
    deps: Deps,
    kind: KindInfo[Any, Any],
    trigger: Trigger,
    body: kopf.Body,
    patch: kopf.Patch,
    *,
    deleting: bool,
    resuming: bool = False,
) -> None:
    """Reconcile once and hand the Outcome to kopf (see the module's contract)."""
    meta = body.get("metadata", {})
    uid = str(meta.get("uid", ""))
    version = str(meta.get("resourceVersion", ""))
    started = time.monotonic()
    entry = deps.memory.of(uid)
    interval = drift_interval(body)
    if trigger is Trigger.DRIFT:
        entry.drift_checked = started  # the next check is due one interval from now
    _warn_of_drift_interval(body, entry, interval)
    waited = 0.0  # seconds this call waited for a build (not reconcile time)
    async with entry.lock:
        if trigger is Trigger.CHANGE and not deleting and version and _converged(entry, version):
            return  # this exact object version (or one our last call wrote) was reconciled to DONE
        obj = _view(body, entry, deleting)
        await _repair(deps, kind, obj, body, entry)
        if trigger is Trigger.DRIFT and deps.watcher.covers(kind, obj):
            # List mode: its parent's working sweep watches it (sweep.py), nothing to ask AWS. Counted,
            # so "reconciled at least once per drift interval" (the NotReconciling alert) still holds.
            metrics.RECONCILES.labels(kind.kind, WATCHED).inc()
            return
        if resuming and not deleting and deps.watcher.takes_over(kind, obj, deps):
            outcome = Outcome(Decision.DONE, message="converged; watched by its parent's sweep")
        else:
            obj, outcome, waited = await _cycles(deps, kind, trigger, body, entry, obj, deleting)
            deps.watcher.note(kind, obj, outcome, deps)  # Ready: watched by a sweep; else not
        _remember(entry, obj, outcome, version)
    metrics.RECONCILE_SECONDS.labels(kind.kind).observe(time.monotonic() - started - waited)
    for key, value in outcome.status.items():
        patch.status[key] = value
    _report(kind, body, outcome)
    if outcome.decision is Decision.RELEASE:
        forget(deps, uid)
    else:
        entry.counted = metrics.recount(entry.counted, _counted(kind, obj, outcome))
    if parks(outcome, trigger, obj.deleting):
        deps.builds.abandon(uid)  # the drift timer polls it from now on
    error = verdict(outcome, trigger, obj.deleting, interval.seconds)
    if error is not None:
        raise error


def _view(body: kopf.Body, entry: ObjectMemory, deleting: bool) -> ObjectView:
    """The object as this call's next cycle sees it: any handler may run on a body from before any
    number of our own patches (kopf stops waiting after its consistency timeout, and a busy API
    server can be slower), so it sees them all; the back-off counts failed cycles; and the delete
    handler's cycle is a deletion whatever its body shows."""
    obj = object_view(body, entry.failures, entry.wrote)
    return dataclasses.replace(obj, deleting=True) if deleting and not obj.deleting else obj


async def _cycles(
    deps: Deps,
    kind: KindInfo[Any, Any],
    trigger: Trigger,
    body: kopf.Body,
    entry: ObjectMemory,
    obj: ObjectView,
    deleting: bool,
) -> tuple[ObjectView, Outcome, float]:
    """Reconcile, and go on in this call while `goes_on` says so: each cycle but the last is stored
    here (`_persist`) and reported. Returns the last cycle's view and Outcome (for kopf), and the
    seconds waited for builds."""
    waited = 0.0
    outcome = await reconcile(kind, obj, deps, trigger)
    entry.own_versions = set()
    for _ in range(MAX_GO_ON):
        decided = time.monotonic()
        wait = goes_on(deps, outcome, obj, trigger, waited)
        if wait is None or not await _persist(deps, kind, obj, outcome, entry):
            break
        _report(kind, body, outcome)
        if wait > 0:
            # The look is due `wait` after the cycle decided it, not after our status write:
            # polls a second apart stay a second apart (a 5 s build is seen at 5 s, not 6).
            await deps.sleep(max(0.0, wait - (time.monotonic() - decided)))
            waited += wait
        obj = _view(body, entry, deleting)
        outcome = await reconcile(kind, obj, deps, trigger)
    return obj, outcome, waited


def _remember(entry: ObjectMemory, obj: ObjectView, outcome: Outcome, version: str) -> None:
    """What the next call needs of this one: the status it wrote, the version it converged at, and
    whether it failed (back-off counts failed cycles in a row; a pause is no failure)."""
    _wrote(entry, outcome.status)
    entry.converged_at = version if outcome.decision is Decision.DONE else None
    failed = (
        _synced(obj, outcome) == "False"
        and outcome.decision is not Decision.RELEASE
        and _synced_reason(obj, outcome) not in conditions.CONTROL_REASONS  # paused: no failure
    )
    entry.failures = entry.failures + 1 if failed else 0


def _report(kind: KindInfo[Any, Any], body: kopf.Body, outcome: Outcome) -> None:
    """Count a cycle's outcome and post its events (once per cycle, stored here or by kopf)."""
    metrics.RECONCILES.labels(kind.kind, outcome.decision.value).inc()
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])


def _wrote(entry: ObjectMemory, status: Mapping[str, Any]) -> None:
    if status:
        entry.wrote = merge_patch(entry.wrote, status, keep_removals=True)
        entry.wrote_at = time.monotonic()
        entry.wrote_stored = False


async def _repair(
    deps: Deps, kind: KindInfo[Any, Any], obj: ObjectView, body: Mapping[str, Any], entry: ObjectMemory
) -> None:
    """A body that still lacks our own status writes REPAIR_SECONDS after the last of them was not
    just late: the write was lost (kopf gives up patching an API server that stays away). Write it
    again, so the stored status says what the operator knows (a watched object runs no cycle that
    would write it otherwise)."""
    if entry.wrote_stored or deps.write_status is None or not entry.wrote:
        return
    stored = dict(body.get("status") or {})
    if merge_patch(stored, entry.wrote) == stored:
        entry.wrote_stored = True  # checked once per change of `wrote`, not at every drift tick
        return
    if time.monotonic() - entry.wrote_at < REPAIR_SECONDS:
        return
    try:
        await deps.write_status(kind, obj.namespace, obj.name, entry.wrote)
    except Exception as error:  # tried again at the next cycle or drift tick
        log.info("status of %s %s/%s not written again yet: %s", kind.kind, obj.namespace, obj.name, error)
        return
    entry.wrote_at = time.monotonic()
    log.info(
        "status of %s %s/%s written again: an earlier write was lost", kind.kind, obj.namespace, obj.name
    )


def _converged(entry: ObjectMemory, version: str) -> bool:
    """The body's version was reconciled to DONE, or is one our own writes made during the call that
    did (only the status differs from the body that call converged on)."""
    if entry.converged_at is None:
        return False
    return entry.converged_at == version or version in entry.own_versions


def goes_on(deps: Deps, outcome: Outcome, obj: ObjectView, trigger: Trigger, waited: float) -> float | None:
    """Whether this handler call goes on with another cycle after storing this one's status itself,
    and after how many seconds; None: the cycle's outcome goes to kopf.

    A kopf round trip costs a patch of its progress annotations, one of the status, their watch
    events, another handler call — and, after a delay, a patch to wake itself and its event: the bulk
    of the operator's work per object. So a cycle that only stored a step (the intent to create,
    which is stored before any create call) goes on at once, and a change handler polling a build
    this process started waits here for the next look when it is near (`WAIT_HERE_SECONDS`, at most
    `WAIT_HERE_TOTAL` per call: a spec change, a pause or a deletion waits no longer than that)."""
    if outcome.decision is not Decision.REQUEUE or obj.deleting:
        return None
    if outcome.delay <= 0.0:
        return 0.0
    if (
        trigger is Trigger.CHANGE
        and outcome.delay <= WAIT_HERE_SECONDS
        and waited + outcome.delay <= WAIT_HERE_TOTAL
        and deps.builds.polling(obj.uid, deps.now().timestamp())
    ):
        return outcome.delay
    return None


async def _persist(
    deps: Deps, kind: KindInfo[Any, Any], obj: ObjectView, outcome: Outcome, entry: ObjectMemory
) -> bool:
    """Store the cycle's status now; True once the API server has it (the next cycle may act on it:
    a create is sent only after its intent is stored). False: kopf writes it, as for any cycle."""
    if deps.write_status is None:
        return False
    if outcome.status:
        try:
            written = await deps.write_status(kind, obj.namespace, obj.name, outcome.status)
        except Exception as error:  # kopf writes it with the handler's outcome instead
            log.info("status of %s %s/%s left to kopf: %s", kind.kind, obj.namespace, obj.name, error)
            return False
        if written:
            entry.own_versions.add(written)
    _wrote(entry, outcome.status)
    return True


def _warn_of_drift_interval(body: kopf.Body, entry: ObjectMemory, interval: controls.Interval) -> None:
    """One Warning event per unusable drift-interval annotation value (not one per cycle)."""
    raw = (body.get("metadata", {}).get("annotations") or {}).get(controls.DRIFT_INTERVAL_ANNOTATION)
    if interval.problem is None:
        entry.drift_warned = None
    elif entry.drift_warned != raw:
        entry.drift_warned = raw
        kopf.event(body, type="Warning", reason=conditions.EV_INVALID_ANNOTATION, message=interval.problem)


def forget(deps: Deps, uid: str) -> None:
    """The object is gone (or its finalizer is): drop all this process kept about it. The one place
    an object is forgotten (memory.py says what that covers)."""
    gone = deps.memory.forget(uid)  # its entry, the resources it holds, its index entries
    if gone is not None:
        deps.watcher.forget(uid, gone.watched)  # its place in its parent's List sweep
        metrics.recount(gone.counted, None)  # its count in the resources gauge


def object_view(body: Mapping[str, Any], retry: int, wrote: Mapping[str, Any] | None) -> ObjectView:
    """The object as a cycle sees it: the body, with the status our own patches left laid over it
    (`ObjectMemory.wrote`; an older body does not show them yet, a fresh one already does)."""
    meta = body.get("metadata", {})
    status = merge_patch(copy.deepcopy(dict(body.get("status") or {})), wrote or {})
    return ObjectView(
        uid=str(meta.get("uid", "")),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        generation=int(meta.get("generation") or 1),
        spec=copy.deepcopy(dict(body.get("spec") or {})),
        status=status,
        annotations=dict(meta.get("annotations") or {}),
        deleting=bool(meta.get("deletionTimestamp")),
        retry=retry,
    )


def merge_patch(
    target: Mapping[str, Any], patch: Mapping[str, Any], *, keep_removals: bool = False
) -> dict[str, Any]:
    """`patch` applied to `target` as the API server applies a JSON merge patch (RFC 7386: maps
    merge, None removes, anything else replaces). `keep_removals` keeps the None entries, so that
    patches merged together still remove what they removed when laid over a body."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            if keep_removals:
                merged[key] = None
            else:
                merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_patch(merged[key], value, keep_removals=keep_removals)
        else:
            merged[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return merged


def _conditions(obj: ObjectView, outcome: Outcome) -> dict[str, str]:
    """Condition type → status, after this cycle's patch."""
    conditions = outcome.status.get("conditions", obj.status.get("conditions")) or []
    return {str(c.get("type")): str(c.get("status", "Unknown")) for c in conditions}


def _synced(obj: ObjectView, outcome: Outcome) -> str:
    return _conditions(obj, outcome).get("Synced", "Unknown")


def _synced_reason(obj: ObjectView, outcome: Outcome) -> str:
    conditions_ = outcome.status.get("conditions", obj.status.get("conditions")) or []
    found = conditions.find_condition(conditions_, conditions.SYNCED)
    return str(found.get("reason", "")) if found else ""


def _counted(kind: KindInfo[Any, Any], obj: ObjectView, outcome: Outcome) -> metrics.Counted:
    return metrics.counted(kind.kind, outcome.status.get("conditions", obj.status.get("conditions")) or [])


def parks(outcome: Outcome, trigger: Trigger, deleting: bool) -> bool:
    """A slow retry (permissions, quotas) of a change handler: it ends, the drift timer takes over."""
    return (
        outcome.decision is Decision.REQUEUE
        and trigger is Trigger.CHANGE
        and outcome.delay > PARK_SECONDS
        and not deleting
    )


def verdict(
    outcome: Outcome, trigger: Trigger, deleting: bool, interval: float | None = None
) -> Exception | None:
    """Outcome → kopf: None (done, release), TemporaryError (requeue), PermanentError (stop, park).
    `interval`: the object's drift interval (default: the operator's), the longest timer requeue."""
    if outcome.decision in (Decision.RELEASE, Decision.DONE):
        return None
    if outcome.decision is Decision.STOP:
        if trigger is Trigger.DRIFT:
            return None  # the timer simply waits for its next turn
        return kopf.PermanentError(outcome.message or "waiting for the spec to change")
    delay = outcome.delay
    if trigger is Trigger.DRIFT:
        # The timer's body is live but may lag our own patch by a watch event: never spin at 0 s.
        # Slow retries (access denied, quotas: 300 s) happen at the drift interval, as documented.
        longest = interval if interval is not None else drift_seconds()
        return kopf.TemporaryError(outcome.message or "requeue", delay=min(max(delay, 1.0), longest))
    if parks(outcome, trigger, deleting):
        # End this handler so a spec change is seen at once; the drift timer tries again at its
        # interval — and polls any build itself from now on.
        return kopf.PermanentError(f"{outcome.message} (retrying at the next drift check)")
    return kopf.TemporaryError(outcome.message or "requeue", delay=delay)


def lagging(body: kopf.Body, **_: Any) -> bool:
    """Whether the spec changed since the last cycle wrote status (every cycle records
    observedGeneration): only then can kopf have left a change unhandled."""
    if controls.is_paused(body.get("metadata", {}).get("annotations") or {}):
        return False  # a paused object does not act on its spec: nothing to catch up on (no loop)
    observed = (body.get("status") or {}).get("observedGeneration")
    generation = body.get("metadata", {}).get("generation")
    return isinstance(observed, int) and isinstance(generation, int) and observed < generation


def control_changed(body: kopf.Body, **_: Any) -> bool:
    """A pause set or lifted, or a reconcile asked for, that no cycle has acted on yet."""
    annotations = body.get("metadata", {}).get("annotations") or {}
    return controls.wants_wake(annotations, body.get("status") or {})


def wake(body: kopf.Body, patch: kopf.Patch) -> None:
    """Run the object's waiting handlers now (a pause lifted, a reconcile asked for): kopf would sit
    out their requeue delay. The change itself (an annotation) makes kopf run the update handler."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        _wake(DELETE_HANDLER, body, patch)
        return
    _wake(CREATE_HANDLER, body, patch)
    _wake(UPDATE_HANDLER, body, patch)


def catch_up_on_spec_change(body: kopf.Body, patch: kopf.Patch) -> None:
    """Make kopf reconcile a spec change it would otherwise sit out.

    kopf keeps a handler's requeue delay even when the object changes meanwhile, and sees no change
    at all when the spec returns to the last one it handled. So setting `forceDelete` on a connector
    whose deletion waits a minute because it is in use would wait that minute, a fix to a bad change
    (a broken Lambda) would wait out the back-off, and reverting the bad change would leave the
    failure on the object until the drift timer. Called only while the status lags the generation
    (`lagging`): the waiting handler's delay is dropped, and a change kopf cannot see is made
    visible by recording an older handled state, so kopf runs the update handler now, on the current
    spec. Restart-safe: it reads only the body.
    """
    handled = DIFFBASE.fetch(body=body)
    current = DIFFBASE.build(body=body)
    if body.get("metadata", {}).get("deletionTimestamp"):
        # The API server bumps the generation when it sets deletionTimestamp; that alone is no spec
        # change (waking on it repeated a refused delete at once on the real kube-apiserver).
        if handled is None or handled.get("spec") != current.get("spec"):
            _wake(DELETE_HANDLER, body, patch)
        return
    _wake(CREATE_HANDLER, body, patch)  # a create backing off: run it on the new spec now
    _wake(UPDATE_HANDLER, body, patch)
    if handled is None:
        return  # never handled: kopf runs the create handler
    if PROGRESS.clear(essence=handled) != PROGRESS.clear(essence=current):
        return  # kopf sees the change and runs the update handler itself
    stale = cast(kopf.BodyEssence, {key: value for key, value in current.items() if key != "spec"})
    DIFFBASE.store(body=body, patch=patch, essence=stale)
    _wake(UPDATE_HANDLER, body, patch)


def _wake(handler: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
    """Drop a handler's pending requeue delay, so kopf runs it at once."""
    record = PROGRESS.fetch(key=handler, body=body)
    if record is not None and record.get("delayed") and not (record.get("success") or record.get("failure")):
        PROGRESS.purge(key=handler, body=body, patch=patch)
