"""Faults of the control plane itself, on the real kube-apiserver (q_operator.apiserver.ApiServer).

The stand-in can refuse or slow calls; these rows stop the real kube-apiserver (etcd keeps the data)
while creates and deletions are in flight, and compact etcd under a running kube-apiserver without its
watch cache, so that the operator's resumed watches get 410 Gone from etcd's compaction itself. Every
row ends in the same audit as the others: no duplicate, no orphan, nothing stuck.
"""

from __future__ import annotations

import json
import random
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from q_operator.apiserver import ApiServer
from q_operator.sandbox import CRDS_DIR, Sandbox
from tests.kinds import TEST_KINDS, aws_resources, changed, manifest
from tests.reliability.harness import BUILD_SECONDS, KINDS, Result, Run, latency

#: How long kube-apiserver stays down: longer than kopf's and the engine's first retries, so the
#: outage is felt by watches, status patches and event posts alike.
DOWN_SECONDS = 6.0


class RealServerRun(Run):
    """A Run whose Kubernetes is a real etcd + kube-apiserver of its own (with an audit log)."""

    #: Options of `q-operator run` beyond the sandbox's own.
    operator_args: tuple[str, ...] = ()
    #: kube-apiserver's watch cache (on, as on a cluster, unless a row needs etcd to answer watches).
    watch_cache = True
    #: The operator's environment beyond the sandbox's own (a row's own `operator_env` wins).
    extra_env: tuple[tuple[str, str], ...] = ()

    def __init__(
        self,
        workdir: Path,
        rng: random.Random,
        size: int,
        operator_env: Mapping[str, str] | None = None,
        aws_args: Iterable[str] = (),
    ) -> None:
        super().__init__(workdir, rng, size, {**dict(self.extra_env), **(operator_env or {})}, aws_args)
        self.server = ApiServer(
            workdir / "apiserver", crds_dir=CRDS_DIR, audit=True, watch_cache=self.watch_cache
        )
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
        return audit_events(self.server)

    def operator_log(self) -> str:
        return operator_log(self.box)


def audit_events(server: ApiServer) -> list[dict[str, Any]]:
    """kube-apiserver's audit log: one entry per finished request (across restarts)."""
    log = server.audit_log
    if log is None or not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def operator_log(box: Sandbox) -> str:
    """Every operator log of the sandbox, in the order they were started."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(box.workdir.glob("operator-*.log")))


#: How long each of the operator's watch requests lasts (kopf's `timeoutSeconds`) in the compaction
#: world: kube-apiserver ends it then, and kopf watches again from the last resourceVersion it saw,
#: as it does every 120 s by default. Short, so a resume comes seconds after the compaction.
WATCH_SECONDS = 3


class CompactionRun(RealServerRun):
    """The compaction row's world. kube-apiserver runs without its watch cache: watches go to etcd, so
    a 410 Gone can only come from etcd's compaction (a watch cache answers 410 to any revision older
    than what it holds, compacted or not, e.g. right after a restart). kube-apiserver keeps running;
    the operator's watches end every WATCH_SECONDS and resume from their last resourceVersion. The
    operator logs at debug: kopf's line for a watch stream restarted after 410 Gone is a debug line."""

    operator_args = ("--debug",)
    watch_cache = False
    extra_env = (("Q_OPERATOR_WATCH_SERVER_TIMEOUT", str(WATCH_SECONDS)),)


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


def gone_restarts(log: str) -> dict[str, int]:
    """Per kind (its plural): how often kopf restarted a watch stream of it after 410 Gone.

    kopf's debug line for exactly that: "Restarting the watch-stream for <plural>.<version>.<group> ...".
    """
    return {
        facts.info.plural: log.count(
            f"Restarting the watch-stream for {facts.info.plural}.{facts.info.version}.{facts.info.group} "
        )
        for facts in TEST_KINDS
    }


