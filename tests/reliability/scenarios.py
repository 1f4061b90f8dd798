"""The reliability scenarios: each a function over a fresh `Run` (the AWS stand-in, a Kubernetes API
server and the real operator), listed as data in `SCENARIOS`.

Every scenario works on every registered kind (their test facts are in tests/kinds.py), injects its trouble,
then ends in `Run.result()`: the AWS stand-in's state is compared with the desired state (no duplicate,
no orphan, every object in the condition it should be in, nothing stuck Terminating). A scenario adds
the bound on AWS calls it promises and whether it held; the bound is stated in words in the table.
"""

from __future__ import annotations

import math
import random
import threading
import time
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import botocore.session

from q_operator.sandbox import condition
from tests.kinds import (
    TEST_KINDS,
    KindFacts,
    aws_resources,
    build,
    changed,
    facts_of,
    manifest,
    merged_settings,
)
from tests.reliability import consistency
from tests.reliability.harness import KINDS, Result, Run, latency, ref_field
from tests.reliability.realserver import (
    CompactionRun,
    RealServerRun,
    apiserver_down_creates,
    apiserver_down_deletes,
    compaction_410,
)

DRIFT = 10.0


def _create_op(facts: KindFacts) -> str:
    """The kind's create as the stand-in's fault settings name it (service:Operation)."""
    return f"{facts.info.service}:{facts.create_op}"


@dataclass(frozen=True)
class Size:
    """How big a run is: objects per kind, kills, measuring windows."""

    per_kind: int
    kills: int
    window: float
    throttle_seconds: float
    namespace_objects: int
    timeout: float = 120.0
    #: which crash windows the kill -9 scenario hits, per kind.
    crash_windows: tuple[str, ...] = ("create", "update", "delete")


