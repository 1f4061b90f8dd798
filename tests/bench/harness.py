"""The measuring instruments of the benchmark: everything is read from outside the operator.

- `ReadyWatch` keeps a watch open on each kind and stamps the moment each object first shows
  Ready=True for its generation (millisecond wall-clock time, unlike lastTransitionTime's seconds).
- `ProcSampler` samples the operator's RSS and CPU time with psutil.
- `AwsLog` / `KubeLog` read the stand-ins' request logs (every call, with its time and outcome).
- `create_objects` POSTs manifests straight to the Kubernetes API from a few threads: the load
  arrives as fast as a `kubectl apply -f dir/` of many objects would, without kubectl per object.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil

from q_operator.sandbox import Sandbox, SandboxError, wait_for

#: (group, version, plural) of a custom resource
Gvp = tuple[str, str, str]


def gvp_of(plural_path: str) -> Gvp:
    group_version, plural = plural_path.rsplit("/", 1)
    group, version = group_version.split("/")
    return group, version, plural


class ReadyWatch:
    """A cluster-wide watch per kind; records when each object is first seen Ready for its generation."""

    def __init__(self, kube_url: str, kinds: Iterable[Gvp]) -> None:
        parsed = urllib.parse.urlsplit(kube_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.ready: dict[tuple[str, str, str], float] = {}
        self.seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._connections: list[http.client.HTTPConnection] = []
        self._threads = [
            threading.Thread(target=self._run, args=(gvp,), daemon=True, name=f"watch-{gvp[2]}")
            for gvp in kinds
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, gvp: Gvp) -> None:
        group, version, plural = gvp
        path = f"/apis/{group}/{version}/{plural}?watch=true&timeoutSeconds=3600"
        while not self._stopping:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=3600)
            self._connections.append(conn)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                while not self._stopping:
                    line = response.readline()
                    if not line:
                        break
                    if line.strip():
                        self._event(plural, json.loads(line))
            except (OSError, http.client.HTTPException, ValueError, AttributeError):
                # AttributeError: http.client's chunked reader when close() races a readline
                if self._stopping:
                    return
                time.sleep(0.2)
            finally:
                conn.close()

    def _event(self, plural: str, event: Mapping[str, Any]) -> None:
        now = time.time()
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        key = (plural, str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self._lock:
            self.seen.setdefault(key, now)
            if key in self.ready or event.get("type") == "DELETED":
                return
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if (
                    cond.get("type") == "Ready"
                    and cond.get("status") == "True"
                    and cond.get("observedGeneration") in (None, meta.get("generation"))
                ):
                    self.ready[key] = now

    def count_ready(self, namespace: str | Sequence[str] | None = None) -> int:
        """Objects seen Ready in `namespace` (a name or several; None: everywhere)."""
        wanted = {namespace} if isinstance(namespace, str) else None if namespace is None else set(namespace)
        with self._lock:
            return sum(1 for k in self.ready if wanted is None or k[1] in wanted)

    def wait_ready(self, expected: int, namespace: str | Sequence[str], timeout: float) -> bool:
        """Wait (bounded) until `expected` objects of `namespace` (one or several) are Ready."""
        try:
            wait_for(
                f"{expected} Ready in {namespace}",
                lambda: self.count_ready(namespace) >= expected,
                timeout=timeout,
                interval=0.1,
            )
        except SandboxError:
            return False
        return True

    def ready_times(self, namespace: str) -> dict[tuple[str, str], float]:
        """(plural, name) → the wall-clock time it was first seen Ready."""
        with self._lock:
            return {(k[0], k[2]): t for k, t in self.ready.items() if k[1] == namespace}

    def close(self) -> None:
        self._stopping = True
        for conn in self._connections:
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(2)
            except OSError:
                pass
            conn.close()


@dataclass
class ProcSample:
    rss_peak: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_end - self.cpu_start


class ProcSampler:
    """Samples the operator process (RSS, user+system CPU) every 0.2 s on a background thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.current = ProcSample(cpu_start=self._cpu())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")
        self._thread.start()

    def _cpu(self) -> float:
        try:
            times = self.process.cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return self.current.cpu_end if hasattr(self, "current") else 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = int(self.process.memory_info().rss)
            except psutil.Error:
                return
            self.current.rss_peak = max(self.current.rss_peak, rss)
            self.current.cpu_end = self._cpu()

    def cut(self) -> ProcSample:
        """End the current measurement and start the next one; returns the finished one."""
        done = self.current
        done.cpu_end = self._cpu()
        with contextlib.suppress(psutil.Error):
            done.rss_peak = max(done.rss_peak, int(self.process.memory_info().rss))
        self.current = ProcSample(cpu_start=done.cpu_end)
        return done

    def close(self) -> ProcSample:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.cut()