def compacted_resumes(events: Iterable[Mapping[str, Any]], revision: int, since: float) -> dict[str, int]:
    """Per kind (its plural): watches kopf opened after `since` (epoch seconds, when etcd's compaction
    at `revision` had finished) from a resourceVersion older than `revision`.

    Without a watch cache, etcd itself answers such a watch: ErrCompacted, which kube-apiserver sends as
    a 410 Gone event. With `gone_restarts` it proves the 410 the operator met came from the compaction.
    """
    plurals = {facts.info.plural: facts.info.group for facts in TEST_KINDS}
    found: dict[str, set[str]] = {plural: set() for plural in plurals}
    for event in events:
        ref = event.get("objectRef") or {}
        plural = ref.get("resource", "")
        if event.get("verb") != "watch" or plural not in plurals or plurals[plural] != ref.get("apiGroup"):
            continue
        started = _epoch(event.get("requestReceivedTimestamp", ""))
        if "kopf" not in event.get("userAgent", "") or started < since:
            continue
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(event.get("requestURI", "")).query)
        version = query.get("resourceVersion", [""])[0]
        if version.isdigit() and int(version) < revision:
            found[plural].add(event.get("auditID", ""))  # (a watch is logged when it starts and ends)
    return {plural: len(ids) for plural, ids in found.items()}


def _relists_after(run: RealServerRun, since: float) -> int:
    """LIST requests of our kinds that kopf made after `since` (it lists before watching again)."""
    groups = {facts.info.group for facts in TEST_KINDS}
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


def compact_past_watches(box: Sandbox, server: ApiServer, namespace: str, writes: int) -> tuple[int, float]:
    """`writes` ConfigMaps (not our kinds: their watches see nothing of them) move etcd's revision past
    what the watches of our kinds last saw; then etcd is compacted at its current revision. Returns the
    revision and the moment (epoch seconds) the compaction had finished."""
    for i in range(writes):
        box.kube(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"filler-{i}"}},
        )
    revision = server.compact_etcd()
    return revision, time.time()


def gone_and_resumed(
    box: Sandbox, server: ApiServer, before: Mapping[str, int], revision: int, since: float
) -> tuple[dict[str, int], dict[str, int]] | None:
    """Per kind, the watches kopf restarted after 410 Gone since `before`, and those resumed from
    before the compacted `revision`; None until every kind has both."""
    now = gone_restarts(operator_log(box))
    gone = {plural: now[plural] - before[plural] for plural in now}
    resumed = compacted_resumes(audit_events(server), revision, since)
    return (gone, resumed) if all(gone.values()) and all(resumed.values()) else None


def compaction_410(run: Run, size: Any) -> Result:
    """etcd is compacted past the revision the operator's watches last saw while kube-apiserver (no
    watch cache) keeps running; each watch, ended by its timeout, resumes from that revision and gets
    410 Gone from etcd; kopf lists again, and changes made afterwards still converge."""
    assert isinstance(run, CompactionRun)
    since_start = time.monotonic()
    ns = run.namespace("cmp")
    objs = _objects(ns, "w", size.per_kind)
    run.apply_all(objs)
    run.settle("the objects to be Ready", size.timeout)
    before = gone_restarts(run.operator_log())
    revision, since = compact_past_watches(run.box, run.server, ns, 20)
    run.mark()

    # Each watch ends within WATCH_SECONDS and resumes from before the revision: etcd answers 410 Gone.
    gone, resumed = run.wait(
        "every kind's watch to resume from a compacted revision and meet 410 Gone",
        lambda: gone_and_resumed(run.box, run.server, before, revision, since),
        timeout=10 * WATCH_SECONDS,
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
        "watch resumed after etcd compaction",
        f"etcd compacted at {revision} under a running kube-apiserver, 410 Gone",
        size.timeout,
    )
    row.notes.append(
        f"{len(gone)} of {len(gone)} kinds: {sum(resumed.values())} watches resumed from before revision "
        f"{revision}, {sum(gone.values())} restarted after 410 Gone; {relists} relists of our kinds"
    )
    _bound(row, run, objs, 3, since_start)
    row.bound = f"410 Gone from the compaction met by every kind, then relisted; {row.bound}"
    return row
