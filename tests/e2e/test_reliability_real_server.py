"""The control-plane faults of `make reliability`, fast, on this worker's real kube-apiserver.

etcd is compacted past what the operator's watches last saw and kube-apiserver restarts (an outage
too: every watch, status patch and event post of the operator breaks for its restart). The resumed
watches get 410 Gone; kopf lists again; changes and deletions made afterwards converge with exactly
one AWS resource per object. The full rows (outages during creates and deletions, longer) are
tests/reliability/realserver.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from q_operator.apiserver import ApiServer
from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import TEST_KINDS, aws_resources, changed, facts_of, manifest

pytestmark = pytest.mark.e2e


def _restarts(box: Sandbox) -> int:
    """kopf's debug line for a watch stream it restarts after 410 Gone."""
    logs = box.workdir.glob("operator-*.log")
    return sum(log.read_text(errors="replace").count("Restarting the watch-stream") for log in logs)


def _ready(box: Sandbox, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    box.wait_condition(facts_of(obj).plural_path, meta["namespace"], meta["name"], "Ready", timeout=90)


def test_watches_resumed_after_compaction_get_410_and_the_operator_relists_and_converges(
    sandbox: Sandbox, kube_server: ApiServer | None, namespace: str
) -> None:
    assert kube_server is not None, "this module runs on the real API server"
    sandbox.start_operator("--debug")  # kopf logs its 410 handling at debug level only
    objs = [manifest(facts.kind, "gone", namespace) for facts in TEST_KINDS]
    sandbox.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objs))
    for obj in objs:
        _ready(sandbox, obj)
    for i in range(10):  # writes the operator does not watch: etcd's revision moves past its watches'
        sandbox.kube(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"filler-{i}"}},
        )
    before = _restarts(sandbox)
    kube_server.compact_etcd()
    kube_server.restart_apiserver()
    wait_for("a watch restarted after 410 Gone", lambda: _restarts(sandbox) > before, timeout=60)
    updated = [changed(o) for o in objs]
    sandbox.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in updated))
    for obj in updated:
        _ready(sandbox, obj)
    held = aws_resources(sandbox.aws("GET", "/_emulator/state"))  # this module's AWS stand-in only
    assert sorted(r.kind for r in held) == sorted(o["kind"] for o in objs), f"one per object: {held}"
    for obj in objs:
        plural = facts_of(obj).info.plural
        sandbox.kubectl("delete", plural, "-n", namespace, obj["metadata"]["name"], "--wait=false")
    wait_for(
        "every object and its AWS resource gone",
        lambda: (
            not any(sandbox.get(facts_of(o).plural_path, namespace, "gone") for o in objs)
            and not aws_resources(sandbox.aws("GET", "/_emulator/state"))
        ),
        timeout=90,
    )
