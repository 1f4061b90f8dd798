"""QPlugin when things go wrong: what the user sees, and that the operator never hot-loops on AWS.

Also a ConfigMap-held OpenAPI document whose change reaches AWS (adoption by ID is in test_kinds.py,
for every kind).
"""

from __future__ import annotations

import time

from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import OPENAPI, QPLUGIN, QPLUGINS, qplugin

from .helpers import apply, calls, client, listed, new_application_id, wait_synced_false


def _calls_during(sandbox: Sandbox, seconds: float, operation: str | None = None) -> int:
    """AWS calls (of `operation`) the operator makes in a window: the no-hot-loop measurement."""
    before = len(calls(sandbox, operation))
    time.sleep(seconds)  # a measurement window, not a wait for a result
    return len(calls(sandbox, operation)) - before


def test_unknown_application_is_reported_naming_the_field_without_a_hot_loop(
    sandbox: Sandbox, namespace: str
) -> None:
    known = new_application_id()
    sandbox.aws("POST", "/_emulator/config", {"known_applications": [known]})
    try:
        apply(sandbox, qplugin("lost", namespace, applicationId=new_application_id()))
        cond = wait_synced_false(sandbox, QPLUGINS, namespace, "lost", "DependencyNotFound")
        assert "applicationId" in str(cond["message"])
        assert _calls_during(sandbox, 5, "CreatePlugin") <= 1
    finally:
        sandbox.aws("POST", "/_emulator/config", {"known_applications": None})


def test_access_denied_is_reported_and_retried_slowly(sandbox: Sandbox, namespace: str) -> None:
    sandbox.aws("POST", "/_emulator/config", {"access_denied": ["qbusiness:CreatePlugin"]})
    try:
        apply(sandbox, qplugin("denied", namespace, applicationId=new_application_id()))
        cond = wait_synced_false(sandbox, QPLUGINS, namespace, "denied", "AccessDenied")
        assert "CreatePlugin" in str(cond["message"]) or "may not" in str(cond["message"])
        assert _calls_during(sandbox, 5, "CreatePlugin") == 0
    finally:
        sandbox.aws("POST", "/_emulator/config", {"access_denied": []})


def test_validation_error_from_aws_is_reported_and_not_retried_until_the_spec_changes(
    sandbox: Sandbox, namespace: str
) -> None:
    sandbox.aws(
        "POST",
        "/_emulator/config",
        {
            "inject": [
                {
                    "operation": "CreatePlugin",
                    "error": "ValidationException",
                    "count": 1,
                    "message": "serverUrl is not reachable",
                    "fields": {"reason": "FIELD_VALIDATION_FAILED"},
                }
            ]
        },
    )
    app = new_application_id()
    apply(sandbox, qplugin("refused", namespace, applicationId=app))
    cond = wait_synced_false(sandbox, QPLUGINS, namespace, "refused", "AwsValidationError")
    assert "serverUrl is not reachable" in str(cond["message"])
    assert _calls_during(sandbox, 4, "CreatePlugin") == 0
    # A spec change is the user's answer: the operator tries again and converges.
    apply(sandbox, qplugin("refused", namespace, applicationId=app, tags={"fixed": "yes"}))
    sandbox.wait_condition(QPLUGINS, namespace, "refused", "Ready")
    assert len(listed(sandbox, QPLUGIN, applicationId=app)) == 1


def test_throttling_is_waited_out_and_every_plugin_converges(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    sandbox.aws("POST", "/_emulator/config", {"throttle": {"CreatePlugin": 1}})
    try:
        for i in range(4):
            apply(sandbox, qplugin(f"burst{i}", namespace, applicationId=app))
        for i in range(4):
            sandbox.wait_condition(QPLUGINS, namespace, f"burst{i}", "Ready", timeout=90)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"throttle": {}})
    assert len(listed(sandbox, QPLUGIN, applicationId=app)) == 4
    creates = calls(sandbox, "CreatePlugin")
    throttled = [c for c in creates if c.get("status") == 429]
    # The limiter starts at its configured rate and halves on each throttle until it is under the
    # service's: a handful of 429s while it learns, never a storm (at most two per plugin here).
    assert len(throttled) <= 8, f"{len(throttled)} throttled CreatePlugin calls for 4 plugins"


def test_a_configmap_change_reaches_aws(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "orders-openapi", "namespace": namespace},
        "data": {"openapi.json": OPENAPI},
    }
    apply(sandbox, configmap)
    manifest = qplugin("from-cm", namespace, applicationId=app)
    manifest["spec"]["customPluginConfiguration"]["apiSchema"] = {
        "payloadFrom": {"configMapKeyRef": {"name": "orders-openapi", "key": "openapi.json"}}
    }
    apply(sandbox, manifest)
    plugin_id = sandbox.wait_condition(QPLUGINS, namespace, "from-cm", "Ready")["status"]["pluginId"]
    qbusiness = client(sandbox, "qbusiness")

    def payload() -> str:
        got = qbusiness.get_plugin(applicationId=app, pluginId=plugin_id)
        return str(got["customPluginConfiguration"]["apiSchema"].get("payload", ""))

    assert payload() == OPENAPI
    edited = OPENAPI.replace("Orders", "Orders v2")
    configmap["data"] = {"openapi.json": edited}
    apply(sandbox, configmap)
    wait_for("the edited document in AWS", lambda: payload() == edited, timeout=60)
    assert [p["pluginId"] for p in listed(sandbox, QPLUGIN, applicationId=app)] == [plugin_id]


def test_a_failing_delete_is_visible_and_retried(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("sticky", namespace, applicationId=app))
    sandbox.wait_condition(QPLUGINS, namespace, "sticky", "Ready")
    sandbox.aws(
        "POST", "/_emulator/config", {"fail_builds_matching": "^sticky$", "fail_build_kinds": ["DELETE"]}
    )
    try:
        sandbox.kubectl("delete", "qplugin", "sticky", "-n", namespace, "--wait=false")
        wait_synced_false(sandbox, QPLUGINS, namespace, "sticky", "DeleteFailed")
    finally:
        sandbox.aws(
            "POST",
            "/_emulator/config",
            {"fail_builds_matching": None, "fail_build_kinds": ["CREATE", "UPDATE", "DELETE"]},
        )
    wait_for(
        "the object to go once AWS deletes",
        lambda: sandbox.get(QPLUGINS, namespace, "sticky") is None,
        timeout=90,
    )
    assert listed(sandbox, QPLUGIN, applicationId=app) == []
