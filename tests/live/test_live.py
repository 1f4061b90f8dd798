"""The core scenarios against a REAL cluster and REAL AWS — only when a user opts in.

Opt in with Q_OPERATOR_LIVE=1 and point the standard variables at what you own:
KUBECONFIG (a cluster where `kubectl apply -f crds/` has been run), AWS credentials and AWS_REGION,
and Q_OPERATOR_LIVE_APPLICATION_ID (an Amazon Q Business application the plugin may be created in).
The test runs `q-operator run` on this machine against that cluster, creates one CUSTOM plugin in
namespace Q_OPERATOR_LIVE_NAMESPACE (default `default`), updates it, deletes it, and checks each step
through boto3. Without the opt-in every test here is skipped with a message: nothing in `make test`
ever reaches a real cluster or AWS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from q_operator.sandbox import KUBECTL, wait_for

LIVE = os.environ.get("Q_OPERATOR_LIVE") == "1"
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not LIVE, reason="live tests need Q_OPERATOR_LIVE=1 plus a real cluster and AWS account"
    ),
]
NAMESPACE = os.environ.get("Q_OPERATOR_LIVE_NAMESPACE", "default")


def kubectl(*args: str, input: str | None = None) -> str:
    return subprocess.run(
        [str(KUBECTL), *args], input=input, capture_output=True, text=True, check=True, timeout=120
    ).stdout


def get(name: str) -> dict[str, Any] | None:
    out = subprocess.run(
        [str(KUBECTL), "get", "qplugin", name, "-n", NAMESPACE, "-o", "json"], capture_output=True, text=True
    )
    return json.loads(out.stdout) if out.returncode == 0 else None


@pytest.fixture(scope="module")
def operator() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "q_operator", "run", f"--namespace={NAMESPACE}", "--standalone"],
        start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_a_custom_plugin_lives_and_dies_in_real_aws(operator: subprocess.Popen[bytes]) -> None:
    import boto3

    application_id = os.environ["Q_OPERATOR_LIVE_APPLICATION_ID"]
    name = f"q-operator-live-{uuid.uuid4().hex[:8]}"
    manifest = {
        "apiVersion": "qbusiness.q-operator.dev/v1alpha1",
        "kind": "QPlugin",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "applicationId": application_id,
            "displayName": name,
            "type": "CUSTOM",
            "authConfiguration": {"noAuthConfiguration": {}},
            "customPluginConfiguration": {
                "description": "q-operator live test",
                "apiSchemaType": "OPEN_API_V3",
                "apiSchema": {
                    "payload": json.dumps(
                        {"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}
                    )
                },
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kubectl("wait", "--for=condition=Ready", f"qplugin/{name}", "-n", NAMESPACE, "--timeout=10m")
    plugin_id = (get(name) or {})["status"]["pluginId"]
    qbusiness = boto3.client("qbusiness")
    assert qbusiness.get_plugin(applicationId=application_id, pluginId=plugin_id)["displayName"] == name
    kubectl("delete", "qplugin", name, "-n", NAMESPACE, "--timeout=10m")

    def gone() -> bool:
        try:
            qbusiness.get_plugin(applicationId=application_id, pluginId=plugin_id)
        except qbusiness.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_for("the plugin deleted in AWS", gone, timeout=600, interval=5)
