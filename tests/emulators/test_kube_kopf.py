"""A tiny kopf operator runs against the Kubernetes stand-in exactly as it would against a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config import kube_config

from q_operator.emulate.kube.server import KubeEmulator, running_kube_emulator
from q_operator.sandbox import wait_for

FIXTURES = Path(__file__).parent / "fixtures"
GROUP, VERSION, PLURAL, NS = "test.example.com", "v1", "widgets", "default"

OPERATOR = """
import os
from pathlib import Path

import kopf

FINALIZER = "test.example.com/kopf-finalizer"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 40


@kopf.on.create("test.example.com", "v1", "widgets")
def created(body, patch, **_):
    kopf.info(body, reason="Created", message="widget created")
    patch.status["phase"] = "Created"


@kopf.on.update("test.example.com", "v1", "widgets", field="spec")
def updated(spec, patch, **_):
    patch.status["phase"] = f"Updated-{spec['size']}"


@kopf.on.delete("test.example.com", "v1", "widgets")
def deleted(name, **_):
    Path(os.environ["DELETED_MARKER"]).write_text(name)
"""


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
    with running_kube_emulator(crds=FIXTURES) as emu:
        yield emu


def test_kopf_operator_with_peering_creates_updates_and_deletes_with_a_finalizer_and_status(
    emulator: KubeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = tmp_path / "handlers.py"
    handlers.write_text(OPERATOR)
    marker = tmp_path / "deleted"
    monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig))
    # The client library read KUBECONFIG when first imported; kopf's login goes through it.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(emulator.kubeconfig))
    monkeypatch.setenv("DELETED_MARKER", str(marker))
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
    custom = client.CustomObjectsApi(api)

    def get() -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "k1")
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "emulated"}}
    custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)

    def peers() -> dict[str, Any]:
        obj = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "emulated")
        result: dict[str, Any] = obj.get("status") or {}
        return result

    args = ["run", "--all-namespaces", "--peering=emulated", str(handlers)]
    with KopfRunner(args, timeout=60) as runner:
        wait_for("kopf to announce itself in its ClusterKopfPeering", peers, timeout=20)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": "k1"},
            "spec": {"displayName": "kopf"},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
        obj = wait_for(
            "create",
            lambda: (o := get()) and (o.get("status") or {}).get("phase") == "Created" and o,
            timeout=20,
        )
        assert "test.example.com/kopf-finalizer" in obj["metadata"]["finalizers"]

        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "k1", {"spec": {"size": 7}})
        wait_for(
            "update", lambda: (o := get()) and (o.get("status") or {}).get("phase") == "Updated-7", timeout=20
        )

        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "k1")
        wait_for("the finalizer to be removed and the object to go", lambda: get() is None, timeout=20)
        assert marker.read_text() == "k1"

        core = client.CoreV1Api(api)

        def messages() -> list[str]:
            events = core.list_namespaced_event(NS, field_selector="involvedObject.name=k1")
            return [e.message or "" for e in events.items]

        wait_for("kopf's event", lambda: "widget created" in messages(), timeout=20)
    api.close()
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    verbs = {(e["verb"], e["resource"], e["subresource"]) for e in emulator.requests()}
    assert {("watch", "widgets", ""), ("patch", "widgets", ""), ("patch", "widgets", "status")} <= verbs
