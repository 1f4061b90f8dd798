"""The operator process's state, built once at startup: the engine's dependencies (the AWS session,
the ConfigMap reader, the namespaces' AWS identities under the operator's policy, timing from the
environment, the memory of each object) and the last data seen of each ConfigMap. Also the
Kubernetes client the process uses outside kopf."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from q_operator.engine import sweep
from q_operator.engine.aws import AwsSession, default_region, env_float
from q_operator.engine.identity import Identities, Policy
from q_operator.engine.memory import Memory
from q_operator.engine.reconcile import Deps, Timing
from q_operator.kinds.base import KindInfo

log = logging.getLogger("q_operator.engine")
#: (connect, read) seconds for the operator's own Kubernetes calls, made in worker threads while a
#: cycle holds its object's lock: an API server that went away mid-request must not hold a thread
#: (and the object) for ever; the call fails and kopf writes the status instead.
KUBE_TIMEOUT = (5.0, 30.0)


@dataclass
class Process:
    """Process-wide engine state."""

    #: the engine's dependencies; `deps.memory` holds what the process keeps per object, the
    #: indexes of ConfigMap references and namespaces included (memory.py).
    deps: Deps
    #: (namespace, name) → digest of the data last seen: the ConfigMap watch (configmaps.py).
    configmap_digests: dict[tuple[str, str], str] = field(default_factory=dict)


_process: Process | None = None
_kube: Any = None
_custom: Any = None
#: the operator's identity rules, from `q-operator run`'s flags (runner.py), set before kopf starts.
_policy = Policy()


def configure(policy: Policy) -> None:
    global _policy
    _policy = policy


def _kube_api() -> Any:
    """The `kubernetes` client, configured in-cluster or from KUBECONFIG."""
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client


def kube_client() -> Any:
    global _kube
    if _kube is None:
        _kube = _kube_api()
    return _kube


def _custom_objects() -> Any:
    """One CustomObjectsApi for the process: a new one per call would open a new connection pool."""
    global _custom
    if _custom is None:
        _custom = kube_client().CustomObjectsApi()
    return _custom


async def write_status(
    kind: KindInfo[Any, Any], namespace: str, name: str, patch: Mapping[str, Any]
) -> str | None:
    """Merge-patch the object's status subresource; returns once the API server has stored it, with
    the object's new resourceVersion."""

    def write() -> str | None:
        stored = _custom_objects().patch_namespaced_custom_object_status(
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            {"status": dict(patch)},
            _content_type="application/merge-patch+json",
            _request_timeout=KUBE_TIMEOUT,
        )
        version = stored.get("metadata", {}).get("resourceVersion") if isinstance(stored, dict) else None
        return str(version) if version else None

    return await asyncio.to_thread(write)


async def read_configmap(namespace: str, name: str) -> Mapping[str, str] | None:
    def read() -> Mapping[str, str] | None:
        client = kube_client()
        try:
            found = client.CoreV1Api().read_namespaced_config_map(
                name, namespace, _request_timeout=KUBE_TIMEOUT
            )
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found.data or {})

    return await asyncio.to_thread(read)


async def read_namespace(name: str) -> Mapping[str, str] | None:
    """A Namespace's annotations (None: no such namespace). A list narrowed to the name, so the
    operator needs no `get` on namespaces beyond the list and watch it already has."""

    def read() -> Mapping[str, str] | None:
        client = kube_client()
        found = client.CoreV1Api().list_namespace(
            field_selector=f"metadata.name={name}", _request_timeout=KUBE_TIMEOUT
        )
        for item in found.items or []:
            return dict(item.metadata.annotations or {})
        return None

    return await asyncio.to_thread(read)


async def mark(
    kind: KindInfo[Any, Any], namespace: str, name: str, annotation: str, value: str, why: str
) -> None:
    """Set one annotation of an object (a merge patch): kopf sees a change and reconciles it now.
    A failure is only logged: the object's next drift check or cycle catches up instead."""

    def patch() -> None:
        kube_client().CustomObjectsApi().patch_namespaced_custom_object(
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            {"metadata": {"annotations": {annotation: value}}},
            _content_type="application/merge-patch+json",
            _request_timeout=KUBE_TIMEOUT,
        )

    try:
        await asyncio.to_thread(patch)
    except Exception as error:
        log.warning("could not mark %s %s/%s %s: %s", kind.kind, namespace, name, why, error)


def build_state() -> Process:
    timing = Timing(
        poll_min=env_float("Q_OPERATOR_POLL_MIN_SECONDS", 1.0),
        poll_max=env_float("Q_OPERATOR_POLL_MAX_SECONDS", 15.0),
        poll_factor=env_float("Q_OPERATOR_POLL_FACTOR", 0.5),
        first_build_factor=env_float("Q_OPERATOR_FIRST_BUILD_POLL_FACTOR", 0.25),
        consistency=max(0.0, env_float("Q_OPERATOR_CONSISTENCY_SECONDS", Timing.consistency)),
    )
    identities = Identities(_policy, read_namespace)
    memory = Memory()
    return Process(
        Deps(
            AwsSession(session_name=identities.session_name),
            read_configmap,
            timing=timing,
            default_region=default_region(),
            identities=identities,
            memory=memory,
            watcher=sweep.from_environment(memory),
            write_status=write_status,
        )
    )


def state() -> Process:
    global _process
    if _process is None:
        _process = build_state()
    return _process


def current() -> Process | None:
    """The state if it was built (for cleanup: nothing to close otherwise)."""
    return _process
