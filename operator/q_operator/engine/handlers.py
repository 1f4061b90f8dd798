"""The kopf edge: registers, for every kind in the registry, the handlers that feed the one
`reconcile()` through the bridge (bridge.py), and the operator's kopf settings.

This module, bridge.py, configmaps.py, namespaces.py and runner.py are the only ones that import
kopf (.importlinter holds them to it). Each kind
gets create, update, resume and delete handlers and a drift timer, all one line into
`bridge.run_cycle`; a watch-event handler that catches up on spec changes kopf would sit out; one
that wakes waiting handlers when the user's controls change (pause lifted, reconcile asked for); one
that forgets an object once it is gone (bridge.forget: everything the process kept of it); and one
that keeps its entries in the indexes of the ConfigMaps it refers to (configmaps.py watches them) and
of the namespace it lives in (`index`). namespaces.py adds the Namespace watch (each namespace's AWS
identity).

The drift timer ticks every `bridge.drift_tick()` seconds and runs a cycle only when the object's own
drift interval (controls.py: the operator's, or the object's annotation) is due; its retries (a build
it polls, a requeue) always run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from collections.abc import Mapping
from typing import Any

import kopf

from q_operator import registry
from q_operator.engine import (
    bridge,
    configmaps,
    metrics,
    namespaces,  # registers the Namespace watch
    process,
    sweep,
)
from q_operator.engine.aws import AwsSession, env_float
from q_operator.engine.bridge import (
    CREATE_HANDLER,
    DELETE_HANDLER,
    DIFFBASE,
    PROGRESS,
    UPDATE_HANDLER,
    drift_interval,
    drift_tick,
)
from q_operator.engine.memory import Memory
from q_operator.engine.reconcile import Trigger
from q_operator.engine.sweep import drift_seconds
from q_operator.kinds.base import KindInfo

FINALIZER = "q-operator.dev/finalizer"
#: kopf's idle timeout of an object's worker when Q_OPERATOR_WORKERS limits them (kopf's default: 5 s).
WORKER_IDLE_SECONDS = 0.5

log = logging.getLogger("q_operator.engine")


def _initial_delay(**kwargs: Any) -> float:
    """Spread the first drift check of each object over the second half of its interval."""
    body = kwargs.get("body", {})
    uid = str(kwargs.get("uid") or body.get("metadata", {}).get("uid", ""))
    spread = (zlib.crc32(uid.encode()) % 1000) / 1000.0
    return drift_interval(body).seconds * (0.5 + spread / 2)


async def _wake(kind: KindInfo[Any, Any], namespace: str, name: str, found: str) -> None:
    """A sweep saw this object's resource change or go (sweep.py): set the annotation that says so;
    kopf sees a change and the update handler observes and corrects it now (if that fails, the
    drift timer observes it instead: a woken object is not skipped)."""
    await process.mark(kind, namespace, name, sweep.WAKE_ANNOTATION, found, f"({found})")


def _gone(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


def _present(type: str | None, **_: Any) -> bool:
    return type != "DELETED"


def index(
    memory: Memory,
    kind: KindInfo[Any, Any],
    uid: str,
    namespace: str | None,
    name: str,
    spec: Mapping[str, Any],
) -> None:
    """Keep the object's entries in our own indexes (memory.Index says why not kopf's): which
    ConfigMaps it refers to, and which namespace it lives in. Its DELETED event forgets them with the
    rest of the object (bridge.forget)."""
    memory.index(configmaps.index_name(kind)).replace(uid, configmaps.references(namespace, name, spec))
    memory.index(namespaces.index_name(kind)).replace(uid, {namespace or "": name})


def register(kind: KindInfo[Any, Any]) -> None:
    """Register the handlers of one kind, and its ConfigMap-reference index."""
    gvp = (kind.group, kind.version, kind.plural)
    idle = min(drift_seconds(), 60.0)

    @kopf.on.create(*gvp, id=CREATE_HANDLER)
    async def on_create(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await bridge.run_cycle(process.state().deps, kind, Trigger.CHANGE, body, patch, deleting=False)

    @kopf.on.update(*gvp, id=UPDATE_HANDLER)
    async def on_update(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await bridge.run_cycle(process.state().deps, kind, Trigger.CHANGE, body, patch, deleting=False)

    @kopf.on.resume(*gvp, id="resume")
    async def on_resume(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await bridge.run_cycle(
            process.state().deps, kind, Trigger.CHANGE, body, patch, deleting=False, resuming=True
        )

    @kopf.on.delete(*gvp, id=DELETE_HANDLER)
    async def on_delete(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await bridge.run_cycle(process.state().deps, kind, Trigger.CHANGE, body, patch, deleting=True)

    @kopf.timer(*gvp, id="drift", interval=drift_tick(), idle=idle, initial_delay=_initial_delay)
    async def on_drift(*, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        deps = process.state().deps
        if kwargs.get("retry", 0) == 0 and not bridge.drift_due(deps, body):
            return  # a tick, not yet this object's turn (its retries always run)
        await bridge.run_cycle(deps, kind, Trigger.DRIFT, body, patch, deleting=False)

    @kopf.on.event(*gvp, id="catch-up", when=bridge.lagging)
    async def on_event(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        bridge.catch_up_on_spec_change(body, patch)

    @kopf.on.event(*gvp, id="controls", when=bridge.control_changed)
    async def on_control(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        bridge.wake(body, patch)

    @kopf.on.event(*gvp, id="forget", when=_gone)
    async def on_gone(*, uid: str | None, **_: Any) -> None:
        bridge.forget(process.state().deps, str(uid or ""))  # its index entries too

    @kopf.on.event(*gvp, id="index", when=_present)
    async def on_index(
        *, uid: str | None, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> None:
        index(process.state().deps.memory, kind, str(uid or ""), namespace, name, spec)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf settings for this operator: its own storage, its own events, watches that reconnect."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = PROGRESS
    settings.persistence.diffbase_storage = DIFFBASE
    # After its own patch kopf waits this long for that patch's watch event before it handles an older
    # body (kopf's default: 5 s). Under load the event comes later, and an older body — one of the
    # status writes a handler call made itself (bridge.goes_on) — looked like an unhandled object:
    # at 2,000 objects every create handler ran 2.8 times. Events normally come in milliseconds.
    settings.persistence.consistency_timeout = 30
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
    # No limit by default: AWS load is bounded by the limiter and the thread pool, not by this. With
    # kopf's own indexes a limit below the number of objects of a kind deadlocked startup
    # (nolar/kopf#1243); ours (memory.Index) do not (tests/e2e/test_worker_limit.py). kopf keeps an
    # object's worker, and its slot, for `idle_timeout` after the object's last event: under a limit
    # that idling caps throughput (two slots at 5 s each: one object every 2.5 s), so it is short.
    workers = int(env_float("Q_OPERATOR_WORKERS", 0))
    settings.queueing.worker_limit = workers if workers > 0 else None
    if workers > 0:
        settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.execution.max_workers = 4
    # With several replicas, a standby takes over this long after the active one stopped renewing.
    settings.peering.lifetime = int(env_float("Q_OPERATOR_PEERING_LIFETIME", 60))
    watcher = process.state().deps.watcher
    if isinstance(watcher, sweep.Sweeper):
        watcher.wake = _wake
    metrics.serve(int(env_float("Q_OPERATOR_METRICS_PORT", 8080)))
    policy = process.state().deps.identities.policy
    session = process.state().deps.aws
    if isinstance(session, AwsSession):  # the first objects' first calls need not load botocore's models
        await asyncio.to_thread(session.warm, sorted({kind.service for kind in registry.KINDS}))
    log.info(
        "q-operator engine: kinds=%s drift=%ss observe=%s aws_rate=%s/s concurrency=%s region=%s "
        "require_namespace_role=%s adoption_everywhere=%s",
        ",".join(k.kind for k in registry.KINDS) or "none",
        drift_seconds(),
        sweep.observe_mode(),
        session.limiter.start_rate if isinstance(session, AwsSession) else "?",
        session.concurrency if isinstance(session, AwsSession) else "?",
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "unset",
        policy.require_role,
        policy.adoption_everywhere,
    )


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    built = process.current()
    if built is not None and isinstance(built.deps.aws, AwsSession):
        built.deps.aws.close()


for _kind in registry.KINDS:
    register(_kind)