QUICK = Size(per_kind=2, kills=2, window=20.0, throttle_seconds=10.0, namespace_objects=3, timeout=90.0)
#: For `make test`: the fewest objects that still cover every kind, the create crash window only.
TINY = Size(
    per_kind=1,
    kills=1,
    window=10.0,
    throttle_seconds=6.0,
    namespace_objects=2,
    timeout=60.0,
    crash_windows=("create",),
)
FULL = Size(per_kind=5, kills=6, window=30.0, throttle_seconds=20.0, namespace_objects=10, timeout=180.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: str
    play: Callable[[Run, Size], Result]
    operator_env: Mapping[str, str] = field(default_factory=dict)
    aws_args: tuple[str, ...] = ()
    #: The world it plays in: the Kubernetes stand-in (Run), or a real kube-apiserver of its own.
    world: Callable[..., Run] = Run


def run_scenario(scenario: Scenario, workdir: Path, size: Size, seed: int) -> Result:
    """Play one scenario in a fresh sandbox; a crash of the harness itself is a failed row, not a stop."""
    started = time.monotonic()
    rng = random.Random(f"{seed}/{scenario.name}")
    try:
        with scenario.world(workdir, rng, size.per_kind, scenario.operator_env, scenario.aws_args) as run:
            row = scenario.play(run, size)
    except Exception as error:  # report it in the table and go on with the next scenario
        row = Result(scenario.name, 0, scenario.faults, problems=[f"scenario failed: {error!r}"])
    row.seconds = time.monotonic() - started
    return row


def objects(run: Run, namespace: str, prefix: str, count: int, **spec: Any) -> list[dict[str, Any]]:
    """`count` objects of each kind."""
    return [manifest(kind, f"{prefix}{i}", namespace, **spec) for kind in KINDS for i in range(count)]


def minimum_calls(objs: list[dict[str, Any]]) -> int:
    return sum(facts_of(o).min_create_calls for o in objs)


def drift_allowance(objs: list[dict[str, Any]], seconds: float) -> int:
    """Calls the drift timer may make: one observe per object per drift interval (plus one)."""
    checks = math.ceil(seconds / DRIFT) + 1
    return sum(facts_of(o).observe_calls for o in objs) * checks


def calls_bound(
    row: Result, run: Run, minimum: int, factor: float, objs: list[dict[str, Any]], since: float
) -> None:
    """State and check: calls ≤ factor x the minimum + the drift checks of the elapsed time."""
    allowance = drift_allowance(objs, time.monotonic() - since)
    limit = int(factor * minimum) + allowance
    row.bound = f"calls ≤ {factor:g}xmin({minimum}) + drift checks({allowance}) = {limit}"
    row.bound_held = row.aws_calls <= limit


# ---------------------------------------------------------------------------------------------------
# Baseline


def baseline(run: Run, size: Size) -> Result:
    """No fault at all: the reference for call counts."""
    since = time.monotonic()
    ns = run.namespace("base")
    objs = objects(run, ns, "b", size.per_kind)
    run.apply_all(objs)
    row = run.result("baseline (no faults)", "none", size.timeout)
    calls_bound(row, run, minimum_calls(objs), 1.5, objs, since)
    return row


# ---------------------------------------------------------------------------------------------------
# kill -9


def _kill_restart(run: Run, down: float = 0.0) -> None:
    run.kill_operator()
    if down:
        time.sleep(down)
    run.start_operator()


def _count(run: Run, kind: str) -> int:
    return sum(1 for r in aws_resources(run.state()) if r.kind == kind)


def _calls_of(run: Run, operation: str) -> int:
    return sum(1 for r in run.requests() if r.get("operation") == operation)


def crash_window_kill(run: Run, act: Callable[[], object], landed: Callable[[], bool]) -> bool:
    """Slow every AWS answer, act, and kill -9 the operator as soon as AWS has done the work but before
    the operator can have read the answer (and so before it wrote the ID or the new state to status)."""
    with latency(run, 1500):
        act()
        try:
            run.wait("the AWS call to land", landed, timeout=30, interval=0.02)
            hit = True
        except Exception:
            hit = False
        run.kill_operator()
    run.start_operator()
    return hit


def kill9(run: Run, size: Size) -> Result:
    """kill -9 at random moments during creates, updates and deletes, and exactly in the crash window
    (AWS has acted, the operator has not yet written status) of a create, an update and a delete of
    every kind."""
    since = time.monotonic()
    ns = run.namespace("kill")
    rng = run.rng
    window_hits = 0
    # The crash window of a create, an update and a delete, per kind.
    windows = size.crash_windows
    for facts in TEST_KINDS:
        kind = facts.kind
        obj = manifest(kind, "window", ns)
        before = _count(run, kind)
        window_hits += crash_window_kill(
            run, lambda obj=obj: run.apply(obj), lambda kind=kind, before=before: _count(run, kind) > before
        )
        if "update" in windows:
            run.settle(f"{kind} window Ready", 60)
            op = facts.update_op
            seen = _calls_of(run, op)
            updated = changed(obj)
            window_hits += crash_window_kill(
                run,
                lambda updated=updated: run.apply(updated),
                lambda op=op, seen=seen: _calls_of(run, op) > seen,
            )
        if "delete" in windows:
            if facts.builds:  # the delete's crash window on a resource that is done building
                run.settle("the update", 60)
            op = facts.delete_op
            seen = _calls_of(run, op)
            window_hits += crash_window_kill(
                run, lambda obj=obj: run.delete([obj]), lambda op=op, seen=seen: _calls_of(run, op) > seen
            )
    # Random moments, over many objects.
    objs = objects(run, ns, "k", size.per_kind)
    run.apply_all(objs)
    for _ in range(size.kills):
        time.sleep(rng.uniform(0.1, 2.0))
        _kill_restart(run)
    run.apply_all([changed(o) for o in objs])
    for _ in range(max(1, size.kills // 2)):
        time.sleep(rng.uniform(0.1, 2.0))
        _kill_restart(run)
    run.delete(objs[::2])
    for _ in range(max(1, size.kills // 2)):
        time.sleep(rng.uniform(0.1, 2.0))
        _kill_restart(run)
    kills = run.kills
    aimed = len(KINDS) * len(windows)
    row = run.result(
        "kill -9 (random + crash window)",
        f"{kills} kill -9 ({window_hits}/{aimed} in the crash window: {'/'.join(windows)})",
        size.timeout,
    )
    row.resources = len(objs) + len(KINDS)
    every = [*objs, *(manifest(k, "window", ns) for k in KINDS)]
    calls_bound(row, run, minimum_calls(every) * 2, 3, every, since)
    row.notes.append(
        f"{window_hits} of {aimed} crash-window kills landed after AWS acted and before the answer"
    )
    if window_hits < aimed:
        row.problems.append(f"only {window_hits}/{aimed} kills hit the crash window")
    return row


# ---------------------------------------------------------------------------------------------------
# Throttling


def _says_when(service: str) -> bool:
    """Whether the service's ThrottlingException carries Retry-After (botocore's model): only then can
    a run tell whether the operator waited as told."""
    model = botocore.session.get_session().get_service_model(service)
    if "ThrottlingException" not in model.shape_names:
        return False
    members = model.shape_for("ThrottlingException").members.values()
    return any(m.serialization.get("name") == "Retry-After" for m in members)


#: The kinds' services whose throttles say when to come back (in the registry's order).
RETRY_AFTER_SERVICES = tuple(dict.fromkeys(f.info.service for f in TEST_KINDS if _says_when(f.info.service)))


def _retry_after_honoured(run: Run, row: Result) -> None:
    """Note each such service's throttles and early calls; as many early calls as throttles is a problem."""
    for service in RETRY_AFTER_SERVICES:
        throttles, early = _early_retries(run, service)
        row.notes.append(
            f"{service}: {throttles} throttles, {early} calls of the same operation within Retry-After"
        )
        if early > max(2, throttles // 2):  # as many early calls as throttles: Retry-After ignored
            row.problems.append(
                f"Retry-After not honoured: {early} early calls after {throttles} {service} throttles"
            )


def _early_retries(run: Run, service: str) -> tuple[int, int]:
    """(throttles of `service`, calls of the same operation sent within Retry-After of one of them).

    The stand-in's Retry-After is at least 1 s; a call within 0.25 s of the throttle was already in
    flight when it came, so it does not count as ignoring the answer. Calls already waiting in the
    operator's limiter for their turn when the throttle came must wait too; a few may have been on
    their way already, so up to half as many early calls as throttles (at least 2) are let pass."""
    log = [r for r in run.requests() if r.get("service") == service]
    throttles = [r for r in log if r.get("error") == "ThrottlingException"]
    early = 0
    for t in throttles:
        op, at = t.get("operation"), float(t["time"])
        early += sum(1 for r in log if r.get("operation") == op and at + 0.25 < float(r["time"]) < at + 1.0)
    return len(throttles), early


def throttle_half(run: Run, size: Size) -> Result:
    """Half of all calls throttled for a while, during creates and then updates."""
    since = time.monotonic()
    ns = run.namespace("thr")
    objs = objects(run, ns, "t", size.per_kind)
    run.configure(throttle_percent=50, throttle_for_seconds=size.throttle_seconds, seed=7)
    run.apply_all(objs)
    time.sleep(size.throttle_seconds / 2)
    run.apply_all([changed(o) for o in objs])
    row = run.result(
        "throttling 50%",
        "",
        size.timeout,
    )
    row.faults = (
        f"50% throttled for {size.throttle_seconds:g}s: {run.faults_seen(['ThrottlingException'])} throttles"
    )
    calls_bound(row, run, minimum_calls(objs) * 2, 3, objs, since)
    _retry_after_honoured(run, row)
    return row


RATE_LIMITS = {**{_create_op(facts): 1.0 for facts in TEST_KINDS}, "*": 4.0}


def rate_limit(run: Run, size: Size) -> Result:
    """A hard per-operation rate limit (1 create/s per kind, 4/s for everything else) and twice the
    objects, all applied at once."""
    since = time.monotonic()
    ns = run.namespace("rate")
    run.configure(throttle=RATE_LIMITS)
    objs = objects(run, ns, "r", size.per_kind * 2)
    run.apply_all(objs)
    row = run.result("hard rate limit", "", size.timeout)
    row.faults = (
        f"1 create/s per kind, 4/s per other op: {run.faults_seen(['ThrottlingException'])} throttles"
    )
    calls_bound(row, run, minimum_calls(objs), 3, objs, since)
    _retry_after_honoured(run, row)
    return row


# ---------------------------------------------------------------------------------------------------
# 5xx and latency


def _flap_latency(run: Run, stop: threading.Event, ms: float, period: float) -> None:
    """Latency on half the time: a fraction of calls is slow."""
    on = False
    while not stop.wait(period):
        on = not on
        try:
            run.configure(latency_ms=ms if on else 0)
        except OSError:
            return
    run.configure(latency_ms=0)


def faults_5xx(run: Run, size: Size) -> Result:
    """20% of calls answer 500 and, half of the time, every answer takes 400 ms; create, update, delete."""
    since = time.monotonic()
    ns = run.namespace("err")
    objs = objects(run, ns, "e", size.per_kind)
    run.configure(fail_rate=0.2, seed=11)
    # The 500s go on while converging: a drift check that meets one flips Synced on a Ready object
    # for a few seconds (AwsServerError), which is the truth, not a failure to converge.
    run.transient.add("AwsServerError")
    stop = threading.Event()
    flapper = threading.Thread(target=_flap_latency, args=(run, stop, 400.0, 1.0), daemon=True)
    flapper.start()
    try:
        run.apply_all(objs)
        run.wait(
            "the creates",
            lambda: (
                sum(1 for o in objs if (run.get(o) or {}).get("status", {}).get("conditions")) == len(objs)
            ),
            timeout=60,
            interval=0.5,
        )
        run.apply_all([changed(o) for o in objs])
        run.delete(objs[::2])
        row = run.result("5xx 20% + latency", "", size.timeout)
    finally:
        stop.set()
        flapper.join(timeout=5)
    row.faults = (
        f"fail_rate 20% ({run.faults_seen(['InternalServerException'])} x 500), 400 ms on half the time"
    )
    calls_bound(row, run, minimum_calls(objs) * 2, 3, objs, since)
    return row


# ---------------------------------------------------------------------------------------------------
# Failing resources left alone: no hot loop


def no_hot_loop(run: Run, size: Size) -> Result:
    """Per kind, a permanently invalid object (AWS answers ValidationException), one whose dependency is
    missing (unknown application, app or Lambda) and an AccessDenied one, left alone for a window of
    several drift intervals; then permissions and dependencies are fixed and a control object added."""
    ns = run.namespace("fail")
    creates = [_create_op(facts) for facts in TEST_KINDS]
    run.configure(inject=[{"operation": op, "error": "ValidationException", "count": None} for op in creates])
    invalid = [manifest(kind, "invalid", ns) for kind in KINDS]
    for obj in invalid:
        run.apply(obj, expect="AwsValidationError")
    run.settle("AwsValidationError on all", 60)
    run.configure(inject=[], **merged_settings(*(facts.missing_dependency for facts in TEST_KINDS)))
    missing = [manifest(kind, "missing", ns) for kind in KINDS]
    for obj in missing:
        run.apply(obj, expect="DependencyNotFound")
    run.settle("DependencyNotFound on all", 60)
    run.configure(access_denied=creates)
    denied = [manifest(kind, "denied", ns) for kind in KINDS]
    for obj in denied:
        run.apply(obj, expect="AccessDenied")
    for obj in missing:  # denial comes first at AWS's door: their next retry may say AccessDenied
        run.apply(obj, expect="DependencyNotFound|AccessDenied")
    run.settle("AccessDenied on all", 60)
    # The window: nothing changes; only slow retries (at the drift interval) may call AWS.
    start_count = len(run.requests())
    time.sleep(size.window)
    in_window = run.requests()[start_count:]
    window_calls = len(in_window)
    per_hour = window_calls * 3600.0 / size.window
    retrying = len(denied) + len(missing)
    # Per retrying object and drift interval at most one attempt of at most 3 calls; invalid ones none.
    attempts = math.ceil(size.window / DRIFT) + 1
    limit = retrying * attempts * 3
    validation_calls = sum(1 for r in in_window if r.get("error") == "ValidationException")
    # Permissions and dependencies fixed: the slow retry picks that up; a control object converges.
    run.configure(access_denied=[], **merged_settings(*(facts.dependency_reset for facts in TEST_KINDS)))
    run.mark()
    control = [manifest(kind, "control", ns) for kind in KINDS]
    run.apply_all([*control, *denied, *missing])
    row = run.result("invalid + AccessDenied left alone", "", size.timeout)
    row.faults = "ValidationException, missing dependency, AccessDenied (1 of each per kind)"
    row.resources = len(invalid) + retrying + len(control)
    row.bound = (
        f"{window_calls} calls in {size.window:g}s from {len(invalid) + retrying} failing objects "
        f"(bound {limit}): {per_hour:.0f}/h at drift {DRIFT:g}s = {per_hour * DRIFT / 300:.0f}/h at the "
        f"default 300s"
    )
    row.bound_held = window_calls <= limit and validation_calls == 0
    row.notes.append(f"ValidationException objects made {validation_calls} calls in the window (must be 0)")
    return row


# ---------------------------------------------------------------------------------------------------
# Drift: out-of-band change and deletion


def _oob_change(run: Run, obj: dict[str, Any]) -> None:
    facts = facts_of(obj)
    facts.change_by_hand(run.client(facts.info.service), (run.get(obj) or {}).get("status", {}))


def _oob_delete(run: Run, obj: dict[str, Any]) -> None:
    facts = facts_of(obj)
    facts.delete_by_hand(run.client(facts.info.service), (run.get(obj) or {}).get("status", {}))


def drift(run: Run, size: Size, mode: str = "list") -> Result:
    """Out-of-band change on half the objects and out-of-band deletion of the other half, through boto3
    as a user would; corrected (or recreated) within the drift interval (found by a List sweep in list
    mode, by each object's drift check in object mode)."""
    since = time.monotonic()
    ns = run.namespace("drift")
    objs = objects(run, ns, "d", size.per_kind)
    run.apply_all(objs)
    found, _ = run.converge(size.timeout)
    if not found.clean:
        row = run.result(f"out-of-band change/deletion ({mode} mode)", "none yet", 1)
        row.problems.append(f"did not converge before the out-of-band changes: {found.summary()}")
        return row
    time.sleep(1.0)  # the plugin builds are READY in AWS, not only in status
    for i, obj in enumerate(objs):
        (_oob_change if i % 2 == 0 else _oob_delete)(run, obj)
    changed_at = time.monotonic()
    row = run.result(f"out-of-band change/deletion ({mode} mode)", "", size.timeout)
    limit = 2 * DRIFT + 10
    row.faults = f"{len(objs[::2])} changed, {len(objs[1::2])} deleted in AWS"
    row.bound = f"corrected within 2xdrift({DRIFT:g}s)+10s = {limit:g}s; calls ≤ 3xmin + drift checks"
    took = time.monotonic() - changed_at
    minimum = minimum_calls(objs) * 2
    allowance = drift_allowance(objs, time.monotonic() - since)
    row.bound_held = took <= limit and row.aws_calls <= 3 * minimum + allowance
    row.notes.append(f"corrected {took:.1f}s after the out-of-band changes")
    return row


# ---------------------------------------------------------------------------------------------------
# Deletion edge cases


def deletion_edges(run: Run, size: Size) -> Result:
    """AWS resource already gone, delete failing for a while, Retain policy, and a namespace with many
    objects deleted at once."""
    ns = run.namespace("del")
    gone = [manifest(kind, "gone", ns) for kind in KINDS]
    failing = [manifest(kind, "faildel", ns) for kind in KINDS]
    retain = [manifest(kind, "retain", ns, deletionPolicy="Retain") for kind in KINDS]
    doomed_ns = run.namespace("doomed")
    doomed = objects(run, doomed_ns, "n", size.namespace_objects)
    run.apply_all([*gone, *failing, *retain, *doomed])
    found, _ = run.converge(size.timeout)
    if not found.clean:
        row = run.result("deletion edge cases", "", 1)
        row.problems.append(f"did not converge before deleting: {found.summary()}")
        return row
    time.sleep(1.0)
    # Already gone in AWS, then deleted in Kubernetes before any drift check.
    for obj in gone:
        _oob_delete(run, obj)
    run.delete(gone)
    # Delete failing for a while: a failed delete build where the kind builds (DeleteFailed shown),
    # 500s on delete elsewhere.
    run.configure(**merged_settings(*(facts_of(o).failing_delete("faildel") for o in failing)))
    run.delete(failing)
    shown = [o for o in failing if facts_of(o).delete_failed_reason]
    reported = run.wait(
        "DeleteFailed shown",
        lambda: all(
            any(
                c.get("reason") == "DeleteFailed"
                for c in ((run.get(o) or {}).get("status") or {}).get("conditions", [])
            )
            for o in shown
        ),
        timeout=60,
        interval=0.3,
    )
    run.configure(**merged_settings(*(facts_of(o).failing_delete_reset for o in failing)))
    # Retain: released at once, the AWS resources stay and are nobody's orphans.
    for obj in retain:
        live = run.get(obj) or {}
        status = live.get("status", {})
        run.allowed.add(str(status.get(ref_field(obj))))
    run.delete(retain)
    # The namespace.
    for obj in doomed:
        run.expectations.pop((obj["kind"], doomed_ns, obj["metadata"]["name"]), None)
    run.delete(doomed)
    run.box.kubectl("delete", "namespace", doomed_ns, "--wait=false")
    row = run.result("deletion edge cases", "", size.timeout)
    try:
        run.wait("the namespace to go", lambda: _namespace_gone(run, doomed_ns), timeout=30, interval=0.5)
    except Exception:
        row.stuck += 1
        row.problems.append(f"namespace {doomed_ns} still Terminating")
    kept = {r.id for r in aws_resources(run.state())}
    lost = sorted(run.allowed - kept)
    if lost:
        row.problems.append(f"Retain-policy resources deleted: {lost}")
    row.faults = (
        f"{len(gone)} gone in AWS first, {len(failing)} delete failing "
        f"(DeleteFailed shown: {bool(reported)}), "
        f"{len(retain)} Retain, namespace with {len(doomed)}"
    )
    row.bound = "every finalizer released; Retain-policy resources kept"
    return row


def _namespace_gone(run: Run, name: str) -> bool:
    try:
        run.box.kube("GET", f"/api/v1/namespaces/{name}")
    except urllib.error.HTTPError as error:
        return error.code == 404
    return False


# ---------------------------------------------------------------------------------------------------
# Operator down


def operator_down(run: Run, size: Size) -> Result:
    """While the operator is down, objects are created, changed and deleted; it comes back and converges."""
    since = time.monotonic()
    ns = run.namespace("down")
    first = objects(run, ns, "a", size.per_kind)
    run.apply_all(first)
    found, _ = run.converge(size.timeout)
    if not found.clean:
        row = run.result("operator down", "", 1)
        row.problems.append(f"did not converge before going down: {found.summary()}")
        return row
    run.kill_operator()
    down_at = time.monotonic()
    fresh = objects(run, ns, "z", size.per_kind)
    run.apply_all(fresh)
    run.apply_all([changed(o) for o in first[::2]])
    run.delete(first[1::2])
    time.sleep(2.0)
    run.mark()  # converging is timed from the restart (the operator's start-up included)
    down = time.monotonic() - down_at
    run.start_operator()
    row = run.result("operator down", "", size.timeout)
    row.faults = (
        f"down {down:.0f}s: {len(fresh)} created, {len(first[::2])} changed, "
        f"{len(first[1::2])} deleted meanwhile"
    )
    every = [*first, *fresh]
    calls_bound(row, run, minimum_calls(every) * 2, 3, every, since)
    return row


# ---------------------------------------------------------------------------------------------------
# Two namespaces, one name


def name_clash(run: Run, size: Size) -> Result:
    """Two namespaces ask for the same connector label, plugin name (same application) and library item
    (same instance, app and version). The first keeps its connector and item, the second is refused;
    each gets its own plugin; deleting the refused objects touches nothing of the first's."""
    first_ns, second_ns = run.namespace("one"), run.namespace("two")

    def pair(namespace: str, name: str = "same", label: str = "shared") -> list[dict[str, Any]]:
        """One object of each kind asking for the kind's shared resource (tests/kinds.py's Clash)."""
        return [manifest(facts.kind, name, namespace, **facts.clash.spec(label)) for facts in TEST_KINDS]

    first = pair(first_ns)
    run.apply_all(first)
    found, _ = run.converge(size.timeout)
    if not found.clean:
        row = run.result("same name, two namespaces", "", 1)
        row.problems.append(f"the first namespace did not converge: {found.summary()}")
        return row
    before = {o["kind"]: _ref(run, o) for o in first}
    second = pair(second_ns)
    for obj in second:
        run.apply(obj, expect=facts_of(obj).clash.second)
    row = run.result("same name, two namespaces", "", size.timeout)
    after = {o["kind"]: _ref(run, o) for o in first}
    if before != after:
        row.problems.append(f"the first namespace's refs changed: {before} -> {after}")
    # The refused ones go; the first's resources must stay.
    run.delete([o for o in second if facts_of(o).clash.second != "Ready"])
    # Two more namespaces ask for the same names at the same moment: one wins, the other is refused.
    racers = [pair(ns, "race", "raced") for ns in (run.namespace("ra"), run.namespace("rb"))]
    run.apply_all([*racers[0], *racers[1]], expect="Ready|AlreadyExists|OwnedByAnother")
    found, _ = run.converge(60)
    if not found.clean:
        row.problems.append(f"after the race or deleting the refused objects: {found.summary()}")
        row.duplicates += len(found.duplicates)
        row.stuck += len(found.stuck)
        row.orphans += len(found.orphans)
    row.aws_calls = run.operator_calls()
    for a, b in zip(*racers, strict=True):
        winners = [o for o in (a, b) if condition(run.get(o) or {}, "Ready", "True")]
        wanted = facts_of(a).clash.winners  # how many may win, per kind (tests/kinds.py)
        if len(winners) not in wanted:
            row.problems.append(f"{a['kind']} race: {len(winners)} Ready, expected {wanted}")
    row.resources = len(first) + len(second) + 2 * len(racers[0])
    row.faults = "same label / plugin name / library item in 2 namespaces, one after the other and at once"
    row.bound = "second connector and item refused; two distinct plugins"
    return row


# ---------------------------------------------------------------------------------------------------
# Two AWS accounts: namespaces bound to roles (engine/identity.py)

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/q-operator-tenant-a"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/q-operator-tenant-b"
EXTERNAL_ID_B = "team-b-7f3e"
#: How long the roles' credentials live: renewed several times during the scenario.
CREDENTIAL_SECONDS = 20.0
TWO_ACCOUNTS_AWS_ARGS = (
    "--assumable-role",
    ROLE_A,
    "--assumable-role",
    f"{ROLE_B}:{EXTERNAL_ID_B}",
    "--credential-lifetime",
    f"{CREDENTIAL_SECONDS:g}",
)


def two_accounts(run: Run, size: Size) -> Result:
    """Two namespaces bound to roles in two accounts ask for the very same objects (names and specs,
    so the same natural keys): each account holds its own resource of every object, each status
    names its account. The roles' credentials live 20 s and are renewed while the objects are
    created (with a kill -9 in the create window), changed and, in one namespace, deleted; the other
    namespace's objects stay. No reconcile may fail on an expired token. "converged in" counts from
    the second round of changes."""
    since = time.monotonic()
    bindings = {
        ACCOUNT_A: {"q-operator.dev/role-arn": ROLE_A},
        ACCOUNT_B: {"q-operator.dev/role-arn": ROLE_B, "q-operator.dev/external-id": EXTERNAL_ID_B},
    }
    account_of_ns = {run.namespace(f"acct{account[0]}", ann): account for account, ann in bindings.items()}

    def same(namespace: str) -> list[dict[str, Any]]:
        """One namespace's objects: the same names and specs in every namespace."""
        return [
            build(facts.info, f"m{i}", namespace, facts.spec(f"m{i}", "two-accounts"), {})
            for facts in TEST_KINDS
            for i in range(size.per_kind)
        ]

    per_ns = {ns: same(ns) for ns in account_of_ns}
    every = [o for objs in per_ns.values() for o in objs]
    hit = crash_window_kill(run, lambda: run.apply_all(every), lambda: len(aws_resources(run.state())) > 0)
    run.settle("the creates in two accounts", size.timeout)
    # Two rounds of changes, one credential lifetime apart: they go out with renewed credentials.
    for round_ in (1, 2):
        time.sleep(max(0.0, round_ * CREDENTIAL_SECONDS - (time.monotonic() - since)))
        run.apply_all([changed(o, round_) for o in every])
        run.mark()
        if round_ == 1:
            run.settle("the first changes", size.timeout)
    row = run.result("two accounts, same names", "", size.timeout)
    wrong = [
        f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}: {account}"
        for o in every
        if (account := ((run.get(o) or {}).get("status") or {}).get("accountId"))
        != account_of_ns[o["metadata"]["namespace"]]
    ]
    row.problems += [f"status names the wrong account: {w}" for w in wrong]
    counts = {a: sum(1 for r in aws_resources(run.state()) if r.account == a) for a in bindings}
    if counts != {a: len(per_ns[ns]) for ns, a in account_of_ns.items()}:
        row.problems.append(f"resources per account: {counts}, expected {len(every) // 2} in each")
    # One namespace's objects go; the other's stay, untouched.
    gone_ns, kept_ns = list(account_of_ns)
    run.delete(per_ns[gone_ns])
    found, _ = run.converge(size.timeout)
    if not found.clean:
        row.problems.append(f"after deleting one namespace's objects: {found.summary()}")
        row.duplicates += len(found.duplicates)
        row.orphans += len(found.orphans)
        row.stuck += len(found.stuck)
    left = {a: sum(1 for r in aws_resources(run.state()) if r.account == a) for a in bindings}
    if left != {account_of_ns[gone_ns]: 0, account_of_ns[kept_ns]: len(per_ns[kept_ns])}:
        row.problems.append(f"after deleting {gone_ns}'s objects, resources per account: {left}")
    row.aws_calls = run.operator_calls()
    log = run.requests()
    renewals = sum(1 for r in log if r.get("operation") == "AssumeRole" and r.get("status") == 200)
    expired = sum(1 for r in log if r.get("error") == "ExpiredTokenException")
    failed = [
        e
        for ns in account_of_ns
        for e in run.box.kube("GET", f"/api/v1/namespaces/{ns}/events").get("items", [])
        if e.get("type") == "Warning" and e.get("reason") == "CredentialsInvalid"
    ]
    if failed:
        row.problems.append(f"{len(failed)} reconciles failed on credentials: {failed[0].get('message')}")
    row.resources = len(every)
    row.faults = (
        f"2 accounts, credentials live {CREDENTIAL_SECONDS:g}s ({renewals} AssumeRole), "
        f"kill -9 in the create window ({'hit' if hit else 'missed'})"
    )
    elapsed = time.monotonic() - since
    assume_allowance = 2 * (math.ceil(elapsed / (CREDENTIAL_SECONDS * 2 / 3)) + 2)
    minimum = minimum_calls(every) * 3  # created, then changed twice
    allowance = drift_allowance(every, elapsed)
    limit = 3 * minimum + allowance + assume_allowance
    row.bound = (
        f"calls ≤ 3xmin({minimum}) + drift checks({allowance}) + renewals({assume_allowance}) = {limit}"
    )
    row.bound_held = row.aws_calls <= limit
    row.notes.append(
        f"{renewals} AssumeRole calls in {elapsed:.0f}s for 2 roles; {expired} ExpiredToken answers "
        f"(each renewed and resent); {len(failed)} reconciles failed on credentials"
    )
    if not hit:
        row.problems.append("the kill -9 missed the create window")
    return row


def _ref(run: Run, obj: dict[str, Any]) -> str:
    status = (run.get(obj) or {}).get("status", {})
    return str(status.get(ref_field(obj)))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("baseline", "none", baseline),
    Scenario("kill9", "kill -9", kill9),
    Scenario("throttle", "50% throttled", throttle_half),
    Scenario("ratelimit", "hard rate limit", rate_limit),
    Scenario("faults", "5xx + latency", faults_5xx),
    Scenario("nohotloop", "terminal + access denied", no_hot_loop),
    # List mode (the default): one List sweep per parent finds the changes; object mode: each object's
    # own drift check does.
    Scenario("drift", "out-of-band", drift, {"Q_OPERATOR_OBSERVE_MODE": "list"}),
    Scenario(
        "drift-object", "out-of-band", partial(drift, mode="object"), {"Q_OPERATOR_OBSERVE_MODE": "object"}
    ),
    Scenario("deletion", "deletion edge cases", deletion_edges),
    Scenario("down", "operator down", operator_down),
    Scenario("clash", "same names", name_clash),
    # On the real kube-apiserver: faults of the control plane itself.
    Scenario("apiserver-creates", "kube-apiserver down", apiserver_down_creates, world=RealServerRun),
    Scenario("apiserver-deletes", "kube-apiserver down", apiserver_down_deletes, world=RealServerRun),
    Scenario("compaction", "etcd compacted, 410 Gone", compaction_410, world=CompactionRun),
    Scenario("accounts", "two AWS accounts", two_accounts, aws_args=TWO_ACCOUNTS_AWS_ARGS),
    Scenario(
        "lag",
        "read lag + kill -9",
        consistency.read_lag,
        consistency.OPERATOR_ENV,
        consistency.LAG_ARGS,
    ),
    Scenario(
        "lost",
        "lost answers",
        consistency.lost_answers,
        consistency.OPERATOR_ENV,
        consistency.LOST_ARGS,
    ),
    Scenario(
        "lagged-lost",
        "read lag + lost answers + throttling",
        consistency.lagged_lost_throttled,
        consistency.OPERATOR_ENV,
        (*consistency.LAG_ARGS, *consistency.LOST_ARGS),
    ),
)
