"""The benchmark's cases. Each returns a `Result`: named figures, each with its bound or target.

The AWS stand-in enforces `AWS_LIMITS` (calls per second per operation, a token bucket with a burst of
one second's worth) and a plugin build of `BUILD_SECONDS`. The lower bound on converging N objects is
what those allow: creates at the create rate, the last one then builds. Library items and connectors
have no build; a mix is bound by its slowest kind.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from q_operator.sandbox import Sandbox, SandboxError, condition, wait_for
from tests.bench.harness import (
    CallStats,
    ProcGroup,
    ProcSample,
    ProcSampler,
    ReadyWatch,
    aws_calls,
    create_namespace,
    create_objects,
    gvp_of,
    kube_calls,
    list_objects,
    quantiles,
    wait_quiet,
)
from tests.kinds import TEST_KINDS, KindFacts

BUILD_SECONDS = 5.0
#: the operator's default Q_OPERATOR_FULL_CHECK_SECONDS (list mode's per-object look at tags)
FULL_CHECK_SECONDS = 3600.0

#: Requests per second the AWS stand-in allows, per operation (and region), as AWS's service quotas do
#: (each kind's quotas are in tests/kinds.py).
AWS_LIMITS: dict[str, float] = {op: rate for facts in TEST_KINDS for op, rate in facts.quotas.items()}
#: The kinds by the plural path the bench keys its objects with.
BY_PATH: dict[str, KindFacts] = {facts.plural_path: facts for facts in TEST_KINDS}


def aws_args(limits: Mapping[str, float] | None = None, extra: Sequence[str] = ()) -> list[str]:
    args = ["--build-seconds", str(BUILD_SECONDS), *extra]
    for op, rate in (AWS_LIMITS if limits is None else limits).items():
        args += ["--throttle", f"{op}={rate:g}"]
    return args


def scaled_limits(create: float) -> dict[str, float]:
    """The bench's limits with every create at `create`/s: the reads an object needs (about two per
    create) at twice that, the other calls at least that, none below the bench's own."""
    limits = dict(AWS_LIMITS)
    for facts in TEST_KINDS:
        for op, rate in facts.quotas.items():
            name = op.split(":", 1)[1]
            if name == facts.create_op:
                limits[op] = create
            elif name in facts.observe_ops:
                limits[op] = max(rate, 2 * create)
            else:
                limits[op] = max(rate, create)
    return limits


def create_rate(plural_path: str, limits: Mapping[str, float] | None = None) -> float:
    facts = BY_PATH[plural_path]
    return (AWS_LIMITS if limits is None else limits)[f"{facts.info.service}:{facts.create_op}"]


def lower_bound(counts: Counter[str], limits: Mapping[str, float] | None = None) -> float:
    """Seconds AWS needs at least: the slowest kind's creates at its create rate, plus its build."""
    bounds = [
        n / create_rate(p, limits) + (BUILD_SECONDS if BY_PATH[p].builds else 0.0)
        for p, n in counts.items()
        if n
    ]
    return max(bounds, default=0.0)


@dataclass
class Figure:
    name: str
    value: float
    unit: str = ""
    #: the bound or target this figure is compared with; None when it is for information
    bound: float | None = None
    #: "ratio" (value/bound ≤ target_ratio holds) or "max" (value ≤ bound holds) or "eq" (value == bound)
    check: str = ""
    target_ratio: float = 1.0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.bound is None or self.bound == 0:
            return None
        return self.value / self.bound

    @property
    def holds(self) -> bool | None:
        if self.bound is None or not self.check:
            return None
        if self.check == "ratio":
            return self.value <= self.bound * self.target_ratio
        if self.check == "eq":
            return self.value == self.bound
        return self.value <= self.bound


@dataclass
class Result:
    case: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def add_process(self, sample: ProcSample, rss_target_mib: float | None = None) -> None:
        self.add(
            "operator peak RSS",
            sample.rss_peak / 2**20,
            "MiB",
            rss_target_mib,
            "max" if rss_target_mib else "",
        )
        self.add("operator CPU", sample.cpu_seconds, "s")


