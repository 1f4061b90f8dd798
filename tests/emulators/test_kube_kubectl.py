"""kubectl 1.32 against the Kubernetes stand-in, with default flags, as a user would drive a real cluster."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from q_operator.emulate.kube.server import KubeEmulator, running_kube_emulator
from q_operator.sandbox import wait_for

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed (make install)")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEmulator]:
    """A stand-in started without CRDs: kubectl installs them, as on a fresh cluster."""
    with running_kube_emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def kubectl(emulator: KubeEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    k = Kubectl(emulator, cache)
    out = k.ok("apply", "-f", str(FIXTURES))
    assert "customresourcedefinition.apiextensions.k8s.io/widgets.test.example.com created" in out
    k.ok("wait", "--for=condition=Established", "crd/widgets.test.example.com", "--timeout=10s")
    yield k


class Kubectl:
    def __init__(self, emulator: KubeEmulator, cache: Path) -> None:
        self.base = [
            str(KUBECTL),
            f"--kubeconfig={emulator.kubeconfig}",
            f"--cache-dir={cache}",
            "--request-timeout=10s",
        ]
        self.workdir = cache

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.base, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


def manifest(name: str, display: str = "hello", extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        apiVersion: test.example.com/v1
        kind: Widget
        metadata:
          name: {name}
          namespace: default
        spec:
          displayName: "{display}"
          color: red
        """
        )
        + extra
    )


def test_api_resources_show_the_custom_resources(kubectl: Kubectl) -> None:
    out = kubectl.ok("api-resources", "--api-group=test.example.com")
    line = next(row for row in out.splitlines() if row.startswith("widgets"))
    assert line.split() == ["widgets", "wd", "test.example.com/v1", "true", "Widget"]


def test_apply_creates_then_configures_and_get_shows_printer_columns(kubectl: Kubectl) -> None:
    assert (
        kubectl.ok("apply", "-f", "-", stdin=manifest("gizmo")).strip()
        == "widget.test.example.com/gizmo created"
    )
    out = kubectl.ok("apply", "-f", "-", stdin=manifest("gizmo", "hello-again"))
    assert out.strip() == "widget.test.example.com/gizmo configured"
    out = kubectl.ok("apply", "-f", "-", stdin=manifest("gizmo", "hello-again"))
    assert out.strip() == "widget.test.example.com/gizmo unchanged"
    lines = kubectl.ok("get", "wd").splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert lines[1].split()[:2] == ["gizmo", "3"]
    assert "gizmo" in kubectl.ok("get", "example", "--all-namespaces")
    assert kubectl.ok("get", "wd", "gizmo", "-o", "jsonpath={.spec.displayName} {.metadata.generation}") == (
        "hello-again 2"
    )


def test_apply_of_an_invalid_manifest_shows_the_field_errors(kubectl: Kubectl) -> None:
    result = kubectl.run(
        "apply", "-f", "-", stdin=manifest("broken", "a b").replace("color: red", "color: pink")
    )
    assert result.returncode != 0
    assert 'The Widget "broken" is invalid:' in result.stderr
    assert (
        "* spec.displayName: Invalid value: \"a b\": spec.displayName in body should match '^[a-zA-Z0-9-]+$'"
        in (result.stderr)
    )
    assert (
        '* spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"' in result.stderr
    )


def test_apply_of_an_unknown_field_is_refused_by_strict_validation(kubectl: Kubectl) -> None:
    result = kubectl.run("apply", "-f", "-", stdin=manifest("strict", extra="  bogus: 1\n"))
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.bogus"' in result.stderr


