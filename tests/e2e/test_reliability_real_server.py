"""The compaction row of `make reliability`, fast, on a real kube-apiserver of this module's own.

The server runs without its watch cache, so a watch is answered by etcd: a 410 Gone can only come from
etcd's compaction (a watch cache answers 410 to any revision older than it holds, e.g. after its
restart, compacted or not). kube-apiserver keeps running; the operator's watches end every few seconds
(kopf's timeoutSeconds) and resume from the last resourceVersion they saw. etcd is compacted past
that: each kind's resumed watch gets 410 Gone (the operator's log) from a compacted revision (the
audit log); kopf lists again; a change and a deletion of every object converge with exactly one AWS
resource each. The outage rows (kube-apiserver stopped during creates and deletions) take 45-50 s
each at their smallest, so they stay in tests/reliability/realserver.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from q_operator.apiserver import ApiServer
from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import TEST_KINDS, aws_resources, changed, facts_of, manifest
from tests.reliability.realserver import (
    WATCH_SECONDS,
    compact_past_watches,
    gone_and_resumed,
    gone_restarts,
    operator_log,
)

from .helpers import e2e_crds, new_namespace

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """This module's own server (overrides conftest's): no watch cache, an audit log."""
    root = tmp_path_factory.mktemp("compaction-apiserver")
    with ApiServer(root / "server", crds_dir=e2e_crds(root / "crds"), audit=True, watch_cache=False) as own:
        yield own


def _ready(box: Sandbox, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    box.wait_condition(facts_of(obj).plural_path, meta["namespace"], meta["name"], "Ready", timeout=90)


def test_watches_resumed_from_a_compacted_revision_get_410_and_the_operator_relists_and_converges(
    fresh_sandbox: Sandbox, kube_server: ApiServer
) -> None:
    sandbox = fresh_sandbox
    # kopf logs its 410 handling at debug level only; its watches end (and resume) every few seconds.
    sandbox.start_operator("--debug", env={"Q_OPERATOR_WATCH_SERVER_TIMEOUT": str(WATCH_SECONDS)})
    namespace = new_namespace(sandbox, "gone")
    objs = [manifest(facts.kind, "gone", namespace) for facts in TEST_KINDS]
    sandbox.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objs))
    for obj in objs:
        _ready(sandbox, obj)
    before = gone_restarts(operator_log(sandbox))
    revision, since = compact_past_watches(sandbox, kube_server, namespace, 10)
    wait_for(
        "every kind's watch to resume from a compacted revision and meet 410 Gone",
        lambda: gone_and_resumed(sandbox, kube_server, before, revision, since),
        timeout=10 * WATCH_SECONDS,
    )
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
