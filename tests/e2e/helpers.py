"""Small helpers for the end-to-end tests: kubectl apply, boto3 against the stand-in, events. The
objects themselves (a valid manifest per kind) come from tests/kinds.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from q_operator.sandbox import CRDS_DIR, REPO_ROOT, KubeServer, Sandbox, condition, wait_for
from tests.kinds import TEST_KINDS, KindFacts

from . import calllog

PEERING_CRDS = REPO_ROOT / "charts" / "q-operator" / "charts" / "kopf-peering" / "crds" / "kopf-peering.yaml"
#: recorded status objects, the Argo CD health checks' test data (tests/unit/test_argocd_health.py)
STATUS_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "status"


def new_application_id() -> str:
    return str(uuid.uuid4())


def e2e_crds(directory: Path) -> Path:
    """A directory with our CRDs and kopf's peering CRDs (as the chart installs them with peering)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in [*CRDS_DIR.glob("*.yaml"), PEERING_CRDS]:
        shutil.copy(path, directory / path.name)
    return directory


@contextlib.contextmanager
def shared_sandbox(workdir: Path, server: KubeServer | None, **kwargs: Any) -> Iterator[Sandbox]:
    """A Sandbox on `server` (or on a stand-in of its own when None). On exit it stops every operator
    it started, keeps the calls made for the permission proofs, and removes every custom object left
    on the shared server."""
    with Sandbox(workdir, kube=server, **kwargs) as box:
        try:
            yield box
        finally:
            box.stop_operators()
            collect_calls(box)
            if not box.on_standin:
                box.purge_custom_objects()


def new_namespace(sandbox: Sandbox, prefix: str) -> str:
    """Create a namespace of the caller's own (`prefix` plus a random suffix); its name. Tests on a
    shared API server keep out of `default` and of each other's way."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    sandbox.kube(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


def collect_calls(box: Sandbox) -> None:
    """Keep what the sandbox's stand-ins were asked, for the permission proofs. A real API server's
    calls are in its audit log, read by the proofs themselves."""
    if box.on_standin:
        calllog.KUBE.extend(box.kube("GET", "/_emulator/requests"))
    calllog.AWS.extend(box.aws_requests())


def apply(sandbox: Sandbox, obj: dict[str, Any], check: bool = True) -> str:
    """kubectl apply the object; returns kubectl's stdout (or stderr when check is False and it failed)."""
    result = sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj), check=check)
    return result.stdout if result.returncode == 0 else result.stderr


def client(sandbox: Sandbox, service: str) -> Any:
    """A plain boto3 client against the AWS stand-in, as a user's script would make one."""
    return boto3.client(
        service,
        endpoint_url=sandbox.aws_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def allow_adoption(sandbox: Sandbox, namespace: str, allowed: bool = True) -> None:
    """What a cluster admin does so that q-operator.dev/adopt-id works in a namespace (or, with
    `allowed=False`, to take that back)."""
    sandbox.kube(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"annotations": {"q-operator.dev/adoption": "allowed" if allowed else None}}},
        content_type="application/merge-patch+json",
    )


def calls(sandbox: Sandbox, operation: str | None = None) -> list[dict[str, Any]]:
    """The AWS calls the stand-in received, optionally only one operation's."""
    return [r for r in sandbox.aws_requests() if operation is None or r.get("operation") == operation]


def listed(sandbox: Sandbox, facts: KindFacts, **parent: str) -> list[dict[str, Any]]:
    """Every resource of a kind under a parent (its List call's members, `applicationId=...`), as a
    user listing them with boto3 sees them, page by page to the end."""
    return facts.list_by_hand(client(sandbox, facts.info.service), parent)