# ----- manifests


def objects_of(facts: KindFacts, namespace: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The bench's `n` objects of one kind in `namespace`, as (plural path, manifest)."""
    found = []
    for i in range(n):
        name, spec = facts.bench_object(namespace, i)
        body = {
            "apiVersion": facts.info.api_version,
            "kind": facts.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        found.append((facts.plural_path, body))
    return found


def mix_objects(namespace: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """`n` objects shared evenly between the kinds (the last takes the remainder)."""
    share = n // len(TEST_KINDS)
    counts = [share] * (len(TEST_KINDS) - 1) + [n - share * (len(TEST_KINDS) - 1)]
    return [
        item for facts, k in zip(TEST_KINDS, counts, strict=True) for item in objects_of(facts, namespace, k)
    ]


# ----- measurements


def aws_ready_times(sandbox: Sandbox, namespace: str, plurals: Sequence[str]) -> dict[tuple[str, str], float]:
    """(plural, name) → when AWS had the object's resource ready (a plugin: its create + the build)."""
    state = sandbox.aws("GET", "/_emulator/state")
    ready_at = {
        (facts.kind, r.id): r.created_at + (BUILD_SECONDS if facts.builds else 0.0)
        for facts in TEST_KINDS
        for r in facts.resources(state)
    }
    found: dict[tuple[str, str], float] = {}
    for plural_path in plurals:
        plural = gvp_of(plural_path)[2]
        for obj in list_objects(sandbox, plural_path, namespace):
            status = obj.get("status") or {}
            name = obj["metadata"]["name"]
            facts = BY_PATH[plural_path]
            at = ready_at.get((facts.kind, str(status.get(facts.info.id_field, ""))))
            if at is not None:
                found[(plural, name)] = at
    return found


def converge(
    sandbox: Sandbox,
    watch: ReadyWatch,
    sampler: ProcSampler | ProcGroup,
    case: str,
    namespace: str | Sequence[str],
    objects: Sequence[tuple[str, dict[str, Any]]],
    rss_target_mib: float | None = None,
    log: Callable[[str], None] = print,
    limits: Mapping[str, float] | None = None,
) -> Result:
    """Apply the objects (in one namespace or several), wait until all are Ready, and measure: time
    vs bound, calls, delays, process."""
    result = Result(case)
    counts = Counter(p for p, _ in objects)
    n = len(objects)
    bound = lower_bound(counts, limits)
    load_before = os.getloadavg()[0]
    namespaces = [namespace] if isinstance(namespace, str) else list(namespace)
    for each in namespaces:
        create_namespace(sandbox, each)
    sampler.cut()
    started = time.time()
    posted = create_objects(sandbox, objects)
    log(f"  {case}: {n} objects posted in {posted:.1f}s; waiting for Ready (bound {bound:.1f}s)")
    timeout = max(90.0, 4 * bound)
    all_ready = watch.wait_ready(n, namespaces, timeout)
    readies = {each: watch.ready_times(each) for each in namespaces}
    ready = [(key[0], t) for times in readies.values() for key, t in times.items()]  # (plural, time)
    last = max((t for _, t in ready), default=time.time())
    elapsed = (last if all_ready else time.time()) - started
    sample = sampler.cut()
    result.add(
        "apply → all Ready" if all_ready else f"apply → {len(ready)}/{n} Ready (timed out)",
        elapsed,
        "s",
        bound,
        "ratio",
        1.2,
        note=f"bound = creates at {', '.join(f'{create_rate(p, limits):g}/s' for p in counts)}"
        + (f" + {BUILD_SECONDS:g}s build" if any(BY_PATH[p].builds for p in counts) else ""),
    )
    calls = aws_calls(sandbox, started, last + 0.5)
    minimum = sum(BY_PATH[p].min_create_calls * k for p, k in counts.items())
    result.add("AWS calls per object", calls.total / n, "", minimum / n, note="bound = the fewest calls")
    result.add("throttled share of calls", 100 * calls.throttle_share, "%", 1.0, "max")
    creates = sum(calls.by_operation().get(BY_PATH[p].create_op, 0) for p in counts) - sum(
        calls.throttled_by_operation().get(BY_PATH[p].create_op, 0) for p in counts
    )
    result.add("creates that reached AWS", creates, "", n, "eq")
    delays = [
        seen - at_aws for each in namespaces for seen, at_aws in _pairs(sandbox, each, counts, readies[each])
    ]
    q = quantiles(delays)
    result.add("AWS ready → Ready, median", q["median"], "s", 2.0, "max")
    result.add("AWS ready → Ready, p90", q["p90"], "s")
    result.add("AWS ready → Ready, max", q["max"], "s")
    if len(counts) > 1:
        for plural_path, k in counts.items():
            plural = gvp_of(plural_path)[2]
            times = [t for p, t in ready if p == plural]
            alone = lower_bound(Counter({plural_path: k}), limits)
            result.add(f"apply → last {plural} Ready", max(times, default=started) - started, "s", alone)
    result.add_process(sample, rss_target_mib)
    result.details = {
        "n": n,
        "kinds": dict(counts),
        "calls_by_operation": calls.by_operation(),
        "throttled_by_operation": calls.throttled_by_operation(),
        "peak_calls_per_second": calls.peak_per_second(),
        "delays_measured": len(delays),
        "all_ready": all_ready,
        "started": started,
        "last_ready": last,
        "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    return result


def _pairs(
    sandbox: Sandbox, namespace: str, counts: Counter[str], ready: dict[tuple[str, str], float]
) -> list[tuple[float, float]]:
    aws_ready = aws_ready_times(sandbox, namespace, list(counts))
    return [(t, aws_ready[key]) for key, t in ready.items() if key in aws_ready]


def steady_state(
    sandbox: Sandbox,
    sampler: ProcSampler | ProcGroup,
    counts: Counter[str],
    created_at: float,
    drift_seconds: float,
    window: float,
    log: Callable[[str], None] = print,
    mode: str = "list",
    full_check: float = FULL_CHECK_SECONDS,
) -> Result:
    """Everything Ready: AWS and Kubernetes calls per minute over `window` seconds, once every object's
    drift timer is past its first (spread) check, vs what the drift interval implies for per-object
    observes (object mode), or a twentieth of that (list mode: one List sweep per parent)."""
    result = Result(f"steady state, {sum(counts.values())} Ready, drift {drift_seconds:g}s, {mode} mode")
    # The first check of each object falls between half an interval and a full one after it was first
    # seen, and not before it has been quiet for a minute: from two intervals on, every timer is in
    # its steady phase and any window of W seconds holds N x W / interval checks.
    start = max(time.time(), created_at + 2 * drift_seconds)
    log(f"  steady state: measuring {window:g}s from +{start - time.time():.0f}s")
    time.sleep(max(0.0, start - time.time()))
    sampler.cut()
    time.sleep(window)
    end = time.time()
    sample = sampler.cut()
    per_minute = 60.0 / window
    calls = aws_calls(sandbox, start, end)
    implied = sum(BY_PATH[p].observe_calls * k for p, k in counts.items()) * 60.0 / drift_seconds
    if mode == "object":
        result.add(
            "AWS calls per minute",
            calls.total * per_minute,
            "/min",
            implied,
            "ratio",
            1.1,
            note="bound = objects x observe calls x 60 / drift interval",
        )
    else:
        full = sum(BY_PATH[p].observe_calls * k for p, k in counts.items()) * 60.0 / full_check
        result.add(
            "AWS calls per minute",
            calls.total * per_minute,
            "/min",
            implied / 20,
            "max",
            note="bound = a twentieth of objects x observe calls x 60 / drift interval",
        )
        result.add(
            "  + full checks, amortized",
            calls.total * per_minute + full,
            "/min",
            implied / 20,
            "max",
            note=f"+ objects x observe calls x 60 / {full_check:g} s (none fell in the window)",
        )
    result.add("throttled share of calls", 100 * calls.throttle_share, "%", 1.0, "max")
    kube = kube_calls(sandbox, start, end)
    verbs = Counter(
        f"{c.get('verb')} {c.get('resource')}{'/' + c['subresource'] if c.get('subresource') else ''}"
        for c in kube
    )
    writes = sum(1 for c in kube if c.get("verb") in ("create", "update", "patch", "delete"))
    result.add("Kubernetes API calls per minute", len(kube) * per_minute, "/min")
    result.add("Kubernetes writes per minute", writes * per_minute, "/min")
    result.add_process(sample)
    result.details = {
        "aws_by_operation": calls.by_operation(),
        "kube_by_verb": dict(verbs.most_common()),
        "window_seconds": window,
    }
    return result


def restart(
    sandbox: Sandbox,
    counts: Counter[str],
    env: dict[str, str],
    log: Callable[[str], None] = print,
    rss_target_mib: float = 200.0,
    shards: Sequence[Sequence[str]] = (),
    limits: Mapping[str, float] | None = None,
) -> tuple[Result, ProcSampler | ProcGroup]:
    """Stop the operator, start it again over N Ready objects: time to watching, AWS calls resuming.
    `shards`: the operator runs as these releases (each its own `q-operator run` options): all are
    stopped and started again. `limits`: the stand-in's limits, if not the default ones."""
    n = sum(counts.values())
    result = Result(f"restart with {n} Ready" + (f", {len(shards)} releases" if shards else ""))
    sandbox.stop_operators()
    started = time.time()
    sampler: ProcSampler | ProcGroup
    if shards:
        sampler = ProcGroup(sandbox.spawn_operator(*args, env=env).pid for args in shards)
    else:
        sandbox.start_operator(env=env)
        assert sandbox.operator is not None
        sampler = ProcSampler(sandbox.operator.pid)
    live = time.time() - started
    plurals = {gvp_of(p)[2] for p in counts}

    def watching() -> float | None:
        times: dict[str, float] = {}
        for c in kube_calls(sandbox, started):
            if c.get("verb") == "watch" and c.get("resource") in plurals:
                times.setdefault(str(c["resource"]), float(c["time"]))
        return max(times.values()) if len(times) == len(plurals) else None

    try:
        watch_at: float | None = wait_for("a watch on every kind", watching, timeout=60, interval=0.2)
    except SandboxError:
        watch_at = None
    result.add("start → liveness answers", live, "s")
    result.add("start → watching every kind", (watch_at or time.time()) - started, "s")
    last = wait_quiet(sandbox, started, quiet=8.0, cap=240.0, first_within=60.0)
    calls: CallStats = aws_calls(sandbox, started, last + 0.001)
    creates = sum(calls.by_operation().get(facts.create_op, 0) for facts in TEST_KINDS)
    result.add("AWS calls resuming", calls.total, "", note=f"over {calls.span():.0f}s")
    result.add("AWS calls resuming per object", calls.total / n if n else 0.0)
    result.add("creates while resuming", creates, "", 0, "eq")
    result.add("throttled share of calls", 100 * calls.throttle_share, "%", 1.0, "max")
    peak = calls.peak_per_second()
    allowed = limits if limits is not None else AWS_LIMITS
    busiest = max((k / allowed.get(_limit_key(op), math.inf) for op, k in peak.items()), default=0.0)
    result.add(
        "busiest second / the operation's limit",
        busiest,
        "",
        2.0,
        "max",
        note="AWS's bucket allows a second's burst on top of the rate: within limits is <= 2",
    )
    resume_writes = [
        c
        for c in kube_calls(sandbox, started, last + 0.001)
        if c.get("verb") in ("patch", "update", "create")
    ]
    result.add("Kubernetes writes while resuming", len(resume_writes), "")
    result.add_process(sampler.cut(), rss_target_mib)
    result.details = {
        "aws_by_operation": calls.by_operation(),
        "peak_calls_per_second": peak,
        "resume_seconds": last - started,
        "kube_writes": dict(Counter(f"{c.get('verb')} {c.get('resource')}" for c in resume_writes)),
    }
    return result, sampler


def _limit_key(operation: str) -> str:
    for key in AWS_LIMITS:
        if key.endswith(":" + operation):
            return key
    return operation


# ----- list mode against object mode, out-of-band changes


def _boto(sandbox: Sandbox, service: str) -> Any:
    """A boto3 client as a user's script makes one (not the operator's: no q-operator user agent)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=sandbox.aws_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def _by_operator(entry: Mapping[str, Any]) -> bool:
    return "q-operator/" in str(entry.get("userAgent", ""))


def out_of_band(
    sandbox: Sandbox,
    objects: Sequence[tuple[str, dict[str, Any]]],
    drift_seconds: float,
    log: Callable[[str], None] = print,
) -> Result:
    """Per kind, change one resource and delete another with boto3, as a user would; measure when the
    operator's corrective call (the update, the re-create) reached AWS, and when the object was Ready
    again. The bound is one drift interval plus 10 s."""
    result = Result(f"out-of-band update and deletion, drift {drift_seconds:g}s")
    picked: list[tuple[KindFacts, dict[str, Any], dict[str, Any]]] = []
    for plural_path in dict.fromkeys(p for p, _ in objects):
        facts = BY_PATH[plural_path]
        mine = [body for p, body in objects if p == plural_path][:2]
        live = [
            sandbox.get(plural_path, b["metadata"]["namespace"], b["metadata"]["name"]) or {} for b in mine
        ]
        if len(live) == 2:
            picked.append((facts, live[0], live[1]))
    began = time.time()
    for facts, changed, deleted in picked:
        client = _boto(sandbox, facts.info.service)
        facts.change_by_hand(client, changed["status"])
        facts.delete_by_hand(client, deleted["status"])
    log(f"  out of band: {len(picked)} kinds changed and deleted; bound {drift_seconds + 10:g}s")

    def corrective(requests: Sequence[Mapping[str, Any]], facts: KindFacts, operation: str) -> float | None:
        """When the operator's call of `operation` first reached AWS after the out-of-band calls."""
        for entry in requests:
            if (
                float(entry.get("time", 0)) >= began
                and entry.get("service") == facts.info.service
                and entry.get("operation") == operation
                and _by_operator(entry)
                and not entry.get("error")
            ):
                return float(entry["time"])
        return None

    def ready_again(state: Mapping[str, Any], facts: KindFacts, obj: dict[str, Any]) -> float | None:
        """Ready, and the resource its status names exists in AWS (the re-created one, after a delete)
        as the spec asks (the changed one, corrected)."""
        meta = obj["metadata"]
        live = sandbox.get(facts.plural_path, meta["namespace"], meta["name"]) or {}
        if not condition(live, "Ready", "True", current=True):
            return None
        resource = {r.id: r for r in facts.resources(state)}.get(str(live["status"].get(facts.info.id_field)))
        if resource is None or any(
            resource.fields.get(k) != v for k, v in facts.desired(live["spec"]).items()
        ):
            return None
        return time.time()

    # Every target is watched at once, so a slow one does not delay the times taken of the others.
    limit = drift_seconds + 10
    targets = [
        (facts, what, obj, operation)
        for facts, changed, deleted in picked
        for what, obj, operation in (
            (f"{facts.update_op} by hand", changed, facts.update_op),
            (f"{facts.delete_op} by hand", deleted, facts.create_op),
        )
    ]
    corrected_at: dict[int, float] = {}
    ready_at: dict[int, float] = {}
    deadline = began + 3 * limit
    while len(ready_at) < len(targets) and time.time() < deadline + 60:
        requests = sandbox.aws_requests()
        state = sandbox.aws("GET", "/_emulator/state")
        for i, (facts, _, obj, operation) in enumerate(targets):
            if i not in corrected_at and time.time() < deadline:
                at = corrective(requests, facts, operation)
                if at is not None:
                    corrected_at[i] = at
            if i in corrected_at and i not in ready_at:
                ready = ready_again(state, facts, obj)
                if ready is not None:
                    ready_at[i] = ready
        time.sleep(1.0)
    for i, (facts, what, obj, _) in enumerate(targets):
        if i not in corrected_at:
            result.add(
                f"{facts.kind}: {what} → corrected (timed out)", time.time() - began, "s", limit, "max"
            )
            continue
        found = _found_at(sandbox, obj)
        if found is not None:
            result.add(f"{facts.kind}: {what} → found by its sweep", found - began, "s", drift_seconds + 2)
        result.add(f"{facts.kind}: {what} → corrected in AWS", corrected_at[i] - began, "s", limit, "max")
        if i in ready_at:
            result.add(f"{facts.kind}: {what} → Ready again", ready_at[i] - began, "s")
        else:
            result.add(f"{facts.kind}: {what} → Ready again (timed out)", time.time() - began, "s")
    return result


def _found_at(sandbox: Sandbox, obj: Mapping[str, Any]) -> float | None:
    """When a sweep found the object's change (the q-operator.dev/drift-found annotation's time, to the
    second); None when no sweep set it (object mode, or its own drift check found it)."""
    meta = obj["metadata"]
    live = sandbox.get(
        BY_PATH[f"{obj['apiVersion']}/{_plural(obj)}"].plural_path, meta["namespace"], meta["name"]
    )
    value = ((live or {}).get("metadata", {}).get("annotations") or {}).get("q-operator.dev/drift-found")
    if not value:
        return None
    stamp = str(value).split(" ", 1)[0].replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def _plural(obj: Mapping[str, Any]) -> str:
    return next(f.info.plural for f in TEST_KINDS if f.kind == obj.get("kind"))


def observe_modes(
    sandbox: Sandbox,
    counts: Counter[str],
    created_at: float,
    drift_seconds: float,
    env: Mapping[str, str],
    log: Callable[[str], None] = print,
) -> tuple[list[Result], ProcSampler]:
    """Steady state in list mode (the running operator), then the same objects in object mode (the
    operator restarted with Q_OPERATOR_OBSERVE_MODE=object), in one run; their ratio."""
    assert sandbox.operator is not None
    sampler = ProcSampler(sandbox.operator.pid)
    listed = steady_state(sandbox, sampler, counts, created_at, drift_seconds, 2 * drift_seconds, log, "list")
    sampler.close()
    sandbox.stop_operator()
    restarted = time.time()
    sandbox.start_operator(env={**env, "Q_OPERATOR_OBSERVE_MODE": "object"})
    assert sandbox.operator is not None
    sampler = ProcSampler(sandbox.operator.pid)
    log("  restarted in object mode")
    each = steady_state(sandbox, sampler, counts, restarted, drift_seconds, drift_seconds, log, "object")
    ratio = Result(f"list mode against object mode, {sum(counts.values())} Ready, drift {drift_seconds:g}s")
    in_list = listed.figures[0].value
    in_object = each.figures[0].value
    ratio.add(
        "AWS calls per minute, list / object",
        in_list / in_object if in_object else 0.0,
        "",
        1 / 20,
        "max",
        note=f"{in_list:.0f}/min against {in_object:.0f}/min, measured in this run",
    )
    amortized = listed.figures[1].value
    ratio.add(
        "  with list mode's full checks amortized",
        amortized / in_object if in_object else 0.0,
        "",
        1 / 20,
        "max",
        note=f"{amortized:.0f}/min against {in_object:.0f}/min",
    )
    return [listed, each, ratio], sampler