class ProcGroup:
    """Several operator processes (namespace-sharded releases) sampled as one: CPU summed, RSS the
    peak of the largest (what each release's memory limit must hold)."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.samplers = [ProcSampler(pid) for pid in pids]

    @staticmethod
    def _combined(samples: Sequence[ProcSample]) -> ProcSample:
        return ProcSample(
            rss_peak=max(s.rss_peak for s in samples),
            cpu_start=sum(s.cpu_start for s in samples),
            cpu_end=sum(s.cpu_end for s in samples),
        )

    def cut(self) -> ProcSample:
        return self._combined([s.cut() for s in self.samplers])

    def close(self) -> ProcSample:
        return self._combined([s.close() for s in self.samplers])


def is_throttle(entry: Mapping[str, Any]) -> bool:
    return str(entry.get("error") or "").startswith("ThrottlingException")


@dataclass
class CallStats:
    """What a slice of the AWS call log says: calls per operation, throttles, the busiest second."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.calls)

    @property
    def throttled(self) -> int:
        return sum(1 for c in self.calls if is_throttle(c))

    @property
    def throttle_share(self) -> float:
        return self.throttled / self.total if self.total else 0.0

    def by_operation(self) -> dict[str, int]:
        return dict(Counter(str(c.get("operation")) for c in self.calls).most_common())

    def throttled_by_operation(self) -> dict[str, int]:
        return dict(Counter(str(c.get("operation")) for c in self.calls if is_throttle(c)).most_common())

    def peak_per_second(self) -> dict[str, int]:
        """Per operation, the most calls that landed in one wall-clock second."""
        buckets: dict[str, Counter[int]] = defaultdict(Counter)
        for c in self.calls:
            buckets[str(c.get("operation"))][int(float(c.get("time", 0)))] += 1
        return {op: max(b.values()) for op, b in buckets.items()}

    def span(self) -> float:
        if not self.calls:
            return 0.0
        times = [float(c["time"]) for c in self.calls]
        return max(times) - min(times)


def aws_calls(sandbox: Sandbox, start: float, end: float | None = None) -> CallStats:
    log: list[dict[str, Any]] = sandbox.aws_requests()
    return CallStats(
        [c for c in log if float(c.get("time", 0)) >= start and (end is None or float(c["time"]) < end)]
    )


def kube_calls(sandbox: Sandbox, start: float, end: float | None = None) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = sandbox.kube("GET", "/_emulator/requests")
    return [c for c in log if float(c.get("time", 0)) >= start and (end is None or float(c["time"]) < end)]


def create_namespace(sandbox: Sandbox, name: str) -> None:
    sandbox.kube(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


def create_objects(sandbox: Sandbox, items: Sequence[tuple[str, dict[str, Any]]], threads: int = 8) -> float:
    """POST every (plural_path, manifest) to the API server; returns the seconds it took."""

    def post(item: tuple[str, dict[str, Any]]) -> None:
        plural_path, body = item
        group, version, plural = gvp_of(plural_path)
        namespace = body["metadata"]["namespace"]
        sandbox.kube("POST", f"/apis/{group}/{version}/namespaces/{namespace}/{plural}", body)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(post, items):
            pass
    return time.monotonic() - started


def list_objects(sandbox: Sandbox, plural_path: str, namespace: str) -> list[dict[str, Any]]:
    group, version, plural = gvp_of(plural_path)
    found = sandbox.kube("GET", f"/apis/{group}/{version}/namespaces/{namespace}/{plural}")
    items: list[dict[str, Any]] = found.get("items", [])
    return items


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """median, p90 and max (0s when empty)."""
    if not values:
        return {"median": 0.0, "p90": 0.0, "max": 0.0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p90": p90, "max": ordered[-1]}


def wait_quiet(sandbox: Sandbox, since: float, quiet: float, cap: float, first_within: float) -> float:
    """Wait until the AWS stand-in, having received a call after `since`, has had none for `quiet`
    seconds (at most `cap` s after `since`; when no call comes within `first_within` s, stop waiting).
    Returns the time of the last call seen (or `since`)."""
    seen: list[float] = []

    def went_quiet() -> float | None:
        times = [float(c["time"]) for c in sandbox.aws_requests() if float(c.get("time", 0)) >= since]
        seen[:] = times
        now = time.time()
        if times and now - max(times) >= quiet:
            return max(times)
        if not times and now - since >= first_within:
            return since
        return None

    try:
        return wait_for("the AWS calls to stop", went_quiet, timeout=since + cap - time.time(), interval=1.0)
    except SandboxError:  # still busy at the cap: measure up to the last call seen
        if not seen:
            went_quiet()
        return max(seen, default=since)
