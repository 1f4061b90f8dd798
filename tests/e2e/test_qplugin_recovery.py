"""QPlugin recovery end to end: drift, out-of-band deletion and kill -9 in the crash window.

The operator here runs with a 2-second drift interval so out-of-band changes are seen quickly.
"""

from __future__ import annotations

from typing import Any

from q_operator.sandbox import Sandbox, condition, wait_for

from .helpers import QPLUGINS, apply, client, new_application_id, plugins_in, qplugin

OPERATOR_ENV = {"Q_OPERATOR_DRIFT_SECONDS": "2"}


def test_out_of_band_change_is_corrected_by_drift_detection(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("steady", namespace, applicationId=app))
    plugin_id = sandbox.wait_condition(QPLUGINS, namespace, "steady", "Ready")["status"]["pluginId"]
    qbusiness = client(sandbox, "qbusiness")
    wait_for(
        "the build to finish",
        lambda: qbusiness.get_plugin(applicationId=app, pluginId=plugin_id)["buildStatus"] == "READY",
    )
    qbusiness.update_plugin(applicationId=app, pluginId=plugin_id, displayName="renamed-by-hand")

    def corrected() -> bool:
        got = qbusiness.get_plugin(applicationId=app, pluginId=plugin_id)
        return bool(got["displayName"] == "steady" and got["buildStatus"] == "READY")

    wait_for("the display name put back", corrected, timeout=60)
    assert [p["pluginId"] for p in plugins_in(sandbox, app)] == [plugin_id]


def test_out_of_band_deletion_is_recreated_by_drift_detection(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("phoenix", namespace, applicationId=app))
    old = sandbox.wait_condition(QPLUGINS, namespace, "phoenix", "Ready")["status"]["pluginId"]
    qbusiness = client(sandbox, "qbusiness")
    wait_for(
        "the build to finish",
        lambda: qbusiness.get_plugin(applicationId=app, pluginId=old)["buildStatus"] == "READY",
    )
    qbusiness.delete_plugin(applicationId=app, pluginId=old)

    def recreated() -> bool:
        obj = sandbox.get(QPLUGINS, namespace, "phoenix") or {}
        return bool(
            obj.get("status", {}).get("pluginId") not in (None, old) and condition(obj, "Ready", "True")
        )

    wait_for("a new plugin after out-of-band deletion", recreated, timeout=60)
    assert len(plugins_in(sandbox, app)) == 1


def _aws_plugins(sandbox: Sandbox, application_id: str) -> list[dict[str, Any]]:
    state = sandbox.aws("GET", "/_emulator/state")
    return [
        p
        for region in state.values()
        for p in region.get("plugins", [])
        if p.get("application_id") == application_id
    ]


def test_kill_9_between_create_and_status_write_never_duplicates(sandbox: Sandbox, namespace: str) -> None:
    """Every AWS answer is delayed 1.5 s, so AWS has created the plugin while the operator still
    waits for the answer; the operator is killed right then and never learns the ID. After the
    restart exactly one plugin exists and the object owns it. Repeated to vary the moment."""
    for attempt in range(3):
        app = new_application_id()
        name = f"crashy{attempt}"
        sandbox.aws("POST", "/_emulator/config", {"latency_ms": 1500})
        try:
            apply(sandbox, qplugin(name, namespace, applicationId=app))
            wait_for(
                "AWS to create the plugin",
                lambda app=app: _aws_plugins(sandbox, app),
                timeout=30,
                interval=0.02,
            )
            sandbox.stop_operator(kill=True)
            obj = sandbox.get(QPLUGINS, namespace, name) or {}
            assert not obj.get("status", {}).get("pluginId"), "the ID must not have been recorded yet"
        finally:
            sandbox.aws("POST", "/_emulator/config", {"latency_ms": 0})
        sandbox.start_operator()
        obj = sandbox.wait_condition(QPLUGINS, namespace, name, "Ready")
        plugins = plugins_in(sandbox, app)
        assert len(plugins) == 1, plugins
        assert obj["status"]["pluginId"] == plugins[0]["pluginId"]
