"""The kopf edge: thin shims from kopf's handlers into the one `reconcile()`, for every registered kind.

This module and runner.py are the only ones that import kopf. Each kind gets create, update, resume
and delete handlers plus a drift timer; all five call `reconcile()` under a per-object lock (a timer
and a handler never reconcile the same object at once) and map its Outcome onto kopf: the status
patch goes into kopf's patch (applied even when the handler raises), events are posted with
kopf.event, a requeue becomes kopf.TemporaryError(delay=N), a stop becomes kopf.PermanentError.

A ConfigMap a spec refers to (`...From.configMapKeyRef`) is watched: when its data changes, the
objects that refer to it get the annotation `q-operator.dev/configmap-hash` bumped, which kopf sees
as a change and reconciles, so the new value reaches AWS.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from q_operator import registry
from q_operator.engine import metrics
from q_operator.engine.aws import AwsSession, default_region, env_float
from q_operator.engine.reconcile import (
    Decision,
    Deps,
    ObjectView,
    Outcome,
    Timing,
    Trigger,
    config_map_names,
    reconcile,
)
from q_operator.kinds.base import KindInfo

FINALIZER = "q-operator.dev/finalizer"
#: kopf keeps its own bookkeeping (handler progress, last-handled spec) under this prefix. It is a
#: sub-domain on purpose: kopf ignores every annotation under its storage prefix when it looks for
#: changes, and `q-operator.dev/adopt-id` and `q-operator.dev/configmap-hash` must count as changes.
KOPF_PREFIX = "kopf.q-operator.dev"
CONFIGMAP_HASH = "q-operator.dev/configmap-hash"
#: kopf's record of each handler's progress (retries, requeue delay), kept in annotations.
PROGRESS = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
DELETE_HANDLER = kopf.HandlerId("delete")
UPDATE_HANDLER = kopf.HandlerId("update")
CREATE_HANDLER = kopf.HandlerId("create")
#: kopf's record of the last spec (and annotations) it handled: what it diffs each event against.
DIFFBASE = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)

log = logging.getLogger("q_operator.engine")


def drift_seconds() -> float:
    return max(10.0, env_float("Q_OPERATOR_DRIFT_SECONDS", 300.0))


#: Requeues longer than this, outside deletion, end the kopf handler (PermanentError) and are retried
#: by the drift timer instead: kopf would otherwise sit out the whole delay even if the spec changed.
PARK_SECONDS = 60.0


@dataclass
class _State:
    """Process-wide engine state, built at operator startup."""

    deps: Deps
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    #: per object: (resourceVersion the last cycle saw, the status patch it wrote) — lets a timer whose
    #: body is older than our own last patch see that patch (the watch event may not have arrived yet).
    written: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    configmap_digests: dict[tuple[str, str], str] = field(default_factory=dict)
    #: per object: the resourceVersion at which the last cycle converged (DONE). kopf runs resume and
    #: create/update one after another on the same body at startup; the second has nothing to add.
    converged_at: dict[str, str] = field(default_factory=dict)
    #: per object: failed cycles in a row, the back-off attempt. Not kopf's retry count, which also
    #: counts the requeues of a healthy create (the intent, build polls) and would inflate back-off.
    failures: dict[str, int] = field(default_factory=dict)

    def lock(self, uid: str) -> asyncio.Lock:
        found = self.locks.get(uid)
        if found is None:
            found = self.locks[uid] = asyncio.Lock()
        return found


_state: _State | None = None


def _kube_api() -> Any:
    """The `kubernetes` client, configured in-cluster or from KUBECONFIG."""
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client


_kube: Any = None


def _client() -> Any:
    global _kube
    if _kube is None:
        _kube = _kube_api()
    return _kube


async def read_configmap(namespace: str, name: str) -> Mapping[str, str] | None:
    def read() -> Mapping[str, str] | None:
        client = _client()
        try:
            found = client.CoreV1Api().read_namespaced_config_map(name, namespace)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found.data or {})

    return await asyncio.to_thread(read)


def build_state() -> _State:
    timing = Timing(
        poll_min=env_float("Q_OPERATOR_POLL_MIN_SECONDS", 1.0),
        poll_max=env_float("Q_OPERATOR_POLL_MAX_SECONDS", 15.0),
        poll_factor=env_float("Q_OPERATOR_POLL_FACTOR", 0.5),
    )
    return _State(Deps(AwsSession(), read_configmap, timing=timing, default_region=default_region()))


def state() -> _State:
    global _state
    if _state is None:
        _state = build_state()
    return _state


def _merge(status: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(status)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def object_view(
    body: Mapping[str, Any], retry: int, written: tuple[str, Mapping[str, Any]] | None
) -> ObjectView:
    meta = body.get("metadata", {})
    status = copy.deepcopy(dict(body.get("status") or {}))
    if written is not None and written[0] == str(meta.get("resourceVersion", "")):
        status = _merge(status, written[1])  # our last patch is not in this (older) body yet
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


async def run_cycle(
    kind: KindInfo[Any, Any],
    trigger: Trigger,
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    *,
    deleting: bool,
) -> None:
    """Reconcile once and hand the Outcome to kopf. `retry` is kopf's count of this handler's
    requeues; back-off counts failed cycles instead (_State.failures)."""
    st = state()
    uid = str(body.get("metadata", {}).get("uid", ""))
    started = time.monotonic()
    version = str(body.get("metadata", {}).get("resourceVersion", ""))
    async with st.lock(uid):
        if trigger is Trigger.CHANGE and not deleting and version and st.converged_at.get(uid) == version:
            return  # this exact object version was just reconciled to DONE
        attempt = st.failures.get(uid, 0)
        # Any handler may run on a body from before our own last patch (kopf stops waiting for it after
        # its consistency timeout, and a busy API server can be slower): it sees that patch.
        obj = object_view(body, attempt, st.written.get(uid))
        if deleting and not obj.deleting:
            obj = dataclasses.replace(obj, deleting=True)
        outcome = await reconcile(kind, obj, st.deps, trigger)
        if outcome.status:
            earlier = st.written.get(uid)
            if earlier is not None and earlier[0] == version:  # a second cycle on the same stale body
                st.written[uid] = (version, {**earlier[1], **outcome.status})
            else:
                st.written[uid] = (version, outcome.status)
        if outcome.decision is Decision.DONE:
            st.converged_at[uid] = version
        else:
            st.converged_at.pop(uid, None)
        if _synced(obj, outcome) == "False" and outcome.decision is not Decision.RELEASE:
            st.failures[uid] = attempt + 1
        else:
            st.failures.pop(uid, None)
    metrics.RECONCILE_SECONDS.labels(kind.kind).observe(time.monotonic() - started)
    metrics.RECONCILES.labels(kind.kind, outcome.decision.value).inc()
    for key, value in outcome.status.items():
        patch.status[key] = value
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
    _track(kind, uid, obj, outcome)
    _decide(outcome, trigger, obj.deleting, uid)


def _synced(obj: ObjectView, outcome: Outcome) -> str:
    """The Synced status after this cycle's patch."""
    conditions = outcome.status.get("conditions", obj.status.get("conditions")) or []
    return next((str(c.get("status")) for c in conditions if c.get("type") == "Synced"), "Unknown")