def test_patch_merge_and_json_and_the_strategic_default_is_refused(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=manifest("patchy"))
    kubectl.ok("patch", "wd", "patchy", "--type=merge", "-p", '{"spec":{"size":7}}')
    kubectl.ok(
        "patch", "wd", "patchy", "--type=json", "-p", '[{"op":"replace","path":"/spec/size","value":8}]'
    )
    assert kubectl.ok("get", "wd", "patchy", "-o", "jsonpath={.spec.size}") == "8"
    refused = kubectl.run("patch", "wd", "patchy", "-p", '{"spec":{"size":9}}')
    assert (
        refused.returncode != 0
        and "application/strategic-merge-patch+json is not supported" in refused.stderr
    )
    failed = kubectl.run(
        "patch", "wd", "patchy", "--type=json", "-p", '[{"op":"test","path":"/spec/size","value":1}]'
    )
    assert failed.returncode != 0 and "the server rejected our request" in failed.stderr


def test_wait_for_condition_ready_returns_when_status_says_so(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=manifest("waiter"))
    waiting = kubectl.popen("wait", "--for=condition=Ready", "wd/waiter", "--timeout=20s")
    status = '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done","message":"ok"}]}}'
    kubectl.ok("patch", "wd", "waiter", "--subresource=status", "--type=merge", "-p", status)
    out, err = waiting.communicate(timeout=25)
    assert waiting.returncode == 0, err
    assert "widget.test.example.com/waiter condition met" in out
    assert kubectl.ok("get", "wd", "waiter").splitlines()[1].split()[2] == "True"


def test_describe_shows_the_object_and_its_events(kubectl: Kubectl, emulator: KubeEmulator) -> None:
    kubectl.ok("apply", "-f", "-", stdin=manifest("described"))
    uid = kubectl.ok("get", "wd", "described", "-o", "jsonpath={.metadata.uid}")
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
    client.CoreV1Api(api).create_namespaced_event(
        "default",
        {
            "metadata": {"generateName": "described-"},
            "involvedObject": {
                "apiVersion": "test.example.com/v1",
                "kind": "Widget",
                "name": "described",
                "namespace": "default",
                "uid": uid,
            },
            "reason": "Synced",
            "message": "all good",
            "type": "Normal",
            "source": {"component": "tester"},
        },
    )
    api.close()
    out = kubectl.ok("describe", "wd", "described")
    assert "Display Name:  hello" in out
    assert "Synced" in out and "all good" in out


def test_explain_reads_the_crd_schema(kubectl: Kubectl) -> None:
    out = kubectl.ok("explain", "widget.spec")
    assert "WidgetSpec is what the user wants." in out
    assert "displayName\t<string> -required-" in out
    assert "DisplayName is shown to humans." in kubectl.ok("explain", "wd.spec.displayName")


def count_deletes(emulator: KubeEmulator, name: str) -> int:
    return sum(1 for e in emulator.requests() if e["verb"] == "delete" and e["name"] == name)


def test_delete_waits_for_finalizers_and_returns_when_gone(kubectl: Kubectl, emulator: KubeEmulator) -> None:
    kubectl.ok(
        "apply",
        "-f",
        "-",
        stdin=manifest("held", extra="").replace(
            "  namespace: default\n", "  namespace: default\n  finalizers: [example.com/hold]\n"
        ),
    )
    assert (
        kubectl.ok("delete", "wd", "held", "--wait=false").strip() == 'widget.test.example.com "held" deleted'
    )
    assert kubectl.ok("get", "wd", "held", "-o", "jsonpath={.metadata.deletionTimestamp}")
    deletes_before = count_deletes(emulator, "held")
    deleting = kubectl.popen("delete", "wd", "held", "--timeout=20s")
    # kubectl has sent its DELETE: now let it go
    wait_for(
        "kubectl's DELETE to reach the server",
        lambda: count_deletes(emulator, "held") > deletes_before,
        timeout=15,
        interval=0.05,
    )
    kubectl.ok("patch", "wd", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    _, err = deleting.communicate(timeout=25)
    assert deleting.returncode == 0, err
    assert "NotFound" in kubectl.run("get", "wd", "held").stderr


def test_built_in_kinds_work_imperatively_and_with_apply(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "imperative")
    kubectl.ok("create", "configmap", "settings", "-n", "imperative", "--from-literal=a=1")
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: imperative\n"
        "data:\n  a: '1'\n  b: '2'\n"
    )
    assert kubectl.ok("apply", "-f", "-", stdin=cm).strip() == "configmap/settings configured"
    assert kubectl.ok("get", "cm", "settings", "-n", "imperative", "-o", "jsonpath={.data.b}") == "2"
    kubectl.ok("delete", "namespace", "imperative", "--timeout=20s")
    assert "NotFound" in kubectl.run("get", "namespace", "imperative").stderr


