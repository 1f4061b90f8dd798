"""What every reliability scenario stands on: a fresh sandbox, manifests of the three kinds, and the audit
that compares the AWS stand-in's state with the desired state.

A scenario drives the real `q-operator run` process against both stand-ins (q_operator.sandbox), then
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

QPLUGINS = "qbusiness.q-operator.dev/v1alpha1/qplugins"
QLIBRARYITEMS = "qapps.q-operator.dev/v1alpha1/qlibraryitems"
APPFLOWCONNECTORS = "appflow.q-operator.dev/v1alpha1/appflowconnectors"
KIND_PATHS = {"QPlugin": QPLUGINS, "QLibraryItem": QLIBRARYITEMS, "AppFlowConnector": APPFLOWCONNECTORS}
KINDS = tuple(KIND_PATHS)
OWNER_TAG = "q-operator.dev/owner"
FINALIZER = "q-operator.dev/finalizer"

OPENAPI = json.dumps(
    {
        "openapi": "3.0.0",
        "info": {"title": "Orders", "version": "1.0"},
        "paths": {"/orders": {"get": {"operationId": "list", "responses": {"200": {"description": "ok"}}}}},
    }
)
LAMBDA_PREFIX = "arn:aws:lambda:us-east-1:123456789012:function:"

#: The fewest AWS calls that take one object from `kubectl apply` to Ready with no fault at all:
#: QPlugin CreatePlugin + GetPlugin/ListTagsForResource once built; QLibraryItem ListLibraryItems
#: (look before the intent) + CreateLibraryItem + GetLibraryItem; AppFlowConnector
#: RegisterConnector/TagResource + DescribeConnector/ListTagsForResource.
MIN_CREATE_CALLS = {"QPlugin": 3, "QLibraryItem": 3, "AppFlowConnector": 4}

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


def manifest(kind: str, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A valid object of `kind`; `spec` overrides or adds fields (None removes one)."""
    body: dict[str, Any]
    if kind == "QPlugin":
        body = {
            "applicationId": spec.pop("applicationId", None) or application_for(namespace),
            "displayName": name,
            "type": "CUSTOM",
            "authConfiguration": {"noAuthConfiguration": {}},
            "customPluginConfiguration": {
                "description": "Orders API",
                "apiSchemaType": "OPEN_API_V3",
                "apiSchema": {"payload": OPENAPI},
            },
        }
    elif kind == "QLibraryItem":
        body = {
            "instanceId": instance_for(namespace),
            "appId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"app/{namespace}/{name}")),
            "appVersion": 1,
            "categories": [],
            "itemStatus": "PUBLISHED",
        }
    elif kind == "AppFlowConnector":
        body = {
            "connectorLabel": f"{namespace}-{name}",
            "description": f"connector {name}",
            "connectorProvisioningConfig": {"lambda": {"lambdaArn": LAMBDA_PREFIX + "ok"}},
            "tags": {"team": "reliability"},
        }
    else:
        raise ValueError(f"unknown kind {kind}")
    for key, value in spec.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    group_version = KIND_PATHS[kind].rsplit("/", 1)[0]
    return {
        "apiVersion": group_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def changed(obj: Mapping[str, Any], round_: int = 1) -> dict[str, Any]:
    """The same object with a spec change AWS can apply in place (an update, not a replacement)."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    spec = out["spec"]
    name = out["metadata"]["name"]
    if out["kind"] == "QPlugin":
        spec["displayName"] = f"{name}-v{round_ + 1}"
    elif out["kind"] == "QLibraryItem":
        spec["categories"] = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"cat/{name}/{round_}"))]
    else:
        spec["description"] = f"connector {name} v{round_ + 1}"
    return out


def application_for(namespace: str) -> str:
    """One Q Business application per namespace: the plugin quota (50) is per application."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"application/{namespace}"))


def instance_for(namespace: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"instance/{namespace}"))


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


@dataclass(frozen=True)
class AwsResource:
    kind: str
    id: str
    owner_tag: str | None
    natural_key: tuple[str, ...]
    detail: str
    #: the members a spec sets that the audit compares (see `desired_fields`).
    fields: Mapping[str, Any] = field(default_factory=dict)


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


def aws_resources(state: Mapping[str, Any]) -> list[AwsResource]:
    """Every resource the AWS stand-in holds, in every account and region."""
    found: list[AwsResource] = []
    for scope in state.values():
        for p in scope.get("plugins", []):
            found.append(
                AwsResource(
                    "QPlugin",
                    p["plugin_id"],
                    (p.get("tags") or {}).get(OWNER_TAG),
                    (p["application_id"], str(p["params"].get("displayName"))),
                    f"plugin {p['plugin_id'][:8]} {p['params'].get('displayName')} {p['build_status']}",
                    {"displayName": p["params"].get("displayName")},
                )
            )
        for i in scope.get("libraryItems", []):
            found.append(
                AwsResource(
                    "QLibraryItem",
                    i["library_item_id"],
                    None,
                    (i["instance_id"], i["app_id"], str(i["app_version"])),
                    f"library item {i['library_item_id'][:8]} app {i['app_id'][:8]} v{i['app_version']}",
                    {"categories": sorted(i["categories"]), "status": str(i["status"]).casefold()},
                )
            )
        for c in scope.get("connectors", []):
            found.append(
                AwsResource(
                    "AppFlowConnector",
                    c["label"],
                    (c.get("tags") or {}).get(OWNER_TAG),
                    (c["label"],),
                    f"connector {c['label']}",
                    {"description": c.get("description")},
                )
            )
    return found


