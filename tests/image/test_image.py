"""The container image, run the way the chart runs it.

`make image` builds the image from our Dockerfile with podman; this module (`make image-test`, opt-in:
`make test` skips it) renders the chart with `helm template` and starts the image with podman as a
kubelet would start the rendered pod: read-only root filesystem, the chart's non-root uid, every
capability dropped, the chart's args and environment, its memory and CPU limits, an emptyDir at /tmp.
The Kubernetes side is the real kube-apiserver with RBAC on (`q_operator.apiserver`): the chart's
ServiceAccount, roles and bindings are applied to it, and the container holds only that
ServiceAccount's token (by the TokenRequest API), mounted read-only where a kubelet puts it. AWS is the
stand-in. The containerised operator takes one object of each kind through its life (Ready, updated,
deleted), answers its liveness probe before and after, serves metrics and stops cleanly on SIGTERM
within the chart's terminationGracePeriodSeconds.

Writes: the read-only root refuses them, but a refusal the operator swallows, or logs below INFO, would
leave no trace in its log. So strace follows the container from the first instruction of its
entrypoint, and any file write it attempts (refused or not, by Python or by any process it starts)
outside the /tmp emptyDir and /dev fails the test that was running; so does a refusal in its log.

Contents: the distributions in the image's virtualenv must be exactly the operator's runtime
requirements, closed over by the package metadata, and the base's own interpreter must hold none (no
pip, setuptools or wheel).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from q_operator.apiserver import ApiServer
from q_operator.emulate.aws.testing import AwsHandle, running_aws
from q_operator.sandbox import KUBECTL, condition, free_port, wait_for

from ..kinds import TEST_KINDS, KindFacts
from .podman import ROOT, PodRun, Traced, file_writes, find, render_chart, start_traced

IMAGE = os.environ.get("Q_OPERATOR_IMAGE", "")
if not IMAGE:
    pytest.skip("the image test is opt-in: make image-test", allow_module_level=True)

pytestmark = pytest.mark.timeout(900)

NAMESPACE = "q-operator-system"
#: what a write on the read-only root filesystem leaves in the operator's log.
READ_ONLY_MARKS = ("Read-only file system", "EROFS")
#: the modules of the package that only development uses (.dockerignore leaves them out).
DEV_ONLY_MODULES = ("q_operator.emulate", "q_operator.sandbox", "q_operator.demo", "q_operator.apiserver")
#: run by an image's (or any virtualenv's) python: its marker environment (what `packaging` would
#: compute there), each distribution of the virtualenv with its Requires-Dist, the distributions of the
#: base interpreter the virtualenv was made from, the pip/wheel commands on PATH and which of the
#: package's development modules import.
INSPECT = r"""
import importlib.metadata, importlib.util, json, os, platform, shutil, subprocess, sys

