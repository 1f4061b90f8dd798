"""QPlugin recovery end to end: drift and out-of-band deletion (kill -9 in the crash window is in
test_kinds.py, for every kind).

The operator here runs with a 2-second drift interval so out-of-band changes are seen quickly.
"""

from __future__ import annotations

from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import QPLUGIN, QPLUGINS, qplugin

from .helpers import apply, client, listed, new_application_id

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
    assert [p["pluginId"] for p in listed(sandbox, QPLUGIN, applicationId=app)] == [plugin_id]


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
    assert len(listed(sandbox, QPLUGIN, applicationId=app)) == 1
