"""What every reliability scenario stands on: a fresh sandbox, manifests of every kind (tests/kinds.py),
and the audit that compares the AWS stand-in's state with the desired state.

A scenario drives the real `q-operator run` process against the AWS stand-in and a Kubernetes API
server (the stand-in here; a real kube-apiserver in realserver.py) through q_operator.sandbox, then
calls `Run.converge()`: it polls until every object is in the condition the scenario expects and the AWS
state holds exactly one resource per object (no duplicate, no orphan), or a deadline passes. The audit
itself (`audit()`) is a pure function of the Kubernetes objects and /_emulator/state, so the fast e2e
test and `python -m tests.reliability` judge by the same rules.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from q_operator.sandbox import Sandbox, SandboxError, condition, wait_for
from tests.kinds import ACCOUNT_ID, TEST_KINDS, AwsResource, aws_resources, facts_of

#: The kinds, by name, in the registry's order; their per-kind facts are in tests/kinds.py.
KINDS = tuple(facts.kind for facts in TEST_KINDS)
KIND_PATHS = {facts.kind: facts.plural_path for facts in TEST_KINDS}
OWNER_TAG = "q-operator.dev/owner"
FINALIZER = "q-operator.dev/finalizer"

#: Operator settings every scenario runs with: a short drift interval (the engine's floor is 10 s)
#: stands for the default 300 s, so "per hour" figures are compressed 30 times.
BASE_OPERATOR_ENV = {"Q_OPERATOR_DRIFT_SECONDS": "10", "Q_OPERATOR_LOG_LEVEL": "INFO"}
BUILD_SECONDS = "0.5"
#: Error codes that only the scenarios' fault injection produces.
FAULT_CODES = (
    "ThrottlingException",
    "InternalServerException",
    "AccessDeniedException",
    "ValidationException",
)


# ---------------------------------------------------------------------------------------------------
# Expectations and the audit


@dataclass(frozen=True)
class Expect:
    """How one object must end: Ready=True (reason None), Synced=False with `reason` (alternatives
    separated by |), or gone."""

    kind: str
    namespace: str
    name: str
    reason: str | None = None
    gone: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


@dataclass
class Audit:
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.orphans or self.stuck)

    def summary(self) -> str:
        parts = [f"{n}: {', '.join(v[:4])}" for n, v in vars(self).items() if v]
        return "; ".join(parts) or "clean"


def ref_field(obj_or_kind: Mapping[str, Any] | str) -> str:
    """The status field holding the AWS ID an object is known by (the registry's id_field)."""
    return facts_of(obj_or_kind).info.id_field


def object_refs(obj: Mapping[str, Any]) -> list[str]:
    """The AWS IDs an object holds: its current ref and those it is replacing."""
    field_ = ref_field(obj)
    status = obj.get("status") or {}
    refs = [str(status[field_])] if status.get(field_) else []
    refs += [str(r[field_]) for r in status.get("retiring") or [] if r.get(field_)]
    return refs


def account_of(obj: Mapping[str, Any]) -> str:
    """The AWS account an object's resources live in: its status says (status.accountId); objects
    that do not say are the stand-in's default account's."""
    return str((obj.get("status") or {}).get("accountId") or ACCOUNT_ID)


def owner_mark(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}.{meta['name']}.{meta['uid']}"


def natural_key(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key under which an untagged AWS resource would be this object's (kinds without tags only:
    a tagged resource says whose it is)."""
    facts = facts_of(obj)
    return None if facts.tagged else facts.natural_key(obj)


def desired_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the AWS resource of a Ready object must show, in `AwsResource.fields` terms."""
    return facts_of(obj).desired(dict(obj.get("spec") or {}))


def audit(
    objects: Iterable[Mapping[str, Any]],
    state: Mapping[str, Any],
    expectations: Iterable[Expect],
    allowed: Iterable[str] = (),
    transient: Iterable[str] = (),
) -> Audit:
    """Compare the objects and the AWS state with the desired state.

    - duplicate: two AWS resources for one object (one it holds, another tagged as its own or, for the
      untagged library items, under its natural key), or one AWS resource held by two objects. A
      resource is known by its account too: the same ID or natural key in two accounts is two;
    - orphan: an AWS resource no object holds, except `allowed` (Retain-policy and deliberately
      foreign ones);
    - stuck: an object not in its expected condition — Terminating, not Ready, the wrong reason, or
      still present when it should be gone.
    """
    objs = [dict(o) for o in objects]
    result = Audit()
    allowed_ids = set(allowed)
    holders: dict[tuple[str, str, str], list[str]] = {}
    for obj in objs:
        for ref in object_refs(obj):
            holders.setdefault((str(obj["kind"]), account_of(obj), ref), []).append(_name(obj))
    marks = {owner_mark(o): o for o in objs}
    keyed = {(str(o["kind"]), account_of(o), natural_key(o)): o for o in objs if natural_key(o) is not None}
    for res in aws_resources(state):
        held_by = holders.get((res.kind, res.account, res.id), [])
        if len(held_by) > 1:
            result.duplicates.append(f"{res.detail} held by {', '.join(held_by)}")
            continue
        if held_by or res.id in allowed_ids:
            continue
        claimant = marks.get(res.owner_tag or "") or keyed.get((res.kind, res.account, res.natural_key))
        if claimant is not None and object_refs(claimant):
            result.duplicates.append(f"{res.detail}: a second resource of {_name(claimant)}")
        else:
            result.orphans.append(res.detail)
    by_id = {(r.kind, r.account, r.id): r for r in aws_resources(state)}
    by_key: dict[tuple[str, str, str], dict[str, Any] | None] = {
        (str(o["kind"]), o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs
    }
    for expect in expectations:
        found = by_key.pop(expect.key, None)
        ready = found is not None and condition(found, "Ready", "True", current=True)
        problem = _unmet(expect, found, transient) or (_drifted(found, by_id) if found and ready else None)
        if problem:
            result.stuck.append(problem)
    for rest in by_key.values():  # objects no expectation names: they must at least not be stuck deleting
        if rest and rest["metadata"].get("deletionTimestamp"):
            result.stuck.append(f"{_name(rest)} Terminating")
    return result


def _drifted(obj: Mapping[str, Any], by_id: Mapping[tuple[str, str, str], AwsResource]) -> str | None:
    """A Ready object whose AWS resource is missing (in its account) or differs from the spec."""
    status = obj.get("status") or {}
    kind = str(obj["kind"])
    ref = status.get(ref_field(kind))
    found = by_id.get((kind, account_of(obj), str(ref)))
    if found is None:
        return f"{_name(obj)} is Ready but its AWS resource {ref} does not exist"
    wanted = desired_fields(obj)
    differs = {k: found.fields.get(k) for k, v in wanted.items() if found.fields.get(k) != v}
    return f"{_name(obj)} is Ready but AWS differs: {differs}" if differs else None


def _name(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')} {obj['metadata']['namespace']}/{obj['metadata']['name']}"


def _ready(obj: Mapping[str, Any], transient: Iterable[str]) -> bool:
    """Ready=True and Synced=True for this generation; or Synced=False for a reason in `transient`
    (a drift check that met an injected 5xx while the resource stays ready and matches the spec)."""
    if not condition(obj, "Ready", "True", current=True):
        return False
    if condition(obj, "Synced", "True", current=True):
        return True
    synced = condition(obj, "Synced", "False", current=True)
    return synced is not None and synced.get("reason") in set(transient)


def _unmet(expect: Expect, obj: Mapping[str, Any] | None, transient: Iterable[str] = ()) -> str | None:
    what = f"{expect.kind} {expect.namespace}/{expect.name}"
    if expect.gone:
        if obj is None:
            return None
        terminating = " (Terminating)" if obj["metadata"].get("deletionTimestamp") else ""
        return f"{what} still exists{terminating}: {_conditions(obj)}"
    if obj is None:
        return f"{what} missing"
    if obj["metadata"].get("deletionTimestamp"):
        return f"{what} Terminating"
    ready_will_do = expect.reason is None or "Ready" in expect.reason.split("|")
    if ready_will_do and _ready(obj, transient):
        return None
    if expect.reason is None:
        return f"{what} not Ready: {_conditions(obj)}"
    synced = condition(obj, "Synced", "False", current=True)
    if synced and synced.get("reason") in expect.reason.split("|"):
        return None
    return f"{what} not Synced=False/{expect.reason}: {_conditions(obj)}"


def _conditions(obj: Mapping[str, Any]) -> str:
    conds = (obj.get("status") or {}).get("conditions") or []
    return ", ".join(f"{c.get('type')}={c.get('status')}/{c.get('reason')}" for c in conds) or "no conditions"


# ---------------------------------------------------------------------------------------------------
# One run of one scenario


@dataclass
class Result:
    """One row of the table, plus what the scenario measured and the bound it states."""

    scenario: str
    resources: int
    faults: str
    aws_calls: int = 0
    duplicates: int = 0
    orphans: int = 0
    stuck: int = 0
    converge_seconds: float = 0.0
    bound: str = ""
    bound_held: bool = True
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: writes the desired state did not call for (tests/reliability/writes.py); None: not counted.
    unneeded_writes: int | None = None

    @property
    def ok(self) -> bool:
        clean = not (self.duplicates or self.orphans or self.stuck or self.problems or self.unneeded_writes)
        return clean and self.bound_held


class Run:
    """A scenario's world: one fresh sandbox (both stand-ins, the operator) and its bookkeeping;
    realserver.RealServerRun puts a real kube-apiserver in place of the Kubernetes stand-in."""

    def __init__(
        self,
        workdir: Path,
        rng: random.Random,
        size: int,
        operator_env: Mapping[str, str] | None = None,
        aws_args: Iterable[str] = (),
    ) -> None:
        env = dict(BASE_OPERATOR_ENV)
        env.update(operator_env or {})
        self.box = Sandbox(workdir, aws_args=["--build-seconds", BUILD_SECONDS, *aws_args], operator_env=env)
        self.rng = rng
        self.size = size
        self.expectations: dict[tuple[str, str, str], Expect] = {}
        self.allowed: set[str] = set()
        #: Synced=False reasons a Ready object may show while faults keep being injected (see audit).
        self.transient: set[str] = set()
        self.own_calls = 0
        self.kills = 0
        self._clients: dict[str, Any] = {}
        self.disturbed: float | None = None

    # -- lifecycle

    def __enter__(self) -> Run:
        self.box.__enter__()
        self.box.start_operator()
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(OSError):  # the AWS call log stays with the process logs, for a look afterwards
            (self.box.workdir / "aws-requests.json").write_text(json.dumps(self.requests()))
        self.box.close()

    def kill_operator(self) -> None:
        """kill -9: no cleanup, no last status write. Converging is timed from the last one."""
        self.box.stop_operator(kill=True)
        self.kills += 1
        self.mark()

    def start_operator(self) -> None:
        self.box.start_operator()

    def operator_alive(self) -> bool:
        proc = self.box.operator
        return proc is not None and proc.poll() is None

    def tracebacks(self) -> list[str]:
        """Lines of the operator logs that start a traceback (an unhandled error somewhere)."""
        found: list[str] = []
        for log in sorted(self.box.workdir.glob("operator-*.log")):
            lines = log.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if line.startswith("Traceback"):
                    context = next((x for x in lines[i + 1 : i + 40] if x and not x.startswith(" ")), "")
                    found.append(f"{log.name}: {context[:200]}")
        return found

    # -- the AWS stand-in

    def configure(self, **changes: Any) -> None:
        self.box.aws("POST", "/_emulator/config", changes)

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.box.aws("GET", "/_emulator/state")
        return result

    def requests(self) -> list[dict[str, Any]]:
        return self.box.aws_requests()

    def operator_calls(self) -> int:
        """AWS calls the operator made: the stand-in's log minus the scenario's own (out-of-band) ones."""
        return len(self.requests()) - self.own_calls

    def faults_seen(self, codes: Iterable[str] = FAULT_CODES) -> int:
        """Calls answered with an error the scenario caused (throttles, 5xx, injected, denied)."""
        wanted = set(codes)
        return sum(1 for r in self.requests() if r.get("error") in wanted)

    def client(self, service: str) -> Any:
        """A boto3 client for out-of-band changes; its calls are subtracted from the operator's."""
        if service not in self._clients:
            made = boto3.client(
                service,
                endpoint_url=self.box.aws_url,
                region_name="us-east-1",
                aws_access_key_id="oob",
                aws_secret_access_key="oob",
                config=Config(retries={"max_attempts": 1}),
            )

            def count(**_: Any) -> None:
                self.own_calls += 1

            made.meta.events.register("before-send", count)
            self._clients[service] = made
        return self._clients[service]

    # -- Kubernetes

    def namespace(self, prefix: str = "r", annotations: Mapping[str, str] | None = None) -> str:
        """A fresh namespace; `annotations` on the Namespace (a cluster admin's, e.g. an AWS binding)."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        metadata: dict[str, Any] = {"name": name}
        if annotations:
            metadata["annotations"] = dict(annotations)
        self.box.kube(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata},
        )
        return name

    def apply(self, obj: Mapping[str, Any], expect: str | None = "Ready", check: bool = True) -> str:
        """kubectl apply; record what the object must end as ("Ready" or a Synced=False reason)."""
        result = self.box.kubectl("apply", "-f", "-", input=json.dumps(obj), check=check)
        meta = obj["metadata"]
        if result.returncode == 0 and expect is not None:
            reason = None if expect == "Ready" else expect
            e = Expect(str(obj["kind"]), meta["namespace"], meta["name"], reason=reason)
            self.expectations[e.key] = e
        return result.stdout if result.returncode == 0 else result.stderr

    def apply_all(self, objs: Iterable[Mapping[str, Any]], expect: str | None = "Ready") -> None:
        """One kubectl call for many objects (a List), as a GitOps sync would send them."""
        items = list(objs)
        if not items:
            return
        self.box.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in items))
        for obj in items:
            meta = obj["metadata"]
            reason = None if expect == "Ready" else expect
            e = Expect(str(obj["kind"]), meta["namespace"], meta["name"], reason=reason)
            self.expectations[e.key] = e

    def delete(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """Ask to delete (no wait): the finalizer keeps each object until its AWS resource is gone."""
        by_kind: dict[tuple[str, str], list[str]] = {}
        for obj in objs:
            meta = obj["metadata"]
            by_kind.setdefault((str(obj["kind"]), meta["namespace"]), []).append(meta["name"])
            e = Expect(str(obj["kind"]), meta["namespace"], meta["name"], gone=True)
            self.expectations[e.key] = e
        for (kind, ns), names in by_kind.items():
            plural = facts_of(kind).info.plural
            self.box.kubectl("delete", plural, "-n", ns, "--wait=false", "--ignore-not-found", *names)

    def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        return self.box.get(facts_of(obj).plural_path, meta["namespace"], meta["name"])

    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for facts in TEST_KINDS:
            listing = self.box.kube("GET", f"/apis/{facts.plural_path}")
            for item in listing.get("items", []):
                item.setdefault("kind", facts.kind)
                found.append(item)
        return found

    # -- judging

    def audit(self) -> Audit:
        return audit(self.objects(), self.state(), self.expectations.values(), self.allowed, self.transient)

    def converge(self, timeout: float, interval: float = 0.5) -> tuple[Audit, float]:
        """Poll until the audit is clean or `timeout` passes; (last audit, seconds it took)."""
        started = time.monotonic()
        seen: list[Audit] = []

        def clean() -> bool:
            try:
                seen.append(self.audit())
            except (urllib.error.URLError, OSError) as error:  # a stand-in hiccup: look again
                seen.append(Audit(stuck=[f"audit failed: {error}"]))
            return seen[-1].clean

        with suppress(SandboxError):  # not clean in time: the caller reads the last audit
            wait_for("a clean audit", clean, timeout=timeout, interval=interval)
        if not seen:
            clean()
        return seen[-1], time.monotonic() - started

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
        return wait_for(what, probe, timeout=timeout, interval=interval)

    def settle(self, what: str, timeout: float) -> None:
        """Wait until the audit is clean; fail naming what is still wrong."""
        found, _ = self.converge(timeout)
        if not found.clean:
            raise SandboxError(f"{what}: not settled after {timeout:.0f}s: {found.summary()}")

    def mark(self) -> None:
        """The last disturbance: time to converge is counted from here."""
        self.disturbed = time.monotonic()

    def result(self, name: str, faults: str, timeout: float) -> Result:
        """Converge, audit, and fill the row (the scenario adds its bound and notes)."""
        found, took = self.converge(timeout)
        seconds = took if self.disturbed is None else time.monotonic() - self.disturbed
        row = Result(
            scenario=name,
            resources=len(self.expectations),
            faults=faults,
            aws_calls=self.operator_calls(),
            duplicates=len(found.duplicates),
            orphans=len(found.orphans),
            stuck=len(found.stuck),
            converge_seconds=seconds,
        )
        row.problems += [f"duplicate: {d}" for d in found.duplicates]
        row.problems += [f"orphan: {o}" for o in found.orphans]
        row.problems += [f"stuck: {s}" for s in found.stuck]
        if not self.operator_alive():
            row.problems.append("the operator process died")
        row.problems += [f"traceback in {t}" for t in self.tracebacks()]
        return row


@contextmanager
def latency(run: Run, ms: float) -> Iterator[None]:
    run.configure(latency_ms=ms)
    try:
        yield
    finally:
        run.configure(latency_ms=0)
