"""The container image, run the way the chart runs it.

`make image` builds the image from our Dockerfile with podman; this module (`make image-test`, opt-in:
`make test` skips it) renders the chart with `helm template` and starts the image with podman as a
kubelet would start the rendered pod: read-only root filesystem, the chart's non-root uid, every
capability dropped, the chart's args and environment, its memory and CPU limits, an emptyDir at /tmp.
The Kubernetes side is the real kube-apiserver with RBAC on (`q_operator.apiserver`): the chart's
ServiceAccount, roles and bindings are applied to it, and the container holds only that
ServiceAccount's token (by the TokenRequest API), mounted read-only where a kubelet puts it. AWS is the
stand-in. The containerised operator takes one object of each kind through its life (Ready, updated,
deleted), answers its liveness probe, serves metrics and stops cleanly on SIGTERM within the chart's
terminationGracePeriodSeconds. Anything it tries to write on the read-only filesystem fails the test
that was running.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator.apiserver import ApiServer
from q_operator.emulate.aws.testing import AwsHandle, running_aws
from q_operator.sandbox import KUBECTL, condition, free_port, wait_for

from ..kinds import TEST_KINDS, KindFacts
from .podman import ROOT, PodRun, find, render_chart

IMAGE = os.environ.get("Q_OPERATOR_IMAGE", "")
if not IMAGE:
    pytest.skip("the image test is opt-in: make image-test", allow_module_level=True)

pytestmark = pytest.mark.timeout(900)

NAMESPACE = "q-operator-system"
#: what a write on the read-only root filesystem leaves in the operator's log.
READ_ONLY_MARKS = ("Read-only file system", "EROFS")


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


class Kubectl:
    """kubectl with the test's own (admin) credentials."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        kubectl = str(KUBECTL) if KUBECTL.exists() else "kubectl"
        result = subprocess.run(
            [kubectl, f"--kubeconfig={self.kubeconfig}", "--request-timeout=30s", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0 or not check, f"kubectl {' '.join(args)}: {result.stderr.strip()}"
        return result.stdout

    def get(self, resource: str, name: str, namespace: str) -> dict[str, Any] | None:
        kubectl = str(KUBECTL) if KUBECTL.exists() else "kubectl"
        result = subprocess.run(
            [
                kubectl,
                f"--kubeconfig={self.kubeconfig}",
                "get",
                resource,
                name,
                "-n",
                namespace,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        obj: dict[str, Any] = json.loads(result.stdout)
        return obj


class Operator:
    """The containerised operator: its podman command, its log, and the ports the chart gave it."""

    def __init__(self, run: PodRun, workdir: Path, metrics_port: int, liveness_port: int) -> None:
        self.run = run
        self.name = run.name
        self.log = workdir / "operator.log"
        self.metrics_port = metrics_port
        self.liveness_port = liveness_port
        self.grace = int(run.pod["terminationGracePeriodSeconds"])
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(run.argv(), stdout=out, stderr=subprocess.STDOUT)

    def probe(self) -> int:
        """The chart's liveness probe: GET its path on its port."""
        probe = self.run.container["livenessProbe"]["httpGet"]
        assert probe["port"] == "healthz"
        url = f"http://127.0.0.1:{self.liveness_port}{probe['path']}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status: int = response.status
                return status
        except (urllib.error.URLError, OSError):
            return 0

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"the container exited ({self.proc.returncode}):\n{self.tail()}"
        return self.probe() == 200

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def read_only_writes(self) -> list[str]:
        return read_only_writes(self.log.read_text(errors="replace"))


def read_only_writes(log: str) -> list[str]:
    """The lines of a log that tell of a write refused by the read-only root filesystem."""
    return [line for line in log.splitlines() if any(mark in line for mark in READ_ONLY_MARKS)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image")


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsHandle]:
    with running_aws(build_seconds=0.5) as handle:
        yield handle


@pytest.fixture(scope="module")
def cluster(workdir: Path) -> Iterator[ApiServer]:
    with ApiServer(workdir / "apiserver", crds_dir=ROOT / "crds", rbac=True) as server:
        yield server


@pytest.fixture(scope="module")
def kubectl(cluster: ApiServer) -> Kubectl:
    """The test's own hands: the cluster admin's kubeconfig."""
    return Kubectl(cluster.kubeconfig)


@pytest.fixture(scope="module")
def operator(aws: AwsHandle, cluster: ApiServer, kubectl: Kubectl, workdir: Path) -> Iterator[Operator]:
    metrics_port, liveness_port = free_port(), free_port()
    objects = render_chart(
        "q-operator",
        NAMESPACE,
        {
            "aws.endpointUrl": aws.url,
            "aws.existingSecret": "q-operator-aws",
            "metrics.port": str(metrics_port),
            "liveness.port": str(liveness_port),
        },
    )
    [deployment] = find(objects, "Deployment")
    # What `helm install` would create besides the pod: the ServiceAccount, RBAC and Service.
    kubectl("create", "namespace", NAMESPACE)
    rest = [obj for obj in objects if obj["kind"] != "Deployment"]
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= {obj["kind"] for obj in rest}
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rest))
    # The Secret that aws.existingSecret names, which the user creates; envFrom reads it back.
    kubectl("-n", NAMESPACE, "create", "secret", "generic", "q-operator-aws",
            "--from-literal=AWS_ACCESS_KEY_ID=test", "--from-literal=AWS_SECRET_ACCESS_KEY=test")  # fmt: skip
    secret = json.loads(kubectl("-n", NAMESPACE, "get", "secret", "q-operator-aws", "-o", "json"))
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    # The ServiceAccount's token, as a kubelet projects it into the pod: only the chart's RBAC.
    service_account = workdir / "serviceaccount"
    service_account.mkdir(mode=0o755)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    files = {
        "token": cluster.service_account_token(NAMESPACE, account),
        "ca.crt": cluster.ca_file.read_text(),
        "namespace": NAMESPACE,
    }
    for name, text in files.items():
        (service_account / name).write_text(text)
        (service_account / name).chmod(0o644)
    run = PodRun(
        deployment,
        IMAGE,
        f"q-operator-image-test-{uuid.uuid4().hex[:8]}",
        secrets={"q-operator-aws": data},
        api_server=cluster.url,
        service_account=service_account,
    )
    (workdir / "podman-run.txt").write_text(" ".join(run.argv()) + "\n")
    op = Operator(run, workdir, metrics_port, liveness_port)
    try:
        wait_for("the container's liveness probe", op.alive, timeout=180, interval=1)
        yield op
    finally:
        podman("rm", "--force", "--time=0", run.name, check=False)
        if op.proc.poll() is None:
            op.proc.kill()
        op.proc.wait(timeout=60)


@pytest.fixture(autouse=True)
def nothing_written_on_the_read_only_root(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "operator" in request.fixturenames:
        op: Operator = request.getfixturevalue("operator")
        assert op.read_only_writes() == [], "the operator wrote on its read-only root filesystem"


def test_the_image_holds_the_operator_and_its_runtime_dependencies_only() -> None:
    script = (
        "import importlib.util as u, importlib.metadata as m, json\n"
        "mods = ['q_operator.engine', 'q_operator.emulate', 'q_operator.sandbox', 'q_operator.demo',"
        " 'q_operator.apiserver', 'celpy', 'pytest', 'mypy', 'ruff', 'hypothesis', 'pip', 'setuptools']\n"
        "print(json.dumps({n: u.find_spec(n) is not None for n in mods}))\n"
    )
    result = podman("run", "--rm", "--runtime=runc", *_ulimits(), "--entrypoint=python", IMAGE, "-c", script)
    found = json.loads(result.stdout)
    assert found.pop("q_operator.engine") is True
    assert [name for name, present in found.items() if present] == []
    size = int(podman("image", "inspect", "--format={{.Size}}", IMAGE).stdout)
    print(f"\nimage {IMAGE}: {size / 1e6:.0f} MB")


def test_the_image_says_its_stand_ins_are_left_out() -> None:
    result = podman("run", "--rm", "--runtime=runc", *_ulimits(), IMAGE, "demo", check=False)
    assert result.returncode == 2
    assert "no stand-ins" in result.stderr and "q-operator[standins]" in result.stderr


def test_a_write_on_the_read_only_root_shows_in_the_log_as_the_scan_expects() -> None:
    """The scan that guards every test below finds what Python logs when the root refuses a write."""
    script = (
        "import logging\nlogging.basicConfig()\n"
        "try: open('/opt/venv/state', 'w')\nexcept OSError: logging.exception('could not save')"
    )
    result = podman("run", "--rm", "--runtime=runc", "--read-only", *_ulimits(), "--entrypoint=python",
                    IMAGE, "-c", script)  # fmt: skip
    assert read_only_writes(result.stderr), result.stderr


def test_the_container_runs_as_the_chart_says(operator: Operator) -> None:
    status = podman("exec", operator.name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    ctx = {**operator.run.pod["securityContext"], **operator.run.container["securityContext"]}
    assert fields["Uid"].split()[0] == str(ctx["runAsUser"])
    assert fields["Gid"].split()[0] == str(ctx["runAsGroup"])
    assert int(fields["CapEff"].strip(), 16) == 0 and int(fields["CapBnd"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filtering
    # The root filesystem refuses writes; /tmp (the chart's emptyDir) takes them.
    refused = podman("exec", operator.name, "touch", "/opt/venv/x", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    podman("exec", operator.name, "touch", "/tmp/x")
    podman("exec", operator.name, "rm", "/tmp/x")
    args = json.loads(podman("inspect", "--format={{json .Config.Cmd}}", operator.name).stdout)
    assert args == operator.run.container["args"]


def test_its_kubernetes_credentials_are_the_charts_service_account_only(
    operator: Operator, cluster: ApiServer, workdir: Path
) -> None:
    """The token in the container is bound by the chart's RBAC, and the server enforces it."""
    assert operator.run.service_account is not None
    token = (operator.run.service_account / "token").read_text()
    kubeconfig = workdir / "operator-kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig_text(token=token))
    as_operator = Kubectl(kubeconfig)
    for facts in TEST_KINDS:
        resource = f"{facts.info.plural}.{facts.info.group}"
        assert as_operator("auth", "can-i", "patch", resource, "-A").strip() == "yes"
    assert as_operator("auth", "can-i", "create", "customresourcedefinitions", "--quiet", check=False) == ""
    assert as_operator("auth", "can-i", "get", "secrets", "-A", check=False).strip() == "no"


def test_the_liveness_probe_answers(operator: Operator) -> None:
    assert operator.probe() == 200


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda f: f.kind)
def test_one_object_of_each_kind_is_created_updated_and_deleted(
    facts: KindFacts, operator: Operator, aws: AwsHandle, kubectl: Kubectl
) -> None:
    """The kind's sample, as a user applies it; then a change AWS applies in place; then deletion."""
    kind = facts.info
    manifest = _sample(kind)
    namespace = f"image-{kind.singular}"
    name = manifest["metadata"]["name"]
    manifest["metadata"]["namespace"] = namespace
    resource = f"{kind.plural}.{kind.group}"
    kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    created = _wait_ready(kubectl, resource, name, namespace)
    assert created["status"].get(kind.id_field), created["status"]

    facts.change(manifest["spec"], name, 1)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    updated = _wait_ready(
        kubectl, resource, name, namespace, generation=created["metadata"]["generation"] + 1
    )
    assert _calls(aws, facts.update_op), f"no {facts.update_op} reached AWS"
    assert updated["status"][kind.id_field] == created["status"][kind.id_field]

    kubectl("delete", resource, name, "-n", namespace, "--wait=false")
    wait_for(f"{name} to be deleted", lambda: kubectl.get(resource, name, namespace) is None, timeout=180)
    assert _calls(aws, facts.delete_op), f"no {facts.delete_op} reached AWS"


def test_metrics_count_the_reconciles_and_aws_calls_of_every_kind(operator: Operator) -> None:
    """After the lifecycles above: the chart's metrics port serves the operator's counters."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        samples = [line for line in response.read().decode().splitlines() if not line.startswith("#")]
    for facts in TEST_KINDS:
        assert any(s.startswith(f'q_operator_reconciles_total{{kind="{facts.kind}"') for s in samples)
        for operation in (facts.create_op, facts.update_op, facts.delete_op):
            assert any(s.startswith("q_operator_aws_calls_total{") and operation in s for s in samples)


def test_sigterm_stops_it_cleanly_within_the_grace_period(operator: Operator) -> None:
    """Last in this module: `podman stop` sends SIGTERM, as a kubelet does, and kills after the grace."""
    start = time.monotonic()
    podman("stop", f"--time={operator.grace}", operator.name, timeout=operator.grace + 60)
    took = time.monotonic() - start
    code = operator.proc.wait(timeout=60)
    assert took < operator.grace, f"took {took:.1f}s of {operator.grace}s:\n{operator.tail()}"
    assert code == 0, f"exit code {code}:\n{operator.tail()}"
    assert "Signal SIGTERM is received" in operator.log.read_text(errors="replace"), operator.tail()
    assert "Traceback" not in operator.log.read_text(errors="replace"), operator.tail(80)


# -- helpers -------------------------------------------------------------------------------------


def _ulimits() -> list[str]:
    from .podman import hard_ulimits

    return hard_ulimits()


def _sample(kind: Any) -> dict[str, Any]:
    """The kind's sample from samples/, the one the registry names."""
    docs = [
        d for d in yaml.safe_load_all((ROOT / "samples" / kind.sample).read_text()) if isinstance(d, dict)
    ]
    [obj] = [d for d in docs if d.get("kind") == kind.kind]
    return obj


def _wait_ready(
    kubectl: Kubectl, resource: str, name: str, namespace: str, generation: int | None = None
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = kubectl.get(resource, name, namespace)
        if obj is None or (generation is not None and obj["metadata"]["generation"] != generation):
            return None
        return obj if condition(obj, "Ready", "True", current=True) else None

    return wait_for(f"{name} Ready", ready, timeout=180, interval=1)


def _calls(aws: AwsHandle, operation: str) -> list[dict[str, Any]]:
    """The operator's calls of `operation` (the stand-in logs every call)."""
    return [call for call in aws.requests() if call.get("operation") == operation]