def _track(kind: KindInfo[Any, Any], uid: str, obj: ObjectView, outcome: Outcome) -> None:
    if outcome.decision is Decision.RELEASE:
        metrics.TRACKER.forget(uid)
        return
    conditions = outcome.status.get("conditions", obj.status.get("conditions")) or []
    found = {c.get("type"): str(c.get("status", "Unknown")) for c in conditions}
    metrics.TRACKER.observe(uid, kind.kind, found.get("Ready", "Unknown"), found.get("Synced", "Unknown"))


def _decide(outcome: Outcome, trigger: Trigger, deleting: bool, uid: str) -> None:
    """Outcome → kopf: return (done, release), TemporaryError (requeue), PermanentError (stop)."""
    st = state()
    if outcome.decision is Decision.RELEASE:
        st.locks.pop(uid, None)
        st.written.pop(uid, None)
        st.converged_at.pop(uid, None)
        return
    if outcome.decision is Decision.DONE:
        return
    if outcome.decision is Decision.STOP:
        if trigger is Trigger.DRIFT:
            return  # the timer simply waits for its next turn
        raise kopf.PermanentError(outcome.message or "waiting for the spec to change")
    delay = outcome.delay
    if trigger is Trigger.DRIFT:
        # The timer's body is live but may lag our own patch by a watch event: never spin at 0 s.
        # Slow retries (access denied, quotas: 300 s) happen at the drift interval, as documented.
        raise kopf.TemporaryError(outcome.message or "requeue", delay=min(max(delay, 1.0), drift_seconds()))
    if delay > PARK_SECONDS and not deleting:
        # A slow retry (permissions, quotas): end this handler so a spec change is seen at once;
        # the drift timer tries again at its interval — and polls any build itself from now on.
        st.deps.builds.forget(uid)
        raise kopf.PermanentError(f"{outcome.message} (retrying at the next drift check)")
    raise kopf.TemporaryError(outcome.message or "requeue", delay=delay)