HELM = ROOT / ".tools" / "bin" / "helm"

CHART_FILES = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\n",
    "templates/all.yaml": textwrap.dedent(
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: tiny-settings
        data:
          replicas: "{{ .Values.replicas }}"
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata:
          name: tiny
        rules:
          - apiGroups: [test.example.com]
            resources: [widgets]
            verbs: [list, watch, patch]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: tiny
        spec:
          replicas: {{ .Values.replicas }}
          selector:
            matchLabels: {app: tiny}
          template:
            metadata:
              labels: {app: tiny}
            spec:
              containers:
                - name: main
                  image: example.com/tiny:1
        """
    ),
}


@pytest.mark.skipif(not HELM.exists(), reason="helm is not installed (make install)")
def test_helm_installs_upgrades_and_uninstalls_a_chart(
    kubectl: Kubectl, emulator: KubeEmulator, tmp_path: Path
) -> None:
    chart = tmp_path / "tiny"
    for name, text in CHART_FILES.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    helm = [str(HELM), f"--kubeconfig={emulator.kubeconfig}", "--namespace=default"]

    def run(*args: str) -> str:
        result = subprocess.run(
            [*helm, *args], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "STATUS: deployed" in run("install", "tiny", str(chart))
    run("upgrade", "tiny", str(chart), "--set", "replicas=3")
    deployment = kubectl.ok(
        "get", "deployment", "tiny", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"
    )
    assert deployment == "3 2"
    assert kubectl.ok("get", "cm", "tiny-settings", "-o", "jsonpath={.data.replicas}") == "3"
    run("uninstall", "tiny")
    assert "NotFound" in kubectl.run("get", "deployment", "tiny").stderr
    assert "NotFound" in kubectl.run("get", "clusterrole", "tiny").stderr


def test_deleting_the_crds_removes_their_objects_and_the_resource_type(tmp_path: Path) -> None:
    with running_kube_emulator() as emu:
        k = Kubectl(emu, tmp_path)
        k.ok("apply", "-f", str(FIXTURES))
        k.ok("apply", "-f", "-", stdin=manifest("doomed"))
        deleted = k.ok("delete", "-f", str(FIXTURES), "--timeout=20s")
        assert 'customresourcedefinition.apiextensions.k8s.io "widgets.test.example.com" deleted' in deleted
        gone = k.run("get", "widgets")
        # kubectl's cached discovery still maps the kind at first: the server's 404 is what says it is gone.
        assert gone.returncode != 0
        assert (
            "could not find the requested resource" in gone.stderr
            or "doesn't have a resource type" in gone.stderr
        )
        assert emu.call(lambda: emu.server.store.items(("test.example.com", "widgets"))) == []


def test_server_side_apply_through_kubectl(kubectl: Kubectl) -> None:
    with_size = manifest("ssa").replace("  color: red\n", "  color: red\n  size: 7\n")
    assert "serverside-applied" in kubectl.ok("apply", "--server-side", "-f", "-", stdin=with_size)
    assert kubectl.ok("get", "wd", "ssa", "-o", "jsonpath={.spec.size}") == "7"
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=manifest("ssa"))
    assert kubectl.ok("get", "wd", "ssa", "-o", "jsonpath={.spec.size}") == "3"  # dropped, then defaulted
