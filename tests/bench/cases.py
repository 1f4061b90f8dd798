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
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from q_operator.sandbox import Sandbox
from tests.bench.harness import (
    CallStats,
    ProcSample,
    ProcSampler,
    ReadyWatch,
    aws_calls,
    aws_state,
    create_namespace,
    create_objects,
    gvp_of,
    kube_calls,
    list_objects,
    quantiles,
    wait_quiet,
)
from tests.e2e.helpers import APPFLOWCONNECTORS, QLIBRARYITEMS, QPLUGINS, qplugin

BUILD_SECONDS = 5.0

#: Requests per second the AWS stand-in allows, per operation (and region), as AWS's service quotas do.
AWS_LIMITS: dict[str, float] = {
    "qbusiness:CreatePlugin": 10,
    "qbusiness:GetPlugin": 20,
    "qbusiness:ListTagsForResource": 20,
    "qbusiness:ListPlugins": 10,
    "qbusiness:UpdatePlugin": 10,
    "qbusiness:DeletePlugin": 10,
    "qbusiness:TagResource": 10,
    "qbusiness:UntagResource": 10,
    "qapps:CreateLibraryItem": 10,
    "qapps:GetLibraryItem": 20,
    "qapps:ListLibraryItems": 10,
    "qapps:UpdateLibraryItem": 10,
    "qapps:DeleteLibraryItem": 10,
    "appflow:RegisterConnector": 10,
    "appflow:DescribeConnector": 20,
    "appflow:ListTagsForResource": 20,
    "appflow:TagResource": 10,
    "appflow:UnregisterConnector": 10,
}
CREATE_OPS = {
    QPLUGINS: "CreatePlugin",
    QLIBRARYITEMS: "CreateLibraryItem",
    APPFLOWCONNECTORS: "RegisterConnector",
}
SERVICE = {QPLUGINS: "qbusiness", QLIBRARYITEMS: "qapps", APPFLOWCONNECTORS: "appflow"}
#: The fewest AWS calls one object can converge with: its create (and tags where they are a separate
#: call) plus one observe that sees it ready (a plugin's observe is GetPlugin + ListTagsForResource).
MIN_CALLS = {QPLUGINS: 3, QLIBRARYITEMS: 2, APPFLOWCONNECTORS: 4}
#: AWS calls of one observe (a drift check) per kind.
OBSERVE_CALLS = {QPLUGINS: 2, QLIBRARYITEMS: 1, APPFLOWCONNECTORS: 2}
INSTANCE_ID = "0f9a3c2e-1b4d-4c6e-8a7f-2d3e4f5a6b7c"
CATEGORY_ID = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"


def aws_args() -> list[str]:
    args = ["--build-seconds", str(BUILD_SECONDS)]
    for op, rate in AWS_LIMITS.items():
        args += ["--throttle", f"{op}={rate:g}"]
    return args


def create_rate(plural_path: str) -> float:
    return AWS_LIMITS[f"{SERVICE[plural_path]}:{CREATE_OPS[plural_path]}"]


def lower_bound(counts: Counter[str]) -> float:
    """Seconds AWS needs at least: the slowest kind's creates at its create rate, plus its build."""
    bounds = [n / create_rate(p) + (BUILD_SECONDS if p == QPLUGINS else 0.0) for p, n in counts.items() if n]
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


#: AWS allows 50 plugins per Q Business application (the stand-in too): spread them over applications.
PLUGINS_PER_APPLICATION = 25


def plugin_objects(namespace: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (QPLUGINS, qplugin(f"p{i:04d}", namespace, applicationId=_application(namespace, i)))
        for i in range(n)
    ]


