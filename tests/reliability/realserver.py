"""Faults of the control plane itself, on the real kube-apiserver (q_operator.apiserver.ApiServer).

The stand-in can refuse or slow calls; these rows stop the real kube-apiserver (etcd keeps the data)
while creates and deletions are in flight, and compact etcd so that the operator's resumed watches
get 410 Gone. Every row ends in the same audit as the others: no duplicate, no orphan, nothing stuck.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from q_operator.apiserver import ApiServer
from q_operator.sandbox import CRDS_DIR, Sandbox
from tests.kinds import aws_resources, changed, manifest
from tests.reliability.harness import BUILD_SECONDS, KINDS, Result, Run, latency

#: How long kube-apiserver stays down: longer than kopf's and the engine's first retries, so the
#: outage is felt by watches, status patches and event posts alike.
DOWN_SECONDS = 6.0


class RealServerRun(Run):
    """A Run whose Kubernetes is a real etcd + kube-apiserver of its own (with an audit log)."""

    #: Options of `q-operator run` beyond the sandbox's own.
    operator_args: tuple[str, ...] = ()

    def __init__(
        self,
        workdir: Path,
        rng: random.Random,
        size: int,
        operator_env: Mapping[str, str] | None = None,
        aws_args: Iterable[str] = (),
    ) -> None:
        super().__init__(workdir, rng, size, operator_env, aws_args)
        self.server = ApiServer(workdir / "apiserver", crds_dir=CRDS_DIR, audit=True)
        self._aws_args = ["--build-seconds", BUILD_SECONDS, *aws_args]

    def __enter__(self) -> RealServerRun:
        self.server.start()
        # The sandbox learns the server's URL and kubeconfig, which exist once it has started.
        self.box = Sandbox(
            self.box.workdir, kube=self.server, aws_args=self._aws_args, operator_env=self.box.operator_env
        )
        try:
            self.box.__enter__()
            self.box.start_operator(*self.operator_args)
        except BaseException:
            self.box.close()
            self.server.stop()
            raise
        return self

    def start_operator(self) -> None:
        self.box.start_operator(*self.operator_args)

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self.server.stop()

    def outage(self, seconds: float = DOWN_SECONDS) -> float:
        """Stop kube-apiserver for `seconds` (a deliberate outage, not a wait), then start it again;
        how long it was unreachable, restart included."""
        began = time.monotonic()
        self.server.stop_apiserver()
        self.mark()
        time.sleep(seconds)
        self.server.start_apiserver()
        self.mark()
        return time.monotonic() - began

    def audit_events(self) -> list[dict[str, Any]]:
        """kube-apiserver's audit log: one entry per finished request (across restarts)."""
        log = self.server.audit_log
        if log is None or not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def operator_log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.box.workdir.glob("operator-*.log"))
        )


class DebugRealServerRun(RealServerRun):
    """Logs kopf's debug lines too: its watch restarts after 410 Gone are only logged at debug."""

    operator_args = ("--debug",)


def _objects(namespace: str, prefix: str, count: int) -> list[dict[str, Any]]:
    return [manifest(kind, f"{prefix}{i}", namespace) for kind in KINDS for i in range(count)]


def _resources(run: Run) -> int:
    return len(aws_resources(run.state()))


def _bound(row: Result, run: Run, objs: list[dict[str, Any]], factor: float, since: float) -> None:
    from tests.reliability.scenarios import calls_bound, minimum_calls  # (scenarios imports this module)

    calls_bound(row, run, minimum_calls(objs) * 2, factor, objs, since)


def _faults(down: float) -> str:
    return f"kube-apiserver stopped {DOWN_SECONDS:.0f}s ({down:.0f}s unreachable with its restart)"