v = sys.implementation.version
environment = {
    "implementation_name": sys.implementation.name,
    "implementation_version": f"{v.major}.{v.minor}.{v.micro}"
    + ("" if v.releaselevel == "final" else v.releaselevel[0] + str(v.serial)),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
venv = {d.metadata["Name"]: d.requires or [] for d in importlib.metadata.distributions()}
names = "import importlib.metadata as m; print(*sorted(d.metadata['Name'] for d in m.distributions()))"
base = subprocess.run(
    [os.path.realpath(sys.executable), "-I", "-c", names], capture_output=True, text=True, check=True
).stdout.split()
tools = ("pip", "pip3", f"pip{v.major}.{v.minor}", "wheel", "easy_install")
modules = sys.argv[1:]
print(json.dumps({
    "environment": environment,
    "venv": venv,
    "base": base,
    "tools": [name for name in tools if shutil.which(name)],
    "modules": [name for name in modules if importlib.util.find_spec(name) is not None],
}))
"""


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
    """The containerised operator, traced: its podman command, its log, its trace, and the ports the
    chart gave it."""

    def __init__(self, run: PodRun, workdir: Path, label: str, metrics_port: int, liveness_port: int) -> None:
        self.run = run
        self.name = run.name
        self.log = workdir / f"{label}.log"
        self.metrics_port = metrics_port
        self.liveness_port = liveness_port
        self.grace = int(run.pod["terminationGracePeriodSeconds"])
        with self.log.open("wb") as out:
            self.traced: Traced = start_traced(run, workdir / f"{label}.trace", out)
        self.proc = self.traced.proc

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

    def file_writes(self) -> list[str]:
        return file_writes(self.traced.trace, self.run.writable_paths())

    def stop(self) -> int:
        """`podman stop`: SIGTERM, as a kubelet sends it, then a kill after the chart's grace period.
        The container's exit code, once it and its tracer have ended."""
        if self.proc.poll() is None:
            podman("stop", f"--time={self.grace}", self.name, timeout=self.grace + 60)
        return self.traced.wait(timeout=60)

    def remove(self) -> None:
        self.traced.kill()


def read_only_writes(log: str) -> list[str]:
    """The lines of a log that tell of a write refused by the read-only root filesystem."""
    return [line for line in log.splitlines() if any(mark in line for mark in READ_ONLY_MARKS)]


def runtime_closure(
    requires: Mapping[str, Sequence[str]], environment: Mapping[str, str], root: str = "q-operator"
) -> tuple[set[str], set[str]]:
    """What `root` needs to run, by the package metadata: its Requires-Dist whose markers hold with no
    extra asked for, their requirements likewise, recursively (`foo[bar]` brings foo's requirements for
    its extra bar too). `requires` maps each installed distribution to its Requires-Dist; the result is
    the (canonical) names of the closure that are installed and those that are not."""
    installed = {canonicalize_name(name): lines for name, lines in requires.items()}
    seen: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(root), "")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in installed.get(name, ()):
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or marker.evaluate({**environment, "extra": extra}):
                dependency = canonicalize_name(requirement.name)
                todo.append((dependency, ""))
                todo += [(dependency, canonicalize_name(e)) for e in requirement.extras]
    needed = {name for name, _ in seen}
    return needed & installed.keys(), needed - installed.keys()