REF_FIELD = {"QPlugin": "pluginId", "QLibraryItem": "libraryItemId", "AppFlowConnector": "connectorLabel"}
RETIRING_FIELD = REF_FIELD


def object_refs(obj: Mapping[str, Any]) -> list[str]:
    """The AWS IDs an object holds: its current ref and those it is replacing."""
    kind = str(obj.get("kind"))
    status = obj.get("status") or {}
    refs = [str(status[REF_FIELD[kind]])] if status.get(REF_FIELD[kind]) else []
    refs += [
        str(r[RETIRING_FIELD[kind]]) for r in status.get("retiring") or [] if r.get(RETIRING_FIELD[kind])
    ]
    return refs


def owner_mark(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}.{meta['name']}.{meta['uid']}"


def natural_key(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key under which an untagged AWS resource would be this object's (library items only)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "QLibraryItem":
        return (str(spec.get("instanceId")), str(spec.get("appId")), str(spec.get("appVersion")))
    return None


def desired_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the AWS resource of a Ready object must show, in `AwsResource.fields` terms."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "QPlugin":
        return {"displayName": spec.get("displayName")}
    if kind == "QLibraryItem":
        wanted: dict[str, Any] = {"categories": sorted(spec.get("categories") or [])}
        if spec.get("itemStatus"):
            wanted["status"] = str(spec["itemStatus"]).casefold()
        return wanted
    return {"description": spec.get("description")} if spec.get("description") else {}


def audit(
    objects: Iterable[Mapping[str, Any]],
    state: Mapping[str, Any],
    expectations: Iterable[Expect],
    allowed: Iterable[str] = (),
    transient: Iterable[str] = (),
) -> Audit:
    """Compare the objects and the AWS state with the desired state.

    - duplicate: two AWS resources for one object (one it holds, another tagged as its own or, for the
      untagged library items, under its natural key), or one AWS resource held by two objects;
    - orphan: an AWS resource no object holds, except `allowed` (Retain-policy and deliberately
      foreign ones);
    - stuck: an object not in its expected condition — Terminating, not Ready, the wrong reason, or
      still present when it should be gone.
    """
    objs = [dict(o) for o in objects]
    result = Audit()
    allowed_ids = set(allowed)
    holders: dict[tuple[str, str], list[str]] = {}
    for obj in objs:
        for ref in object_refs(obj):
            holders.setdefault((str(obj["kind"]), ref), []).append(_name(obj))
    marks = {owner_mark(o): o for o in objs}
    keyed = {(str(o["kind"]), natural_key(o)): o for o in objs if natural_key(o) is not None}
    for res in aws_resources(state):
        held_by = holders.get((res.kind, res.id), [])
        if len(held_by) > 1:
            result.duplicates.append(f"{res.detail} held by {', '.join(held_by)}")
            continue
        if held_by or res.id in allowed_ids:
            continue
        claimant = marks.get(res.owner_tag or "") or keyed.get((res.kind, res.natural_key))
        if claimant is not None and object_refs(claimant):
            result.duplicates.append(f"{res.detail}: a second resource of {_name(claimant)}")
        else:
            result.orphans.append(res.detail)
    by_id = {(r.kind, r.id): r for r in aws_resources(state)}
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


def _drifted(obj: Mapping[str, Any], by_id: Mapping[tuple[str, str], AwsResource]) -> str | None:
    """A Ready object whose AWS resource is missing or differs from the spec."""
    status = obj.get("status") or {}
    kind = str(obj["kind"])
    ref = status.get(REF_FIELD[kind])
    found = by_id.get((kind, str(ref)))
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
    """A scenario's world: one fresh sandbox (both stand-ins, the operator) and its bookkeeping."""

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
        self.faults_injected = 0
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

    def namespace(self, prefix: str = "r") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.box.kube(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
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
            plural = KIND_PATHS[kind].rsplit("/", 1)[1]
            self.box.kubectl("delete", plural, "-n", ns, "--wait=false", "--ignore-not-found", *names)

    def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        return self.box.get(KIND_PATHS[str(obj["kind"])], meta["namespace"], meta["name"])

    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for kind, path in KIND_PATHS.items():
            listing = self.box.kube("GET", f"/apis/{path}")
            for item in listing.get("items", []):
                item.setdefault("kind", kind)
                found.append(item)
        return found

    # -- judging

    def audit(self) -> Audit:
        return audit(self.objects(), self.state(), self.expectations.values(), self.allowed, self.transient)

    def converge(self, timeout: float, interval: float = 0.5) -> tuple[Audit, float]:
        """Poll until the audit is clean or `timeout` passes; (last audit, seconds it took)."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            try:
                found = self.audit()
            except (urllib.error.URLError, OSError) as error:  # a stand-in hiccup: look again
                found = Audit(stuck=[f"audit failed: {error}"])
            if found.clean or time.monotonic() >= deadline:
                return found, time.monotonic() - started
            time.sleep(interval)

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
