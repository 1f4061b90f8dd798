"""`q-operator apiserver` and the ApiServer the end-to-end suite runs on: the real kube-apiserver and
etcd, started as envtest starts them, with what the tests and users rely on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from q_operator.apiserver import ApiServer
from q_operator.registry import KINDS
from q_operator.sandbox import CRDS_DIR, KUBECTL, wait_for


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of this module's own (it is restarted), with the watch cache off."""
    with ApiServer(tmp_path_factory.mktemp("own-apiserver"), watch_cache=False) as own:
        yield own


def test_the_cli_serves_until_sigterm_then_removes_its_data(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    workdir = tmp_path / "work"
    # An earlier run's kubeconfig names a server that is gone: it must not look like this one's.
    kubeconfig.write_text("stale: an earlier server's\n")
    argv = ["apiserver", "--kubeconfig", str(kubeconfig), "--crds", str(CRDS_DIR), "--workdir", str(workdir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "q_operator", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for("the stale kubeconfig removed", lambda: not kubeconfig.exists(), timeout=30, interval=0.02)
        wait_for("the new kubeconfig", kubeconfig.exists, timeout=120, interval=0.02)
        # Written once /readyz answers, whole (atomically) and for its owner only: it holds the admin key.
        assert kubectl(kubeconfig, "get", "--raw", "/readyz").stdout == "ok"
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        assert (workdir / "kubeconfig").stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig", "work"]  # no temporary left
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY https://127.0.0.1:"), line + (proc.stderr.read() if proc.stderr else "")
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == line.split()[1]
        # The CRDs are Established before READY: kubectl knows the kinds at once.
        listed = kubectl(kubeconfig, "get", ",".join(kind.plural for kind in KINDS), "-A")
        assert listed.returncode == 0, listed.stderr
        version = json.loads(kubectl(kubeconfig, "version", "-o", "json").stdout)["serverVersion"]
        assert version["gitVersion"].startswith("v1.") and version["minor"] != "0"
        assert (workdir / "etcd-data").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not (workdir / "etcd-data").exists()


def test_a_token_from_the_token_request_api_authenticates_as_the_service_account(server: ApiServer) -> None:
    server.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}}
    )
    token = server.service_account_token("default", "robot", seconds=600)
    review = server.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=token,
    )
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:default:robot"


def test_restarting_kube_apiserver_keeps_the_data_on_the_same_address(server: ApiServer) -> None:
    created = server.request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"k": "v"}},
    )
    url = server.url
    server.restart_apiserver()
    assert server.url == url
    kept = server.request("GET", "/api/v1/namespaces/default/configmaps/kept")
    assert kept["metadata"]["uid"] == created["metadata"]["uid"]


def test_a_watch_from_before_an_etcd_compaction_gets_410_gone(server: ApiServer) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    first = server.request(
        "POST",
        path,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old"}, "data": {"n": "0"}},
    )
    for n in range(1, 4):
        server.request(
            "PATCH", f"{path}/old", {"data": {"n": str(n)}}, content_type="application/merge-patch+json"
        )
    revision = server.compact_etcd()
    assert revision > int(first["metadata"]["resourceVersion"])

    def expired() -> bool:
        old = first["metadata"]["resourceVersion"]
        raw = server.request("GET", f"{path}?watch=1&resourceVersion={old}&timeoutSeconds=1", raw=True)
        event = json.loads(raw.splitlines()[0]) if raw else {}
        return bool(event.get("type") == "ERROR" and event["object"]["code"] == 410)

    wait_for("a watch from the compacted revision to expire", expired, timeout=10)
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.request(
            "GET", f"{path}?resourceVersion={first['metadata']['resourceVersion']}&resourceVersionMatch=Exact"
        )
    assert refused.value.code == 410


def test_the_demo_runs_on_the_real_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "q_operator", "demo", "--apiserver", "--timeout=60"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "kube-apiserver and etcd" in result.stdout
    assert "NOT Ready" not in result.stdout
    assert "REFUSED samples/qplugin-invalid.yaml" in result.stdout