def apiserver_down_creates(run: Run, size: Any) -> Result:
    """kube-apiserver goes away while creates are in flight (AWS has been called, the operator has not
    written the IDs back yet) and comes back after DOWN_SECONDS."""
    assert isinstance(run, RealServerRun)
    since = time.monotonic()
    ns = run.namespace("apc")
    objs = _objects(ns, "c", size.per_kind)
    before = _resources(run)
    with latency(run, 1500):
        run.apply_all(objs)
        run.wait("an AWS create to land", lambda: _resources(run) > before, timeout=60, interval=0.05)
        down = run.outage()
    row = run.result("kube-apiserver down during creates", _faults(down), size.timeout)
    row.notes.append(f"{_resources(run) - before} AWS resources for {len(objs)} objects")
    _bound(row, run, objs, 2, since)
    return row


def apiserver_down_deletes(run: Run, size: Any) -> Result:
    """kube-apiserver goes away while deletions are in flight (finalizers held, AWS deletes sent)."""
    assert isinstance(run, RealServerRun)
    since = time.monotonic()
    ns = run.namespace("apd")
    objs = _objects(ns, "d", size.per_kind)
    run.apply_all(objs)
    run.settle("the objects to be Ready before deleting them", size.timeout)
    before = _resources(run)
    with latency(run, 1500):
        run.delete(objs)
        run.wait("an AWS delete to land", lambda: _resources(run) < before, timeout=60, interval=0.05)
        down = run.outage()
    row = run.result("kube-apiserver down during deletions", _faults(down), size.timeout)
    row.notes.append(f"{_resources(run)} AWS resources left of {before}")
    _bound(row, run, objs, 3, since)
    return row


def _restarted_watches(log: str) -> int:
    """How often kopf restarted a watch stream after a 410 Gone (its debug line for exactly that)."""
    return log.count("Restarting the watch-stream")


def _relists_after(run: RealServerRun, since: float) -> int:
    """LIST requests of our kinds that kopf made after `since` (it lists before watching again)."""
    groups = {manifest(kind, "x", "x")["apiVersion"].split("/")[0] for kind in KINDS}
    count = 0
    for event in run.audit_events():
        ref = event.get("objectRef") or {}
        stamp = event.get("requestReceivedTimestamp", "")
        ours = ref.get("apiGroup") in groups and "kopf" in event.get("userAgent", "")
        if event.get("verb") == "list" and ours and _epoch(stamp) >= since:
            count += 1
    return count


def _epoch(stamp: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def compaction_410(run: Run, size: Any) -> Result:
    """etcd is compacted past the revision the operator's watches last saw, then kube-apiserver restarts:
    the resumed watches get 410 Gone, kopf lists again, and changes made afterwards still converge."""
    assert isinstance(run, DebugRealServerRun)
    since_start = time.monotonic()
    ns = run.namespace("cmp")
    objs = _objects(ns, "w", size.per_kind)
    run.apply_all(objs)
    run.settle("the objects to be Ready", size.timeout)
    # Writes the operator does not watch move etcd's revision past what its watches last saw.
    for i in range(20):
        run.box.kube(
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"filler-{i}"}},
        )
    revision = run.server.compact_etcd()
    restarted_before = _restarted_watches(run.operator_log())
    since = time.time()
    run.server.restart_apiserver()
    run.mark()
    run.wait(
        "the operator to meet 410 Gone and restart its watches",
        lambda: _restarted_watches(run.operator_log()) > restarted_before,
        timeout=60,
        interval=0.2,
    )
    # kopf logs the restart, then lists the kind again before watching from the list's version.
    relists = run.wait(
        "the operator to list its kinds again", lambda: _relists_after(run, since), timeout=60, interval=0.2
    )
    # The watches it opened after relisting must see what happens next.
    run.apply_all([changed(o) for o in objs])
    run.delete(objs[::2])
    row = run.result(
        "watch resumed after etcd compaction", f"etcd compacted at {revision}, 410 Gone", size.timeout
    )
    gone = _restarted_watches(run.operator_log()) - restarted_before
    row.notes.append(f"{gone} watch streams restarted after 410 Gone, {relists} relists of our kinds")
    _bound(row, run, objs, 3, since_start)
    row.bound = f"410 Gone seen and relisted; {row.bound}"
    if not (gone > 0 and relists > 0):
        row.problems.append("the operator did not meet 410 Gone, or did not list again after it")
    return row
