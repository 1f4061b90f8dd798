"""What a user sees through kubectl and Argo CD, on real objects the operator reconciled.

kubectl is the one `make install` provides; the Argo CD health checks (argocd/*.lua) run under Lua 5.1
on the live objects, and the objects are recorded into tests/fixtures/status/ when
Q_OPERATOR_RECORD_FIXTURES=1 so the unit tests of the health checks run on real status too.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from q_operator.sandbox import REPO_ROOT, Sandbox, condition, wait_for
from tests.argocd import user_fields_drift
from tests.unit.test_argocd_health import health

from .helpers import QPLUGINS, apply, qplugin

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "status"
SAMPLES = {
    "QPlugin": (
        "qplugin",
        "samples/qplugin-custom.yaml",
        "weather",
        "qbusiness.q-operator.dev/v1alpha1/qplugins",
    ),
    "QLibraryItem": (
        "qlibraryitem",
        "samples/qlibraryitem-published.yaml",
        "expense-helper",
        "qapps.q-operator.dev/v1alpha1/qlibraryitems",
    ),
    "AppFlowConnector": (
        "appflowconnector",
        "samples/appflowconnector-lambda.yaml",
        "inventory-connector",
        "appflow.q-operator.dev/v1alpha1/appflowconnectors",
    ),
}


def _record(name: str, obj: dict[str, Any]) -> None:
    if os.environ.get("Q_OPERATOR_RECORD_FIXTURES") == "1":
        keep = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec", "status") if k in obj}
        for noisy in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
            keep["metadata"].pop(noisy, None)
        (FIXTURES / f"{name}.json").write_text(json.dumps(keep, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def samples_ready(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """The three kinds' samples applied with kubectl and waited on with `kubectl wait`."""
    live = {}
    for kind, (short, path, name, api) in SAMPLES.items():
        sandbox.kubectl("apply", "-f", str(REPO_ROOT / path))
        sandbox.kubectl("wait", "--for=condition=Ready", f"{short}/{name}", "--timeout=60s", timeout=90)
        live[kind] = sandbox.get(api, "default", name) or {}
    return live


def test_kubectl_wait_for_ready_returns_once_ready(samples_ready: dict[str, dict[str, Any]]) -> None:
    for obj in samples_ready.values():
        assert condition(obj, "Ready", "True", current=True), obj.get("status")


def test_kubectl_get_shows_the_printer_columns(sandbox: Sandbox, samples_ready: dict[str, Any]) -> None:
    out = sandbox.kubectl("get", "qp", "weather").stdout
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "READY", "SYNCED", "BUILD", "PLUGIN", "ID", "AGE"]
    plugin_id = samples_ready["QPlugin"]["status"]["pluginId"]
    assert row.split()[:5] == ["weather", "True", "True", "READY", plugin_id]
    out = sandbox.kubectl("get", "qli", "expense-helper").stdout
    assert samples_ready["QLibraryItem"]["status"]["libraryItemId"] in out and "True" in out
    out = sandbox.kubectl("get", "afc", "inventory-connector").stdout
    assert "inventory-connector" in out.splitlines()[1] and "True" in out


def test_the_q_operator_category_lists_all_three_kinds(
    sandbox: Sandbox, samples_ready: dict[str, Any]
) -> None:
    out = sandbox.kubectl("get", "q-operator", "-o", "name").stdout.split()
    assert "qplugin.qbusiness.q-operator.dev/weather" in out
    assert "qlibraryitem.qapps.q-operator.dev/expense-helper" in out
    assert "appflowconnector.appflow.q-operator.dev/inventory-connector" in out


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("qplugin.spec.authConfiguration", "exactly one"),
        ("qplugin.spec.customPluginConfiguration.apiSchema.payloadFrom", "ConfigMap"),
        ("qplugin.status.buildStatus", "build"),
        ("qlibraryitem.spec.appVersion", "version"),
        ("appflowconnector.spec.connectorLabel", "label"),
        ("appflowconnector.spec.deletionPolicy", "Retain"),
    ],
)
def test_kubectl_explain_describes_fields(sandbox: Sandbox, path: str, words: str) -> None:
    out = sandbox.kubectl("explain", path).stdout
    assert "DESCRIPTION:" in out
    assert words.lower() in out.lower()


def test_kubectl_describe_shows_the_created_event(sandbox: Sandbox, samples_ready: dict[str, Any]) -> None:
    def created_event() -> bool:
        out = sandbox.kubectl("describe", "qp", "weather").stdout
        return "Created" in out and "Events:" in out

    wait_for("the Created event in kubectl describe", created_event, timeout=30)


def test_argo_cd_sees_no_drift_the_operator_caused(sandbox: Sandbox, samples_ready: dict[str, Any]) -> None:
    import yaml

    for kind, (_, path, name, api) in SAMPLES.items():
        manifest = next(
            d for d in yaml.safe_load_all((REPO_ROOT / path).read_text()) if d and d.get("kind") == kind
        )
        live = sandbox.get(api, "default", name) or {}
        assert user_fields_drift(manifest, live) == [], kind
        assert live["metadata"]["generation"] == 1, f"{kind}: the operator must never write spec"


def test_argo_cd_health_checks_on_live_objects(
    sandbox: Sandbox, samples_ready: dict[str, Any], namespace: str
) -> None:
    for kind, (short, *_) in SAMPLES.items():
        obj = samples_ready[kind]
        assert health(short, obj)[0] == "Healthy", (kind, obj.get("status"))
        _record(f"{short}-healthy-recorded-ready", obj)

    # Progressing while the build runs: a plugin caught right after its create.
    sandbox.aws("POST", "/_emulator/config", {"build_seconds": 5})
    try:
        apply(sandbox, qplugin("slow", namespace))

        def building() -> dict[str, Any] | None:
            obj = sandbox.get(QPLUGINS, namespace, "slow") or {}
            return obj if obj.get("status", {}).get("buildStatus") == "CREATE_IN_PROGRESS" else None

        obj = wait_for("the plugin to be building", building, timeout=30, interval=0.05)
        assert health("qplugin", obj)[0] == "Progressing", obj.get("status")
        _record("qplugin-progressing-recorded-building", obj)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"build_seconds": 0.5})

    # Degraded when the build fails: the user must change something.
    sandbox.aws("POST", "/_emulator/config", {"fail_builds_matching": "^doomed$"})
    try:
        apply(sandbox, qplugin("doomed", namespace))

        def failed() -> dict[str, Any] | None:
            obj = sandbox.get(QPLUGINS, namespace, "doomed") or {}
            ready = condition(obj, "Ready", "False") or {}
            return obj if ready.get("reason") == "BuildFailed" else None

        obj = wait_for("the build to fail", failed, timeout=30)
        assert health("qplugin", obj)[0] == "Degraded", obj.get("status")
        _record("qplugin-degraded-recorded-build-failed", obj)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"fail_builds_matching": None})
