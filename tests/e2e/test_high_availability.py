"""Two operator replicas with kopf peering, as the chart runs them with `replicas: 2`: one set of
resources, exactly one create per resource on the AWS side, and the standby takes over when the
active replica dies."""

from __future__ import annotations

import pytest

from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import QPLUGIN, QPLUGINS, qplugin

from .helpers import apply, calls, listed, new_application_id, new_namespace

#: A short peering lifetime so the standby notices the active replica's death within seconds.
PEERING_ENV = {"Q_OPERATOR_PEERING_LIFETIME": "5"}


@pytest.fixture(scope="module")
def peered(fresh_sandbox: Sandbox) -> Sandbox:
    """No operator yet; the peering object the chart's replicas share (kopf's peering CRDs are on
    every end-to-end API server)."""
    fresh_sandbox.kube(
        "POST",
        "/apis/kopf.dev/v1/clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "q-operator"}},
    )
    return fresh_sandbox


def test_two_replicas_create_each_plugin_once(peered: Sandbox) -> None:
    replicas = [
        peered.spawn_operator("--all-namespaces", "--peering=q-operator", f"--priority={p}", env=PEERING_ENV)
        for p in (100, 200)
    ]
    app = new_application_id()
    ns = new_namespace(peered, "ha")  # (the `namespace` fixture would start a non-peered operator)
    names = [f"ha{i}" for i in range(5)]
    for name in names:
        apply(peered, qplugin(name, ns, applicationId=app))
    for name in names:
        peered.wait_condition(QPLUGINS, ns, name, "Ready")
    creates = [c for c in calls(peered, "CreatePlugin") if c.get("status") == 200]
    assert len(creates) == len(names)
    assert len({c.get("clientToken") for c in creates}) == len(names)
    assert len(listed(peered, QPLUGIN, applicationId=app)) == len(names)

    # The active replica (priority 200) dies; the standby takes over and serves a new resource.
    active = replicas[1]
    peered_kill(active)
    apply(peered, qplugin("after-failover", ns, applicationId=app))
    peered.wait_condition(QPLUGINS, ns, "after-failover", "Ready", timeout=90)
    assert len(listed(peered, QPLUGIN, applicationId=app)) == len(names) + 1
    assert replicas[0].poll() is None


def peered_kill(proc: object) -> None:
    import os
    import signal
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for("the replica to be gone", lambda: proc.poll() is not None, timeout=10)