def inspect(python: Sequence[str]) -> dict[str, Any]:
    """INSPECT's report from the python that `python` runs (a `podman run` of the image, or this one)."""
    result = subprocess.run(
        [*python, "-c", INSPECT, *DEV_ONLY_MODULES, "q_operator.engine"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def beyond_the_runtime(report: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The virtualenv's distributions that the operator's runtime closure does not reach, and the
    closure's members that are missing from it."""
    needed, missing = runtime_closure(report["venv"], report["environment"])
    installed = {canonicalize_name(name) for name in report["venv"]}
    return sorted(installed - needed), sorted(missing)


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


class Chart:
    """The chart as `helm install` leaves it in the cluster (its ServiceAccount, RBAC and Service, the
    Secret its values name), and the pods its Deployment would start, each on ports of its own."""

    def __init__(self, aws: AwsHandle, cluster: ApiServer, kubectl: Kubectl, workdir: Path) -> None:
        self.aws = aws
        self.cluster = cluster
        self.workdir = workdir
        objects = self.render(free_port(), free_port())
        kubectl("create", "namespace", NAMESPACE)
        rest = [obj for obj in objects if obj["kind"] != "Deployment"]
        assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= {obj["kind"] for obj in rest}
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rest))
        # The Secret that aws.existingSecret names, which the user creates; envFrom reads it back.
        credentials = ["--from-literal=AWS_ACCESS_KEY_ID=test", "--from-literal=AWS_SECRET_ACCESS_KEY=test"]
        kubectl("-n", NAMESPACE, "create", "secret", "generic", "q-operator-aws", *credentials)
        secret = json.loads(kubectl("-n", NAMESPACE, "get", "secret", "q-operator-aws", "-o", "json"))
        self.secret = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
        # The ServiceAccount's token, as a kubelet projects it into the pod: only the chart's RBAC.
        self.service_account = workdir / "serviceaccount"
        self.service_account.mkdir(mode=0o755)
        [deployment] = find(objects, "Deployment")
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        files = {
            "token": cluster.service_account_token(NAMESPACE, account),
            "ca.crt": cluster.ca_file.read_text(),
            "namespace": NAMESPACE,
        }
        for name, text in files.items():
            (self.service_account / name).write_text(text)
            (self.service_account / name).chmod(0o644)

    def render(self, metrics_port: int, liveness_port: int) -> list[dict[str, Any]]:
        values = {
            "aws.endpointUrl": self.aws.url,
            "aws.existingSecret": "q-operator-aws",
            "metrics.port": str(metrics_port),
            "liveness.port": str(liveness_port),
        }
        return render_chart("q-operator", NAMESPACE, values)

    def pod(self) -> tuple[PodRun, int, int]:
        """The Deployment's pod as podman runs it, with the metrics and liveness ports it was given."""
        metrics_port, liveness_port = free_port(), free_port()
        [deployment] = find(self.render(metrics_port, liveness_port), "Deployment")
        run = PodRun(
            deployment,
            IMAGE,
            f"q-operator-image-test-{uuid.uuid4().hex[:8]}",
            secrets={"q-operator-aws": self.secret},
            api_server=self.cluster.url,
            service_account=self.service_account,
        )
        return run, metrics_port, liveness_port

    def start(self, label: str) -> Operator:
        """Start the operator's pod, traced; return once its liveness probe answers. Its podman command,
        log and trace are kept as `<label>-podman-run.txt`, `<label>.log` and `<label>.trace.*`."""
        run, metrics_port, liveness_port = self.pod()
        (self.workdir / f"{label}-podman-run.txt").write_text(" ".join(run.argv()) + "\n")
        op = Operator(run, self.workdir, label, metrics_port, liveness_port)
        try:
            wait_for("the container's liveness probe", op.alive, timeout=180, interval=1)
        except BaseException:
            op.remove()
            raise
        return op

    def control(self, label: str, command: Sequence[str]) -> tuple[str, list[str]]:
        """Run `command` in the pod, traced as the operator is, to its end: its output, and the file
        writes its trace shows outside the pod's writable places."""
        run, _, _ = self.pod()
        output = self.workdir / f"{label}.log"
        with output.open("wb") as out:
            traced = start_traced(run, self.workdir / f"{label}.trace", out, command)
        try:
            assert traced.wait(timeout=120) == 0, output.read_text(errors="replace")
        finally:
            traced.kill()
        return output.read_text(errors="replace"), file_writes(traced.trace, run.writable_paths())


@pytest.fixture(scope="module")
def chart(aws: AwsHandle, cluster: ApiServer, kubectl: Kubectl, workdir: Path) -> Chart:
    return Chart(aws, cluster, kubectl, workdir)


@pytest.fixture(scope="module")
def operator(chart: Chart) -> Iterator[Operator]:
    op = chart.start("operator")
    try:
        yield op
    finally:
        op.remove()


@pytest.fixture(autouse=True)
def nothing_written_on_the_read_only_root(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "operator" in request.fixturenames:
        op: Operator = request.getfixturevalue("operator")
        assert op.read_only_writes() == [], "the operator wrote on its read-only root filesystem"
        writes = op.file_writes()
        assert writes == [], "the operator wrote, or tried to, outside /tmp and /dev:\n" + "\n".join(writes)


def test_the_image_holds_the_operator_and_its_runtime_dependencies_only(
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    """Exactly: the virtualenv's distributions are the closure of q-operator's runtime requirements,
    the package in it lacks its development modules, and the base's interpreter holds no distribution
    at all (its pip, setuptools and wheel went in the Dockerfile's runtime stage)."""
    report = inspect(["podman", "run", "--rm", "--runtime=runc", *_ulimits(), "--entrypoint=python", IMAGE])
    extra, missing = beyond_the_runtime(report)
    assert extra == [], f"in the image but not required by q-operator at run time: {extra}"
    assert missing == [], f"required by q-operator but not in the image: {missing}"
    assert report["modules"] == ["q_operator.engine"], "development modules in the image"
    assert report["base"] == [], f"the base's interpreter holds {report['base']}"
    assert report["tools"] == [], f"on the image's PATH: {report['tools']}"
    # Into the test report (`make image-test` writes it to .tools/image/test/report.xml).
    record_testsuite_property("image", IMAGE)
    size = int(podman("image", "inspect", "--format={{.Size}}", IMAGE).stdout)
    record_testsuite_property("image_size_bytes", size)


def test_the_distribution_check_names_what_a_development_virtualenv_adds() -> None:
    """The check above can fail: run on this test's own virtualenv (q-operator with its dev and standins
    extras), it names the extras' distributions and nothing the operator needs."""
    extra, missing = beyond_the_runtime(inspect([sys.executable]))
    assert {"pytest", "pytest-xdist", "cel-python", "jsonschema", "lupa", "psutil", "cryptography"} <= set(
        extra
    ), extra
    assert not {"kopf", "kubernetes", "botocore", "aiohttp", "pydantic-core"} & set(extra), extra
    assert missing == []


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


def test_a_write_the_operator_would_hide_shows_in_the_trace_as_the_check_expects(chart: Chart) -> None:
    """The trace check that guards every test above can fail, where the log scan cannot: in the pod,
    traced as the operator is, a script swallows the read-only root's refusal of a write beside the
    operator, logs nothing, and has a child process (touch) try one in /var; it also writes in /tmp.
    The check names both refused writes and not the one in /tmp."""
    script = (
        "import subprocess\n"
        "try: open('/opt/venv/state', 'w')\n"
        "except OSError: pass\n"
        "subprocess.run(['touch', '/var/lib/state'], stderr=subprocess.DEVNULL)\n"
        "open('/tmp/scratch', 'w').close()\n"
    )
    output, writes = chart.control("control-write", ["python", "-c", script])
    assert read_only_writes(output) == [], output
    assert any('"/opt/venv/state"' in w for w in writes), writes
    assert any('"/var/lib/state"' in w for w in writes), writes
    assert not any("scratch" in w for w in writes), writes


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
    _take_through_its_life(facts, aws, kubectl, f"image-{facts.info.singular}")


def test_the_liveness_probe_still_answers_after_the_lifecycles(operator: Operator) -> None:
    assert operator.alive()


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
    """`podman stop` sends SIGTERM, as a kubelet does, and kills after the grace. Last of the operator's
    tests: its trace is complete after this one, and checked whole."""
    start = time.monotonic()
    code = operator.stop()
    took = time.monotonic() - start
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


def _take_through_its_life(facts: KindFacts, aws: AwsHandle, kubectl: Kubectl, namespace: str) -> None:
    """The kind's sample in `namespace`: Ready, then updated in place by AWS, then deleted."""
    kind = facts.info
    manifest = _sample(kind)
    name = manifest["metadata"]["name"]
    manifest["metadata"]["namespace"] = namespace
    resource = f"{kind.plural}.{kind.group}"
    since = len(aws.requests())
    kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    created = _wait_ready(kubectl, resource, name, namespace)
    assert created["status"].get(kind.id_field), created["status"]

    facts.change(manifest["spec"], name, 1)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    updated = _wait_ready(
        kubectl, resource, name, namespace, generation=created["metadata"]["generation"] + 1
    )
    assert _calls(aws, facts.update_op, since), f"no {facts.update_op} reached AWS"
    assert updated["status"][kind.id_field] == created["status"][kind.id_field]

    kubectl("delete", resource, name, "-n", namespace, "--wait=false")
    wait_for(f"{name} to be deleted", lambda: kubectl.get(resource, name, namespace) is None, timeout=180)
    assert _calls(aws, facts.delete_op, since), f"no {facts.delete_op} reached AWS"


def _calls(aws: AwsHandle, operation: str, since: int = 0) -> list[dict[str, Any]]:
    """The operator's calls of `operation` (the stand-in logs every call), from the `since`th call on."""
    return [call for call in aws.requests()[since:] if call.get("operation") == operation]