def _application(namespace: str, index: int) -> str:
    seed = sum(namespace.encode()) << 16
    return str(uuid.UUID(int=(0xA0 << 120) + seed + index // PLUGINS_PER_APPLICATION))


def library_item_objects(namespace: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    items = []
    for i in range(n):
        body = {
            "apiVersion": "qapps.q-operator.dev/v1alpha1",
            "kind": "QLibraryItem",
            "metadata": {"name": f"li{i:04d}", "namespace": namespace},
            "spec": {
                "instanceId": INSTANCE_ID,
                "appId": str(uuid.UUID(int=(0xB0 << 120) + i, version=4)),
                "appVersion": 1,
                "categories": [CATEGORY_ID],
            },
        }
        items.append((QLIBRARYITEMS, body))
    return items


def connector_objects(namespace: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    items = []
    for i in range(n):
        body = {
            "apiVersion": "appflow.q-operator.dev/v1alpha1",
            "kind": "AppFlowConnector",
            "metadata": {"name": f"{namespace}-c{i:04d}", "namespace": namespace},
            "spec": {
                "connectorProvisioningType": "LAMBDA",
                "connectorProvisioningConfig": {
                    "lambda": {"lambdaArn": f"arn:aws:lambda:us-east-1:123456789012:function:conn-{i}"}
                },
            },
        }
        items.append((APPFLOWCONNECTORS, body))
    return items


# ----- measurements


def aws_ready_times(sandbox: Sandbox, namespace: str, plurals: Sequence[str]) -> dict[tuple[str, str], float]:
    """(plural, name) → when AWS had the object's resource ready (a plugin: its create + the build)."""
    state = aws_state(sandbox)
    plugins = {p["plugin_id"]: float(p["created_at"]) + BUILD_SECONDS for p in state["plugins"]}
    items = {i["library_item_id"]: float(i["created_at"]) for i in state["libraryItems"]}
    connectors = {c["label"]: float(c["registered_at"]) for c in state["connectors"]}
    found: dict[tuple[str, str], float] = {}
    for plural_path in plurals:
        plural = gvp_of(plural_path)[2]
        for obj in list_objects(sandbox, plural_path, namespace):
            status = obj.get("status") or {}
            name = obj["metadata"]["name"]
            at = (
                plugins.get(status.get("pluginId", ""))
                or items.get(status.get("libraryItemId", ""))
                or connectors.get(status.get("connectorLabel", ""))
            )
            if at is not None:
                found[(plural, name)] = at
    return found


def converge(
    sandbox: Sandbox,
    watch: ReadyWatch,
    sampler: ProcSampler,
    case: str,
    namespace: str,
    objects: Sequence[tuple[str, dict[str, Any]]],
    rss_target_mib: float | None = None,
    log: Callable[[str], None] = print,
) -> Result:
    """Apply the objects, wait until all are Ready, and measure: time vs bound, calls, delays, process."""
    result = Result(case)
    counts = Counter(p for p, _ in objects)
    n = len(objects)
    bound = lower_bound(counts)
    load_before = os.getloadavg()[0]
    create_namespace(sandbox, namespace)
    sampler.cut()
    started = time.time()
    posted = create_objects(sandbox, objects)
    log(f"  {case}: {n} objects posted in {posted:.1f}s; waiting for Ready (bound {bound:.1f}s)")
    timeout = max(90.0, 4 * bound)
    all_ready = watch.wait_ready(n, namespace, timeout)
    ready = watch.ready_times(namespace)
    last = max(ready.values(), default=time.time())
    elapsed = (last if all_ready else time.time()) - started
    sample = sampler.cut()
    result.add(
        "apply → all Ready" if all_ready else f"apply → {len(ready)}/{n} Ready (timed out)",
        elapsed,
        "s",
        bound,
        "ratio",
        1.2,
        note=f"bound = creates at {', '.join(f'{create_rate(p):g}/s' for p in counts)}"
        + (f" + {BUILD_SECONDS:g}s build" if QPLUGINS in counts else ""),
    )
    calls = aws_calls(sandbox, started, last + 0.5)
    minimum = sum(MIN_CALLS[p] * k for p, k in counts.items())
    result.add("AWS calls per object", calls.total / n, "", minimum / n, note="bound = the fewest calls")
    result.add("throttled share of calls", 100 * calls.throttle_share, "%", 1.0, "max")
    creates = sum(calls.by_operation().get(CREATE_OPS[p], 0) for p in counts) - sum(
        calls.throttled_by_operation().get(CREATE_OPS[p], 0) for p in counts
    )
    result.add("creates that reached AWS", creates, "", n, "eq")
    delays = [seen - at_aws for seen, at_aws in _pairs(sandbox, namespace, counts, ready)]
    q = quantiles(delays)
    result.add("AWS ready → Ready, median", q["median"], "s", 2.0, "max")
    result.add("AWS ready → Ready, p90", q["p90"], "s")
    result.add("AWS ready → Ready, max", q["max"], "s")
    if len(counts) > 1:
        for plural_path, k in counts.items():
            plural = gvp_of(plural_path)[2]
            times = [t for (p, _), t in ready.items() if p == plural]
            alone = lower_bound(Counter({plural_path: k}))
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
    sampler: ProcSampler,
    counts: Counter[str],
    created_at: float,
    drift_seconds: float,
    window: float,
    log: Callable[[str], None] = print,
) -> Result:
    """Everything Ready: AWS and Kubernetes calls per minute over `window` seconds, once every object's
    drift timer is past its first (spread) check, vs what the drift interval implies."""
    result = Result(f"steady state, {sum(counts.values())} Ready, drift {drift_seconds:g}s")
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
    implied = sum(OBSERVE_CALLS[p] * k for p, k in counts.items()) * 60.0 / drift_seconds
    result.add(
        "AWS calls per minute",
        calls.total * per_minute,
        "/min",
        implied,
        "ratio",
        1.1,
        note="bound = objects x observe calls x 60 / drift interval",
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
) -> tuple[Result, ProcSampler]:
    """Stop the operator, start it again over N Ready objects: time to watching, AWS calls resuming."""
    n = sum(counts.values())
    result = Result(f"restart with {n} Ready")
    sandbox.stop_operator()
    started = time.time()
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

    deadline = time.monotonic() + 60
    watch_at = watching()
    while watch_at is None and time.monotonic() < deadline:
        time.sleep(0.2)
        watch_at = watching()
    result.add("start → liveness answers", live, "s")
    result.add("start → watching every kind", (watch_at or time.time()) - started, "s")
    last = wait_quiet(sandbox, started, quiet=8.0, cap=240.0, first_within=60.0)
    calls: CallStats = aws_calls(sandbox, started, last + 0.001)
    creates = sum(calls.by_operation().get(op, 0) for op in CREATE_OPS.values())
    result.add("AWS calls resuming", calls.total, "", note=f"over {calls.span():.0f}s")
    result.add("AWS calls resuming per object", calls.total / n if n else 0.0)
    result.add("creates while resuming", creates, "", 0, "eq")
    result.add("throttled share of calls", 100 * calls.throttle_share, "%", 1.0, "max")
    peak = calls.peak_per_second()
    busiest = max((k / AWS_LIMITS.get(_limit_key(op), math.inf) for op, k in peak.items()), default=0.0)
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
    result.add_process(sampler.cut(), 200.0)
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
