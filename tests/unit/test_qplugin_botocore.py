"""QPlugin's models hold the same constraints as botocore's qbusiness model (tests/unit/botocorecheck.py),
and the check notices an AWS API change."""

from __future__ import annotations

import pytest

from q_operator.kinds import qplugin
from q_operator.kinds.qplugin import QPluginSpec
from tests.unit.botocorecheck import (
    Binding,
    JsonDict,
    changed_service_model,
    check,
    members,
    service_model,
    unbound_fields,
)

Q = "qbusiness"
AUTH = "authConfiguration"
CUSTOM = "customPluginConfiguration"

BINDINGS: list[Binding] = [
    # QPlugin spec ↔ CreatePluginRequest: clientToken is the engine's; region/deletionPolicy are
    # ours; state is an UpdatePlugin member (CreatePlugin has none).
    Binding(
        QPluginSpec,
        "",
        Q,
        "CreatePluginRequest",
        ignore_members=members("clientToken"),
        extra_members=members("region", "deletionPolicy", "state"),
    ),
    Binding(QPluginSpec, "applicationId", Q, "CreatePluginRequest.applicationId"),
    Binding(QPluginSpec, "displayName", Q, "CreatePluginRequest.displayName"),
    Binding(QPluginSpec, "type", Q, "CreatePluginRequest.type"),
    Binding(QPluginSpec, "serverUrl", Q, "CreatePluginRequest.serverUrl"),
    Binding(QPluginSpec, "state", Q, "UpdatePluginRequest.state"),
    Binding(QPluginSpec, AUTH, Q, "CreatePluginRequest.authConfiguration"),
    Binding(QPluginSpec, f"{AUTH}.basicAuthConfiguration", Q, "BasicAuthConfiguration"),
    Binding(QPluginSpec, f"{AUTH}.basicAuthConfiguration.secretArn", Q, "BasicAuthConfiguration.secretArn"),
    Binding(QPluginSpec, f"{AUTH}.basicAuthConfiguration.roleArn", Q, "BasicAuthConfiguration.roleArn"),
    Binding(
        QPluginSpec, f"{AUTH}.oAuth2ClientCredentialConfiguration", Q, "OAuth2ClientCredentialConfiguration"
    ),
    *[
        Binding(
            QPluginSpec,
            f"{AUTH}.oAuth2ClientCredentialConfiguration.{m}",
            Q,
            f"OAuth2ClientCredentialConfiguration.{m}",
        )
        for m in ("secretArn", "roleArn", "authorizationUrl", "tokenUrl")
    ],
    Binding(QPluginSpec, f"{AUTH}.noAuthConfiguration", Q, "NoAuthConfiguration"),
    Binding(QPluginSpec, f"{AUTH}.idcAuthConfiguration", Q, "IdcAuthConfiguration"),
    Binding(
        QPluginSpec,
        f"{AUTH}.idcAuthConfiguration.idcApplicationArn",
        Q,
        "IdcAuthConfiguration.idcApplicationArn",
    ),
    Binding(QPluginSpec, f"{AUTH}.idcAuthConfiguration.roleArn", Q, "IdcAuthConfiguration.roleArn"),
    # apiSchema is optional in botocore, but a custom plugin without its OpenAPI document is useless.
    Binding(QPluginSpec, CUSTOM, Q, "CustomPluginConfiguration", extra_required=members("apiSchema")),
    Binding(QPluginSpec, f"{CUSTOM}.description", Q, "CustomPluginConfiguration.description"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchemaType", Q, "CustomPluginConfiguration.apiSchemaType"),
    # payloadFrom is ours: the engine resolves it into `payload`.
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema", Q, "APISchema", extra_members=members("payloadFrom")),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.payload", Q, "APISchema.payload"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.s3", Q, "S3"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.s3.bucket", Q, "S3.bucket"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.s3.key", Q, "S3.key"),
    # Status fields are not bound: status holds whatever AWS answers (a new buildStatus value must not
    # make the status write fail), so they are plain strings.
    # The API's list of {key, value} is a map in the spec; two entries are the operator's own tags.
    Binding(QPluginSpec, "tags", Q, "CreatePluginRequest.tags", reserved_entries=2),
    Binding(QPluginSpec, "tags{key}", Q, "Tag.key"),
    Binding(QPluginSpec, "tags{value}", Q, "Tag.value"),
]


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: b.id)
def test_model_field_matches_botocore(binding: Binding) -> None:
    assert check(binding, service_model(Q)) == []


def test_every_spec_field_is_bound_to_botocore() -> None:
    unbound = unbound_fields(QPluginSpec, BINDINGS, {"tags{key}"})
    assert [path for path in unbound if not path.startswith(f"{CUSTOM}.apiSchema.payloadFrom")] == []


def _binding(path: str) -> Binding:
    return next(b for b in BINDINGS if b.path == path)


def test_a_new_plugin_type_in_botocore_fails_the_check() -> None:
    model = changed_service_model(Q, lambda shapes: shapes["PluginType"]["enum"].append("GITHUB"))
    assert any("enum" in p for p in check(_binding("type"), model))


def test_a_longer_display_name_in_botocore_fails_the_check() -> None:
    model = changed_service_model(Q, lambda shapes: shapes["PluginName"].update(max=200))
    assert any("max length" in p for p in check(_binding("displayName"), model))


def test_a_changed_pattern_in_botocore_fails_the_check() -> None:
    model = changed_service_model(Q, lambda shapes: shapes["Url"].update(pattern="https://[^\\s]*"))
    assert any("pattern" in p for p in check(_binding("serverUrl"), model))


def test_a_new_auth_member_in_botocore_fails_the_check() -> None:
    def add_member(shapes: JsonDict) -> None:
        shapes["PluginAuthConfiguration"]["members"]["samlAuthConfiguration"] = {
            "shape": "NoAuthConfiguration"
        }

    model = changed_service_model(Q, add_member)
    problems = check(_binding(AUTH), model)
    assert any("members" in p for p in problems)
    assert any("union" in p for p in problems)


def test_a_newly_required_member_in_botocore_fails_the_check() -> None:
    model = changed_service_model(
        Q, lambda shapes: shapes["CreatePluginRequest"]["required"].append("serverUrl")
    )
    assert check(_binding("serverUrl"), model)


def test_reserved_tag_count_matches_the_operators_own_tags() -> None:
    assert 200 - len({qplugin.OWNER_TAG, qplugin.PAYLOAD_HASH_TAG}) == qplugin.MAX_USER_TAGS


def test_every_build_status_has_a_phase() -> None:
    assert sorted(qplugin.BUILD_PHASES) == sorted(service_model(Q).shape_for("PluginBuildStatus").enum)