def _initial_delay(**kwargs: Any) -> float:
    """Spread the first drift check of each object over the second half of the interval."""
    uid = str(kwargs.get("uid") or kwargs.get("body", {}).get("metadata", {}).get("uid", ""))
    spread = (zlib.crc32(uid.encode()) % 1000) / 1000.0
    return drift_seconds() * (0.5 + spread / 2)


def register(kind: KindInfo[Any, Any]) -> None:
    """Register the five shims of one kind, and its ConfigMap-reference index."""
    gvp = (kind.group, kind.version, kind.plural)
    interval = drift_seconds()

    @kopf.on.create(*gvp, id=CREATE_HANDLER)
    async def on_create(*, body: kopf.Body, patch: kopf.Patch, retry: int = 0, **_: Any) -> None:
        await run_cycle(kind, Trigger.CHANGE, body, patch, retry, deleting=False)

    @kopf.on.update(*gvp, id=UPDATE_HANDLER)
    async def on_update(*, body: kopf.Body, patch: kopf.Patch, retry: int = 0, **_: Any) -> None:
        await run_cycle(kind, Trigger.CHANGE, body, patch, retry, deleting=False)

    @kopf.on.resume(*gvp, id="resume")
    async def on_resume(*, body: kopf.Body, patch: kopf.Patch, retry: int = 0, **_: Any) -> None:
        await run_cycle(kind, Trigger.CHANGE, body, patch, retry, deleting=False)

    @kopf.on.delete(*gvp, id=DELETE_HANDLER)
    async def on_delete(*, body: kopf.Body, patch: kopf.Patch, retry: int = 0, **_: Any) -> None:
        await run_cycle(kind, Trigger.CHANGE, body, patch, retry, deleting=True)

    @kopf.on.event(*gvp, id="catch-up", when=_lagging)
    async def on_event(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        catch_up_on_spec_change(body, patch)

    @kopf.timer(*gvp, id="drift", interval=interval, idle=min(interval, 60.0), initial_delay=_initial_delay)
    async def on_drift(*, body: kopf.Body, patch: kopf.Patch, retry: int = 0, **_: Any) -> None:
        await run_cycle(kind, Trigger.DRIFT, body, patch, retry, deleting=False)

    @kopf.index(*gvp, id=_index_name(kind))
    def configmap_refs(
        *, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], str]:
        return {(namespace or "", cm): name for cm in config_map_names(dict(spec))}


def _lagging(body: kopf.Body, **_: Any) -> bool:
    """Whether the spec changed since the last cycle wrote status (every cycle records
    observedGeneration): only then can kopf have left a change unhandled."""
    observed = (body.get("status") or {}).get("observedGeneration")
    generation = body.get("metadata", {}).get("generation")
    return isinstance(observed, int) and isinstance(generation, int) and observed < generation


