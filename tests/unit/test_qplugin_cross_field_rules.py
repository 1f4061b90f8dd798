"""QPlugin's cross-field rules are written twice: as CEL in the CRD (the API server refuses the object
at apply time) and as pydantic validators (the engine refuses it before AWS sees it). This test holds
the two together: every case is judged by both, through the generated CRD (cel-python) and through
the model, and both must break exactly the rules the case names (the model stops at the first, the
API server names them all). A CEL rule that no case breaks fails the test.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from q_operator import crdgen
from q_operator.kinds import qplugin
from tests.unit.crdcheck import openapi_schema, rejections

ROLE = "arn:aws:iam::123456789012:role/qbusiness-plugin"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:plugin-AbCdEf"
IDC = "arn:aws:sso::123456789012:application/ssoins-0123456789abcdef/apl-0123456789abcdef"
CUSTOM_CONFIG = {
    "description": "Looks up the weather",
    "apiSchemaType": "OPEN_API_V3",
    "apiSchema": {"s3": {"bucket": "schemas", "key": "weather.yaml"}},
}
AUTHS = {
    "basic": {"basicAuthConfiguration": {"secretArn": SECRET, "roleArn": ROLE}},
    "oauth": {"oAuth2ClientCredentialConfiguration": {"secretArn": SECRET, "roleArn": ROLE}},
    "none": {"noAuthConfiguration": {}},
    "idc": {"idcAuthConfiguration": {"idcApplicationArn": IDC, "roleArn": ROLE}},
}


def _cel_rules() -> Iterator[dict[str, str]]:
    """Every CEL rule in the QPlugin CRD, wherever it sits in the schema."""

    def walk(node: Any) -> Iterator[dict[str, str]]:
        if isinstance(node, dict):
            yield from node.get("x-kubernetes-validations", [])
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    yield from walk(openapi_schema(crdgen.crd_for(qplugin.KIND)))


RULES = {rule["message"]: rule for rule in _cel_rules()}
#: each rule by its message, as the cases below name them.
NEEDS_CUSTOM_CONFIG = "spec.customPluginConfiguration is required when spec.type is CUSTOM"
CUSTOM_CONFIG_ONLY_FOR_CUSTOM = "spec.customPluginConfiguration is allowed only when spec.type is CUSTOM"
NEEDS_SERVER_URL = "spec.serverUrl is required for this spec.type (the URL of your SaaS tenant)"
NO_AUTH_ONLY_FOR_CUSTOM = (
    "spec.authConfiguration.noAuthConfiguration is allowed only when spec.type is CUSTOM"
)
ONE_AUTH = (
    "spec.authConfiguration must set exactly one of basicAuthConfiguration, "
    "oAuth2ClientCredentialConfiguration, noAuthConfiguration, idcAuthConfiguration"
)
ONE_SCHEMA = "spec.customPluginConfiguration.apiSchema must set exactly one of payload, payloadFrom, s3"
RESERVED_TAG = "spec.tags keys must not start with q-operator.dev/ (reserved for the operator)"
TAG_KEY_LENGTH = "spec.tags keys must be 1 to 128 characters long"


def plugin(type_: str = "CUSTOM", auth: str = "none", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "applicationId": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "displayName": "weather",
        "type": type_,
        "authConfiguration": copy.deepcopy(AUTHS[auth]),
    }
    if type_ == "CUSTOM":
        body["customPluginConfiguration"] = copy.deepcopy(CUSTOM_CONFIG)
    body.update(spec)
    return {
        "apiVersion": qplugin.KIND.api_version,
        "kind": "QPlugin",
        "metadata": {"name": "weather", "namespace": "default"},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def _two_auths() -> dict[str, Any]:
    obj = plugin(auth="basic")
    obj["spec"]["authConfiguration"].update(AUTHS["idc"])
    return obj


def _two_schemas() -> dict[str, Any]:
    obj = plugin()
    obj["spec"]["customPluginConfiguration"]["apiSchema"]["payload"] = "openapi: 3.0.0"
    return obj


def _no_schema() -> dict[str, Any]:
    obj = plugin()
    obj["spec"]["customPluginConfiguration"]["apiSchema"] = {}
    return obj


CASES = [
    pytest.param(plugin(), set(), id="custom-with-its-configuration"),
    pytest.param(plugin(customPluginConfiguration=None), {NEEDS_CUSTOM_CONFIG}, id="custom-without-config"),
    pytest.param(
        plugin("JIRA", "basic", serverUrl="https://x.atlassian.net"), set(), id="built-in-with-server-url"
    ),
    pytest.param(plugin("JIRA", "basic"), {NEEDS_SERVER_URL}, id="tenant-type-without-server-url"),
    pytest.param(plugin("QUICKSIGHT", "idc"), set(), id="fixed-endpoint-type-needs-no-server-url"),
    pytest.param(
        plugin("QUICKSIGHT", "idc", customPluginConfiguration=CUSTOM_CONFIG),
        {CUSTOM_CONFIG_ONLY_FOR_CUSTOM},
        id="built-in-with-a-custom-config",
    ),
    pytest.param(plugin("QUICKSIGHT", "none"), {NO_AUTH_ONLY_FOR_CUSTOM}, id="no-auth-on-a-built-in"),
    pytest.param(
        plugin("SALESFORCE", "none"),
        {NO_AUTH_ONLY_FOR_CUSTOM, NEEDS_SERVER_URL},
        id="two-rules-at-once",
    ),
    pytest.param(_two_auths(), {ONE_AUTH}, id="two-auth-members"),
    pytest.param(plugin(authConfiguration={}), {ONE_AUTH}, id="no-auth-member"),
    pytest.param(_two_schemas(), {ONE_SCHEMA}, id="two-schema-sources"),
    pytest.param(_no_schema(), {ONE_SCHEMA}, id="no-schema-source"),
    pytest.param(plugin(tags={"q-operator.dev/owner": "me"}), {RESERVED_TAG}, id="reserved-tag-key"),
    pytest.param(plugin(tags={"team": "a", "q-operator.devx": "b"}), set(), id="tag-key-near-the-prefix"),
    pytest.param(plugin(tags={"": "empty"}), {TAG_KEY_LENGTH}, id="empty-tag-key"),
]


def cel_broken(obj: dict[str, Any]) -> set[str]:
    """The cross-field rules the API server would name (through the generated CRD)."""
    said = rejections(crdgen.crd_for(qplugin.KIND), obj)
    return {message for message in RULES if any(message in line for line in said)}


def model_broken(obj: dict[str, Any]) -> set[str]:
    """The same rules as the model names them (its validators, and the tag key's own length)."""
    try:
        qplugin.QPluginSpec.model_validate(obj["spec"])
    except ValidationError as error:
        said = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        broken = {message for message in RULES if any(message in line for line in said)}
        if any(line.startswith("tags.") and "at least 1 character" in line for line in said):
            broken.add(TAG_KEY_LENGTH)  # the model says it in pydantic's words, on the key itself
        return broken
    return set()


@pytest.mark.parametrize(("obj", "broken"), CASES)
def test_the_crd_and_the_model_break_the_same_rules(obj: dict[str, Any], broken: set[str]) -> None:
    assert cel_broken(obj) == broken
    if len(broken) <= 1:
        assert model_broken(obj) == broken
    else:  # the model's validator names the first rule it meets; the API server names them all
        assert len(model_broken(obj)) == 1 and model_broken(obj) <= broken


def test_every_cel_rule_of_the_crd_is_broken_by_some_case() -> None:
    """A CEL rule added to the CRD without a case here (and a model check) fails this test."""
    covered = set().union(*(case.values[1] for case in CASES))
    assert set(RULES) == covered