def events_of(sandbox: Sandbox, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Kubernetes events posted about an object, oldest first."""
    listed = sandbox.kube("GET", f"/api/v1/namespaces/{namespace}/events")
    return [e for e in listed.get("items", []) if e.get("involvedObject", {}).get("name") == name]


def wait_event_reasons(
    sandbox: Sandbox, namespace: str, name: str, *wanted: str, timeout: float = 15
) -> set[str]:
    """Wait until events with each of the `wanted` reasons have been posted about the object; kopf
    posts events from a queue of its own, after the status write a test may already have seen."""

    def posted() -> set[str] | None:
        reasons = {str(e.get("reason")) for e in events_of(sandbox, namespace, name)}
        return reasons if set(wanted) <= reasons else None

    return wait_for(f"events {', '.join(wanted)} about {namespace}/{name}", posted, timeout=timeout)


def synced(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The object's Synced condition, whatever its status ({} when it has none yet)."""
    for cond in (obj or {}).get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Synced":
            return dict(cond)
    return {}


def wait_synced_false(
    sandbox: Sandbox, plural: str, namespace: str, name: str, reason: str, timeout: float = 60
) -> dict[str, Any]:
    """Wait until the object's Synced condition is False with `reason`; returns the condition."""

    def probe() -> dict[str, Any] | None:
        found = condition(sandbox.get(plural, namespace, name) or {}, "Synced", "False")
        return found if found and found.get("reason") == reason else None

    return wait_for(f"{name} Synced=False {reason}", probe, timeout=timeout)


def record_status_fixture(name: str, obj: dict[str, Any]) -> None:
    """With Q_OPERATOR_RECORD_FIXTURES=1, keep the live object as an Argo CD health fixture."""
    if os.environ.get("Q_OPERATOR_RECORD_FIXTURES") == "1":
        keep = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec", "status") if k in obj}
        for noisy in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
            keep["metadata"].pop(noisy, None)
        (STATUS_FIXTURES / f"{name}.json").write_text(json.dumps(keep, indent=2, sort_keys=True) + "\n")


def operator_calls(sandbox: Sandbox, since: int = 0, region: str | None = None) -> list[dict[str, Any]]:
    """The operator's AWS calls from position `since` of the stand-in's request log on."""
    return [
        r
        for r in sandbox.aws_requests()[since:]
        if "q-operator/" in str(r.get("userAgent", "")) and region in (None, r.get("region"))
    ]


def log_position(sandbox: Sandbox) -> int:
    """Where the AWS stand-in's request log ends now (`operator_calls` from there on)."""
    return len(sandbox.aws_requests())


def wait_synced(
    sandbox: Sandbox, facts: KindFacts, ns: str, name: str, reason: str, timeout: float = 60
) -> dict[str, Any]:
    """Until Synced has `reason` for the current generation (a cycle ran on the spec as it is)."""

    def probe() -> dict[str, Any] | None:
        obj = sandbox.get(facts.plural_path, ns, name)
        if not obj:
            return None
        cond = synced(obj)
        current = cond.get("observedGeneration") == obj["metadata"].get("generation")
        return obj if cond.get("reason") == reason and current else None

    return wait_for(f"{name} Synced reason {reason}", probe, timeout=timeout)


def restart_and_wait_until_processing(sandbox: Sandbox, ns: str) -> None:
    """Restart the operator; return once it acts on objects again. The proof is a canary that makes no
    AWS call at all (observe-only, nothing named): its AdoptIdRequired is written by the new process."""
    sandbox.stop_operator()
    sandbox.start_operator()
    facts = TEST_KINDS[0]
    name = unique_name(facts, "canary")
    apply(sandbox, facts.manifest(name, ns, managementPolicy="Observe"))
    obj = wait_synced(sandbox, facts, ns, name, "AdoptIdRequired")
    assert "q-operator.dev/adopt-id" in synced(obj)["message"], "the reason names the annotation to set"


def unique_name(facts: KindFacts, what: str) -> str:
    """An object name no other test uses: the kind's short name, what it is for, a random suffix."""
    return f"{facts.short}-{what}-{uuid.uuid4().hex[:5]}"
