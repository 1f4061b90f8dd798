"""Smoke test of the engine end to end: `q-operator run` against the real kube-apiserver and the AWS
stand-in converges a plugin through operator crashes (kill -9) with exactly one CreatePlugin effect,
then deletes it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import QPLUGINS

pytestmark = pytest.mark.e2e


AWS_ARGS = ["--build-seconds", "1"]


@pytest.fixture(scope="module")
def box(sandbox: Sandbox) -> Sandbox:
    return sandbox


def manifest(name: str, namespace: str, application_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "qbusiness.q-operator.dev/v1alpha1",
        "kind": "QPlugin",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "applicationId": application_id,
            "displayName": name,
            "type": "CUSTOM",
            "authConfiguration": {"noAuthConfiguration": {}},
            "customPluginConfiguration": {
                "description": "smoke",
                "apiSchemaType": "OPEN_API_V3",
                "apiSchema": {
                    "payload": '{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}'
                },
            },
        },
    }


def plugins(box: Sandbox, application_id: str) -> list[dict[str, Any]]:
    state: dict[str, Any] = box.aws("GET", "/_emulator/state")
    found = []
    for region in state.values():
        for plugin in region.get("plugins", []):
            if plugin.get("application_id") == application_id:
                found.append(plugin)
    return found


def test_crashes_during_create_leave_one_plugin_and_deletion_releases(box: Sandbox, namespace: str) -> None:
    app = str(uuid.uuid4())
    box.kubectl("apply", "-f", "-", input=json.dumps(manifest("smoke", namespace, app)))
    for pause in (0.3, 0.6, 1.0):  # kill -9 at different moments of the create
        time.sleep(pause)
        box.stop_operator(kill=True)
        box.start_operator()
    obj = box.wait_condition(QPLUGINS, namespace, "smoke", "Ready", timeout=60)
    [plugin] = plugins(box, app)
    assert obj["status"]["pluginId"] == plugin["plugin_id"]
    assert condition(obj, "Synced", "True")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert "createPending" not in obj["status"]

    box.kubectl("delete", "qplugin", "smoke", "-n", namespace, "--wait=false")
    wait_for("the object to be released", lambda: box.get(QPLUGINS, namespace, "smoke") is None, timeout=60)
    assert plugins(box, app) == []
    assert any(Path(box.workdir).glob("operator-*.log"))
