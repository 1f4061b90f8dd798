"""The generated CRDs: committed copies are current, the schemas are structural and complete, and
they accept what the models accept and refuse what the models refuse, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, Field

from q_operator import crdgen
from q_operator.engine.controls import HANDLED_REQUEST_KEY, MANAGE, OBSERVE, OBSERVED_ONLY_KEY
from q_operator.kinds import qplugin
from q_operator.kinds.base import CommonSpec, CommonStatus, KindInfo
from q_operator.registry import KINDS
from tests.unit.crdcheck import openapi_schema, rejections, structural_problems, undescribed, walk

REPO = Path(__file__).resolve().parents[2]
CRD_DIRS = (REPO / "crds", REPO / "charts" / "q-operator" / "crds")


def _qplugin_crd() -> dict[str, Any]:
    return crdgen.crd_for(qplugin.KIND)


def test_committed_crds_match_the_models() -> None:
    files = crdgen.rendered_files()
    for directory in CRD_DIRS:
        for name, text in files.items():
            path = directory / name
            assert path.exists(), f"{path} is missing: run make crds"
            assert path.read_text() == text, f"{path} is stale: run make crds"
        stale = {p.name for p in directory.glob("*.yaml")} - set(files)
        assert not stale, f"{directory} has CRDs no kind generates ({stale}): run make crds and remove them"


def test_write_crds_writes_one_file_per_kind_into_every_directory(tmp_path: Path) -> None:
    crdgen.write_crds(str(tmp_path / "out"), extra_dirs=[str(tmp_path / "chart" / "crds")])
    expected = {f"{k.group}_{k.plural}.yaml" for k in KINDS}
    assert {p.name for p in (tmp_path / "out").iterdir()} == expected
    assert {p.name for p in (tmp_path / "chart" / "crds").iterdir()} == expected


def test_write_crds_removes_its_own_stale_files_only(tmp_path: Path) -> None:
    (tmp_path / "old_kind.yaml").write_text(crdgen.HEADER + "kind: CustomResourceDefinition\n")
    (tmp_path / "hand-written.yaml").write_text("kind: ConfigMap\n")
    crdgen.write_crds(str(tmp_path))
    assert not (tmp_path / "old_kind.yaml").exists()
    assert (tmp_path / "hand-written.yaml").exists()


def test_generation_is_deterministic() -> None:
    assert crdgen.rendered_files() == crdgen.rendered_files()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_crd_schema_is_structural(kind: Any) -> None:
    assert structural_problems(openapi_schema(crdgen.crd_for(kind))) == []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_property_has_a_description_for_kubectl_explain(kind: Any) -> None:
    assert undescribed(openapi_schema(crdgen.crd_for(kind))) == []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_crd_is_a_valid_apiextensions_v1_object(kind: Any) -> None:
    kubernetes_validate.validate(crdgen.crd_for(kind), "1.32", strict=True)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_names_versions_and_status_follow_the_contract(kind: Any) -> None:
    crd = crdgen.crd_for(kind)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{kind.plural}.{kind.group}"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["q-operator", "aws"]
    assert spec["names"]["listKind"] == f"{kind.kind}List"
    (version,) = spec["versions"]
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    status = schema["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions"} <= set(status)
    assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    condition = status["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(
        condition
    )


def test_qplugin_names_and_printer_columns() -> None:
    version = _qplugin_crd()["spec"]["versions"][0]
    names = _qplugin_crd()["spec"]["names"]
    assert names["shortNames"] == ["qp"]
    assert (names["kind"], names["plural"], names["singular"]) == ("QPlugin", "qplugins", "qplugin")
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Build"]["jsonPath"] == ".status.buildStatus"
    assert columns["Plugin ID"]["jsonPath"] == ".status.pluginId"
    assert columns["Age"]["type"] == "date"


def test_qplugin_status_schema_carries_the_aws_outputs() -> None:
    status = openapi_schema(_qplugin_crd())["properties"]["status"]["properties"]
    for name in ("applicationId", "pluginId", "pluginArn", "buildStatus", "state", "createdAt", "updatedAt"):
        assert status[name]["type"] == "string", name


def test_constraints_carry_over_from_the_models() -> None:
    spec = openapi_schema(_qplugin_crd())["properties"]["spec"]
    display = spec["properties"]["displayName"]
    assert (display["pattern"], display["minLength"], display["maxLength"]) == (
        qplugin.PLUGIN_NAME_PATTERN,
        1,
        100,
    )
    assert len(spec["properties"]["type"]["enum"]) == 17
    tags = spec["properties"]["tags"]
    assert tags["additionalProperties"] == {"type": "string", "minLength": 0, "maxLength": 256}
    assert tags["maxProperties"] == qplugin.MAX_USER_TAGS
    assert spec["properties"]["deletionPolicy"]["default"] == "Delete"  # the API server fills it in
    payload = spec["properties"]["customPluginConfiguration"]["properties"]["apiSchema"]["properties"][
        "payload"
    ]
    assert "writeOnly" not in payload


def test_union_rules_are_cel_validations_on_the_union_objects() -> None:
    spec = openapi_schema(_qplugin_crd())["properties"]["spec"]
    auth_rules = spec["properties"]["authConfiguration"]["x-kubernetes-validations"]
    assert any("has(self.noAuthConfiguration)" in r["rule"] for r in auth_rules)
    api_schema = spec["properties"]["customPluginConfiguration"]["properties"]["apiSchema"]
    assert any("has(self.payloadFrom)" in r["rule"] for r in api_schema["x-kubernetes-validations"])
    for path, node in walk(openapi_schema(_qplugin_crd())):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].startswith("spec."), (path, rule)


# --- the CRD accepts and refuses like the model ----------------------------------------------------------

VALID: dict[str, Any] = {
    "apiVersion": "qbusiness.q-operator.dev/v1alpha1",
    "kind": "QPlugin",
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {
        "applicationId": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "displayName": "weather",
        "type": "CUSTOM",
        "authConfiguration": {"noAuthConfiguration": {}},
        "customPluginConfiguration": {
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": "openapi: 3.0.0"},
        },
        "tags": {"team": "a"},
    },
}
BASIC = {
    "basicAuthConfiguration": {
        "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf",
        "roleArn": "arn:aws:iam::123456789012:role/r",
    }
}


def _with(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(VALID)
    for path, value in changes.items():
        node = obj["spec"]
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return obj


_DELETE = object()

# (name, changes, the field the refusal must name) — each a reason a user gets refused at apply time.
INVALID_CASES = [
    ("displayName with a space", {"displayName": "my plugin"}, "spec.displayName"),
    ("displayName too long", {"displayName": "a" * 101}, "spec.displayName"),
    ("applicationId too short", {"applicationId": "abc"}, "spec.applicationId"),
    ("unknown plugin type", {"type": "GITHUB"}, "spec.type"),
    (
        "two auth members",
        {"authConfiguration": {**BASIC, "noAuthConfiguration": {}}},
        "spec.authConfiguration",
    ),
    ("no auth member", {"authConfiguration": {}}, "spec.authConfiguration"),
    (
        "malformed secret ARN",
        {
            "authConfiguration": {
                "basicAuthConfiguration": {"secretArn": "secret", "roleArn": "arn:aws:iam::1:role/r"}
            }
        },
        "spec.authConfiguration.basicAuthConfiguration.secretArn",
    ),
    ("serverUrl not a URL", {"serverUrl": "example.com"}, "spec.serverUrl"),
    (
        "two api schema sources",
        {"customPluginConfiguration__apiSchema": {"payload": "x", "s3": {"bucket": "my-bucket", "key": "k"}}},
        "spec.customPluginConfiguration.apiSchema",
    ),
    (
        "no api schema source",
        {"customPluginConfiguration__apiSchema": {}},
        "spec.customPluginConfiguration.apiSchema",
    ),
    (
        "bad S3 bucket",
        {"customPluginConfiguration__apiSchema": {"s3": {"bucket": "My_Bucket", "key": "k"}}},
        "spec.customPluginConfiguration.apiSchema.s3.bucket",
    ),
    (
        "CUSTOM without custom configuration",
        {"customPluginConfiguration": _DELETE},
        "spec.customPluginConfiguration",
    ),
    (
        "custom configuration on a built-in type",
        {"type": "JIRA_CLOUD", "serverUrl": "https://example.atlassian.net", "authConfiguration": BASIC},
        "spec.customPluginConfiguration",
    ),
    (
        "SaaS type without serverUrl",
        {"type": "JIRA_CLOUD", "customPluginConfiguration": _DELETE, "authConfiguration": BASIC},
        "spec.serverUrl",
    ),
    (
        "no auth on a built-in type",
        {"type": "ASANA", "customPluginConfiguration": _DELETE},
        "spec.authConfiguration",
    ),
    ("reserved tag key", {"tags": {"q-operator.dev/owner": "me"}}, "spec.tags"),
    ("tag value too long", {"tags": {"k": "v" * 257}}, "spec.tags"),
    ("too many tags", {"tags": {f"k{i}": "" for i in range(199)}}, "spec.tags"),
    ("state not an enum value", {"state": "ON"}, "spec.state"),
    ("unknown field", {"colour": "blue"}, "spec.colour"),
    ("deletionPolicy not an enum value", {"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
]


def test_a_valid_object_is_accepted() -> None:
    assert rejections(_qplugin_crd(), VALID) == []


@pytest.mark.parametrize("name, changes, field", INVALID_CASES, ids=[c[0] for c in INVALID_CASES])
def test_the_crd_refuses_invalid_input_naming_the_field(
    name: str, changes: dict[str, Any], field: str
) -> None:
    errors = rejections(_qplugin_crd(), _with(**changes))
    assert errors, f"{name}: accepted"
    assert any(e.startswith(field) or f" {field}" in e for e in errors), errors


@pytest.mark.parametrize("name, changes, field", INVALID_CASES, ids=[c[0] for c in INVALID_CASES])
def test_the_model_refuses_what_the_crd_refuses(name: str, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError):
        qplugin.QPluginSpec.model_validate(_with(**changes)["spec"])


def test_committed_yaml_parses_back_to_the_generated_dicts() -> None:
    for crd in crdgen.crd_documents():
        text = (REPO / "crds" / crdgen.crd_filename(crd)).read_text()
        assert yaml.safe_load(text) == crd


# --- the user's controls, in every kind's committed CRD (what `kubectl apply -f crds/` installs) -----


def _committed(kind: KindInfo[Any, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "crds" / f"{kind.group}_{kind.plural}.yaml").read_text())
    return loaded


def _sample(kind: KindInfo[Any, Any], **spec: Any) -> dict[str, Any]:
    """The kind's sample (samples/), with `spec` fields set."""
    obj: dict[str, Any] = yaml.safe_load((REPO / "samples" / kind.sample).read_text())
    obj["spec"].update(spec)
    return obj


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_kubectl_get_shows_synced_and_wide_adds_the_reason_and_the_policy(kind: KindInfo[Any, Any]) -> None:
    """SYNCED (False while paused) in every `kubectl get`, right after READY; `-o wide` (priority 1)
    adds why (Paused, ObserveOnly, an error) and the management policy."""
    columns = _committed(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
    by_name = {c["name"]: c for c in columns}
    names = [c["name"] for c in columns]
    assert names.index("Synced") == names.index("Ready") + 1
    expected = {
        "Synced": ('.status.conditions[?(@.type=="Synced")].status', 0),
        "Reason": ('.status.conditions[?(@.type=="Synced")].reason', 1),
        "Policy": (".spec.managementPolicy", 1),
    }
    for name, (path, priority) in expected.items():
        column = by_name[name]
        assert (column["jsonPath"], column["type"], column.get("priority", 0)) == (
            path,
            "string",
            priority,
        ), name


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_the_management_policy_is_manage_or_observe_and_manage_by_default(kind: KindInfo[Any, Any]) -> None:
    crd = _committed(kind)
    policy = openapi_schema(crd)["properties"]["spec"]["properties"]["managementPolicy"]
    assert (policy["type"], policy["enum"], policy["default"]) == ("string", [MANAGE, OBSERVE], MANAGE)
    assert "managementPolicy" not in (openapi_schema(crd)["properties"]["spec"].get("required") or [])
    for value in (MANAGE, OBSERVE):
        assert rejections(crd, _sample(kind, managementPolicy=value)) == [], value
    for value in ("observe", "manage", "OBSERVE", "ObserveOnly", ""):
        errors = rejections(crd, _sample(kind, managementPolicy=value))
        assert any(e.startswith("spec.managementPolicy") for e in errors), (value, errors)
        with pytest.raises(ValueError):
            kind.spec_model.model_validate(_sample(kind, managementPolicy=value)["spec"])


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_the_status_keeps_the_fields_the_controls_write(kind: KindInfo[Any, Any]) -> None:
    """A real API server prunes status fields its schema lacks: the ones engine/controls.py writes
    must be there, under the names it writes."""
    crd = _committed(kind)
    status = openapi_schema(crd)["properties"]["status"]["properties"]
    assert (OBSERVED_ONLY_KEY, HANDLED_REQUEST_KEY) == ("observeOnly", "lastHandledReconcileAt")
    assert status[OBSERVED_ONLY_KEY]["type"] == "boolean"
    assert status[HANDLED_REQUEST_KEY]["type"] == "string"
    written = {
        **_sample(kind),
        "status": {OBSERVED_ONLY_KEY: True, HANDLED_REQUEST_KEY: "2026-01-01T00:00:00Z"},
    }
    assert rejections(crd, written) == []


# --- the generator on a kind of its own (kind-agnostic conversion) ---------------------------------------


class _Inner(BaseModel):
    """An inner structure."""

    count: int = Field(ge=1, le=5, description="A bounded number.")


class _Spec(CommonSpec):
    """A synthetic spec."""

    mode: Literal["Only"] = Field(description="A one-value literal.")
    inner: _Inner | None = Field(
        default=None,
        description="An optional structure.",
        json_schema_extra={"x-kubernetes-validations": [{"rule": "self.count > 1", "message": "spec.inner"}]},
    )
    names: list[str] = Field(default_factory=list, min_length=1, max_length=3, description="A bounded list.")
    labels: dict[str, str] = Field(default_factory=dict, description="A string map.")


class _Status(CommonStatus):
    """A synthetic status."""


_KIND: KindInfo[_Spec, _Status] = KindInfo(
    kind="Widget",
    group="example.q-operator.dev",
    version="v1alpha1",
    plural="widgets",
    singular="widget",
    short_names=("wd",),
    spec_model=_Spec,
    status_model=_Status,
    service="none",
    adapter_factory=lambda client: None,  # type: ignore[arg-type,return-value]
    ref_fields=("id",),
    root_validations=({"rule": "self.metadata.name.size() < 50", "message": "metadata.name is too long"},),
)


def test_optional_structures_become_plain_objects_keeping_their_rules() -> None:
    spec = openapi_schema(crdgen.crd_for(_KIND))["properties"]["spec"]
    inner = spec["properties"]["inner"]
    assert inner["type"] == "object" and "anyOf" not in inner and "default" not in inner
    assert inner["description"] == "An optional structure."
    assert inner["properties"]["count"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "description": "A bounded number.",
    }
    assert inner["x-kubernetes-validations"] == [{"rule": "self.count > 1", "message": "spec.inner"}]


def test_literals_lists_and_maps_convert_to_structural_keywords() -> None:
    props = openapi_schema(crdgen.crd_for(_KIND))["properties"]["spec"]["properties"]
    assert props["mode"]["enum"] == ["Only"] and props["mode"]["type"] == "string"
    assert (props["names"]["minItems"], props["names"]["maxItems"]) == (1, 3)
    assert props["names"]["items"] == {"type": "string"}
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert structural_problems(openapi_schema(crdgen.crd_for(_KIND))) == []


def test_root_validations_sit_at_the_schema_root() -> None:
    schema = openapi_schema(crdgen.crd_for(_KIND))
    assert schema["x-kubernetes-validations"] == [
        {"rule": "self.metadata.name.size() < 50", "message": "metadata.name is too long"}
    ]


def test_a_union_of_several_types_is_refused_as_not_structural() -> None:
    class Mixed(BaseModel):
        value: str | int = Field(description="Either.")

    with pytest.raises(ValueError, match="union"):
        crdgen.model_schema(Mixed)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_root_metadata_is_only_an_object_as_a_real_api_server_demands(kind: Any) -> None:
    schema = openapi_schema(crdgen.crd_for(kind))
    assert schema["properties"]["metadata"] == {"type": "object"}