def catch_up_on_spec_change(body: kopf.Body, patch: kopf.Patch) -> None:
    """Make kopf reconcile a spec change it would otherwise sit out.

    kopf keeps a handler's requeue delay even when the object changes meanwhile, and sees no change
    at all when the spec returns to the last one it handled. So setting `forceDelete` on a connector
    whose deletion waits a minute because it is in use would wait that minute, a fix to a bad change
    (a broken Lambda) would wait out the back-off, and reverting the bad change would leave the
    failure on the object until the drift timer. Called only while the status lags the generation
    (`_lagging`): the waiting handler's delay is dropped, and a change kopf cannot see is made
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


def _index_name(kind: KindInfo[Any, Any]) -> str:
    return "configmap_refs_" + "".join(ch if ch.isalnum() else "_" for ch in kind.plural)


def _digest(data: Mapping[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(dict(data or {}), sort_keys=True).encode()).hexdigest()[:16]


async def _bump(kind: KindInfo[Any, Any], namespace: str, name: str, digest: str) -> None:
    def patch() -> None:
        client = _client()
        client.CustomObjectsApi().patch_namespaced_custom_object(
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            {"metadata": {"annotations": {CONFIGMAP_HASH: digest}}},
            _content_type="application/merge-patch+json",
        )

    try:
        await asyncio.to_thread(patch)
    except Exception as error:  # the drift timer still catches the change later
        log.warning("could not mark %s %s/%s for the ConfigMap change: %s", kind.kind, namespace, name, error)


@kopf.on.event("", "v1", "configmaps", id="configmap-changes")
async def on_configmap(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    """Reconcile the objects that refer to a ConfigMap whose data changed (or that appeared or went)."""
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    kind_of_event = event.get("type")
    digest = "deleted" if kind_of_event == "DELETED" else _digest(body.get("data"))
    st = state()
    previous = st.configmap_digests.get(key)
    st.configmap_digests[key] = digest
    if previous == digest:
        return  # no change in data
    if previous is None and kind_of_event is None:
        return  # first sight in the initial listing: resume reconciles everything anyway
    # (kopf re-lists when a watch is re-established: a change made in between arrives as a listing)
    for kind in registry.KINDS:
        index = kwargs.get(_index_name(kind))
        if index is None or key not in index:
            continue
        for name in set(index[key]):
            await _bump(kind, key[0], str(name), digest)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf settings for this operator: its own storage, its own events, watches that reconnect."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = PROGRESS
    settings.persistence.diffbase_storage = DIFFBASE
    # Only our explicit events (transitions) are posted, never log lines.
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.reporting_component = "q-operator"
    settings.posting.event_name_prefix = "q-operator-"
    # Watches end on the server side and are re-established, so a silently dead one cannot last.
    # Whole seconds: kube-apiserver parses timeoutSeconds as an integer ("120.0" is a 400 Bad Request).
    settings.watching.server_timeout = max(1, round(env_float("Q_OPERATOR_WATCH_SERVER_TIMEOUT", 120)))
    settings.watching.client_timeout = env_float("Q_OPERATOR_WATCH_CLIENT_TIMEOUT", 150)
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    # No limit by default: kopf's initial indexing deadlocks when there are more objects of a kind
    # than workers (nolar/kopf#1243) — a restart over 1,000 objects with a limit of 200 never resumed.
    # AWS load is bounded by the limiter and the thread pool, not by this.
    workers = int(env_float("Q_OPERATOR_WORKERS", 0))
    settings.queueing.worker_limit = workers if workers > 0 else None
    settings.execution.max_workers = 4
    # With several replicas, a standby takes over this long after the active one stopped renewing.
    settings.peering.lifetime = int(env_float("Q_OPERATOR_PEERING_LIFETIME", 60))
    state()
    from q_operator.engine.metrics import serve

    serve(int(env_float("Q_OPERATOR_METRICS_PORT", 8080)))
    log.info(
        "q-operator engine: kinds=%s drift=%ss aws_rate=%s/s concurrency=%s region=%s",
        ",".join(k.kind for k in registry.KINDS) or "none",
        drift_seconds(),
        os.environ.get("Q_OPERATOR_AWS_RATE", "10"),
        os.environ.get("Q_OPERATOR_AWS_CONCURRENCY", "64"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "unset",
    )


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _state is not None:
        aws = _state.deps.aws
        if isinstance(aws, AwsSession):
            aws.close()


for _kind in registry.KINDS:
    register(_kind)
