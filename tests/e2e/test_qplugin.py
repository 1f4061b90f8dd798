"""QPlugin end to end: the real operator process against the real kube-apiserver and the AWS stand-in.
What every kind does the same way (Ready with ID and ARN, deletion, Retain, adoption, the crash
window) is in test_kinds.py."""

from __future__ import annotations

from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import QPLUGIN, QPLUGINS, qplugin

from .helpers import apply, client, listed, new_application_id


def test_update_sends_only_the_changed_member_and_ready_follows(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("billing", namespace, applicationId=app))
    sandbox.wait_condition(QPLUGINS, namespace, "billing", "Ready")
    apply(sandbox, qplugin("billing", namespace, applicationId=app, displayName="billing-v2"))
    obj = sandbox.wait_condition(QPLUGINS, namespace, "billing", "Ready")
    [plugin] = listed(sandbox, QPLUGIN, applicationId=app)
    assert plugin["displayName"] == "billing-v2"
    assert obj["status"]["pluginId"] == plugin["pluginId"]


def test_state_disabled_is_applied_after_create(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("paused", namespace, applicationId=app, state="DISABLED"))
    obj = sandbox.wait_condition(QPLUGINS, namespace, "paused", "Ready")
    [plugin] = listed(sandbox, QPLUGIN, applicationId=app)
    assert plugin["state"] == "DISABLED"
    assert obj["status"]["state"] == "DISABLED"
    assert obj["status"]["buildStatus"] == "READY"


def test_tags_follow_the_spec_map_and_the_owner_tag_stays(sandbox: Sandbox, namespace: str) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("tagged", namespace, applicationId=app, tags={"team": "a", "env": "dev"}))
    obj = sandbox.wait_condition(QPLUGINS, namespace, "tagged", "Ready")
    qbusiness = client(sandbox, "qbusiness")

    def tags() -> dict[str, str]:
        got = qbusiness.list_tags_for_resource(resourceARN=obj["status"]["pluginArn"])["tags"]
        return {t["key"]: t["value"] for t in got}

    assert tags()["team"] == "a" and "q-operator.dev/owner" in tags()
    apply(sandbox, qplugin("tagged", namespace, applicationId=app, tags={"team": "b"}))
    wait_for("tags updated", lambda: tags().get("team") == "b" and "env" not in tags(), timeout=30)
    assert "q-operator.dev/owner" in tags()


def test_changing_the_type_replaces_the_plugin_and_deletes_the_old_one(
    sandbox: Sandbox, namespace: str
) -> None:
    app = new_application_id()
    apply(sandbox, qplugin("swap", namespace, applicationId=app))
    old = sandbox.wait_condition(QPLUGINS, namespace, "swap", "Ready")["status"]["pluginId"]
    replacement = qplugin(
        "swap",
        namespace,
        applicationId=app,
        type="JIRA_CLOUD",
        serverUrl="https://example.atlassian.net",
        authConfiguration={
            "basicAuthConfiguration": {
                "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jira-abc123",
                "roleArn": "arn:aws:iam::123456789012:role/q-plugin-jira",
            }
        },
    )
    del replacement["spec"]["customPluginConfiguration"]
    apply(sandbox, replacement)

    def replaced() -> list[dict[str, object]] | None:
        plugins = listed(sandbox, QPLUGIN, applicationId=app)
        return plugins if [p["pluginId"] for p in plugins] != [old] and len(plugins) == 1 else None

    [new] = wait_for("the old plugin replaced by one new plugin", replaced, timeout=60)
    assert new["type"] == "JIRA_CLOUD"
    obj = sandbox.wait_condition(QPLUGINS, namespace, "swap", "Ready")
    assert obj["status"]["pluginId"] == new["pluginId"] != old
