"""Structural schema, pruning, defaulting, fieldValidation and CEL rules, as a real API server applies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from q_operator.emulate.kube.server import KubeEmulator, running_kube_emulator

FIXTURES = Path(__file__).parent / "fixtures"
GROUP, VERSION, PLURAL, NS = "test.example.com", "v1", "widgets", "default"


@pytest.fixture(scope="module")
def emulator() -> Iterator[KubeEmulator]:
    with running_kube_emulator(crds=FIXTURES) as emu:
        yield emu


@pytest.fixture(scope="module")
def custom(emulator: KubeEmulator) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


_counter = iter(range(10_000))


def body(spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name or f"w{next(_counter)}"},
        "spec": spec,
    }


def create(custom: client.CustomObjectsApi, spec: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, body(spec), **kw
    )
    return result


def rejected(custom: client.CustomObjectsApi, spec: dict[str, Any], **kw: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as err:
        create(custom, spec, **kw)
    status: dict[str, Any] = json.loads(err.value.body)
    return err.value.status, status


def causes(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in status["details"]["causes"]]


def test_invalid_object_is_a_422_status_with_causes_worded_as_the_api_server(
    custom: client.CustomObjectsApi,
) -> None:
    code, status = rejected(custom, {"displayName": "a b"})
    assert code == 422
    assert status["kind"] == "Status" and status["status"] == "Failure" and status["reason"] == "Invalid"
    assert status["details"]["group"] == GROUP and status["details"]["kind"] == "Widget"
    name = status["details"]["name"]
    assert status["message"] == (
        f'Widget.test.example.com "{name}" is invalid: spec.displayName: Invalid value: "a b": '
        "spec.displayName in body should match '^[a-zA-Z0-9-]+$'"
    )
    assert causes(status) == [
        (
            "spec.displayName",
            "FieldValueInvalid",
            "Invalid value: \"a b\": spec.displayName in body should match '^[a-zA-Z0-9-]+$'",
        )
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, ("spec.displayName", "FieldValueRequired", "Required value"), id="required"),
        pytest.param(
            {"displayName": "x", "color": "pink"},
            (
                "spec.color",
                "FieldValueNotSupported",
                'Unsupported value: "pink": supported values: "red", "green", "blue"',
            ),
            id="enum",
        ),
        pytest.param(
            {"displayName": "x" * 21},
            ("spec.displayName", "FieldValueTooLong", "Too long: may not be more than 20 bytes"),
            id="maxLength",
        ),
        pytest.param(
            {"displayName": ""},
            (
                "spec.displayName",
                "FieldValueInvalid",
                'Invalid value: "": spec.displayName in body should be at least 1 chars long',
            ),
            id="minLength",
        ),
        pytest.param(
            {"displayName": "x", "size": 0},
            (
                "spec.size",
                "FieldValueInvalid",
                "Invalid value: 0: spec.size in body should be greater than or equal to 1",
            ),
            id="minimum",
        ),
        pytest.param(
            {"displayName": "x", "size": "big"},
            (
                "spec.size",
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.size in body must be of type integer: "string"',
            ),
            id="type",
        ),
        pytest.param(
            {"displayName": "x", "ports": [{"port": 1}, {"port": 2}, {"port": 3}]},
            ("spec.ports", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
            id="maxItems",
        ),
        pytest.param(
            {"displayName": "x", "ports": [{"name": "p"}]},
            ("spec.ports[0].port", "FieldValueRequired", "Required value"),
            id="required-in-list",
        ),
        pytest.param(
            {"displayName": "x", "tags": {"a": "1", "b": "2", "c": "3", "d": "4"}},
            ("spec.tags", "FieldValueTooMany", "Too many: 4: must have at most 3 items"),
            id="maxProperties",
        ),
        pytest.param(
            {"displayName": "x", "tags": {"a": "x" * 11}},
            ("spec.tags.a", "FieldValueTooLong", "Too long: may not be more than 10 bytes"),
            id="additionalProperties",
        ),
        pytest.param(
            {"displayName": "x", "ports": [{"port": True}]},
            (
                "spec.ports[0].port",
                "FieldValueTypeInvalid",
                'Invalid value: "boolean": '
                'spec.ports[0].port in body must be of type integer,string: "boolean"',
            ),
            id="int-or-string",
        ),
        pytest.param(
            {"displayName": "x", "size": 2**40},
            (
                "<nil>",
                "FieldValueInvalid",
                'Invalid value: "": Checked value must be of type integer with format int32 in spec.size',
            ),
            id="format-int32",
        ),
    ],
)
def test_value_validations(
    custom: client.CustomObjectsApi, spec: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    code, status = rejected(custom, spec)
    assert code == 422
    assert expected in causes(status)


def test_one_of_requires_exactly_one_alternative(custom: client.CustomObjectsApi) -> None:
    _, status = rejected(custom, {"displayName": "x", "source": {}})
    assert any(
        "must validate one and only one schema (oneOf). Found none valid" in c[2] for c in causes(status)
    )
    _, status = rejected(custom, {"displayName": "x", "source": {"url": "u", "bucket": "b"}})
    assert any("Found 2 valid alternatives" in c[2] for c in causes(status))
    assert create(custom, {"displayName": "x", "source": {"url": "u"}})["spec"]["source"] == {"url": "u"}


def test_several_errors_are_listed_together(custom: client.CustomObjectsApi) -> None:
    _, status = rejected(custom, {"displayName": "a b", "size": 1000})
    assert status["message"].count("Invalid value") == 2 and ": [spec." in status["message"]


def test_nullable_fields_keep_null_and_others_drop_it(custom: client.CustomObjectsApi) -> None:
    """As kube-apiserver: a null for a field that is not nullable (and has no default) means unset."""
    assert create(custom, {"displayName": "x", "note": None})["spec"]["note"] is None
    assert "color" not in create(custom, {"displayName": "x", "color": None})["spec"]


def test_defaults_are_applied_on_create(custom: client.CustomObjectsApi) -> None:
    obj = create(custom, {"displayName": "x"})
    assert obj["spec"]["size"] == 3 and obj["spec"]["policy"] == "Delete"


def test_unknown_fields_are_pruned_but_preserved_where_the_schema_says(
    custom: client.CustomObjectsApi,
) -> None:
    obj = create(custom, {"displayName": "x", "bogus": 1, "extra": {"free": {"form": True}}})
    assert "bogus" not in obj["spec"]
    assert obj["spec"]["extra"] == {"free": {"form": True}}


def test_strict_field_validation_refuses_unknown_fields(custom: client.CustomObjectsApi) -> None:
    code, status = rejected(custom, {"displayName": "x", "bogus": 1}, field_validation="Strict")
    assert code == 400 and status["reason"] == "BadRequest"
    assert status["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: '
        'strict decoding error: unknown field "spec.bogus"'
    )


def test_warn_field_validation_answers_with_a_warning_header(emulator: KubeEmulator) -> None:
    import urllib.request

    data = json.dumps(body({"displayName": "x", "bogus": 1})).encode()
    req = urllib.request.Request(
        f"{emulator.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}?fieldValidation=Warn",
        data=data,
        method="POST",
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
        assert resp.headers.get_all("Warning") == ['299 - "unknown field \\"spec.bogus\\""']


def test_cel_rule_with_message_and_field_path(custom: client.CustomObjectsApi) -> None:
    _, status = rejected(custom, {"displayName": "x", "size": 2, "minSize": 5})
    assert (
        "spec.size",
        "FieldValueInvalid",
        "Invalid value: size must not be below minSize",
    ) in causes(status)


def test_cel_transition_rules_use_old_self_on_update_only(custom: client.CustomObjectsApi) -> None:
    obj = create(custom, {"displayName": "x", "color": "red"})
    name = obj["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, {"spec": {"color": "blue"}})
    assert ("spec.color", "FieldValueInvalid", 'Invalid value: "blue": color is immutable') in causes(
        json.loads(err.value.body)
    )
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, {"spec": {"color": None}})
    assert "color cannot be removed once set" in json.loads(err.value.body)["message"]
    ok = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, {"spec": {"size": 9}})
    assert ok["spec"]["color"] == "red" and ok["spec"]["size"] == 9


def test_status_is_validated_against_its_schema(custom: client.CustomObjectsApi) -> None:
    name = create(custom, {"displayName": "x"})["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, name, {"status": {"conditions": [{"type": "Ready"}]}}
        )
    assert ("status.conditions[0].status", "FieldValueRequired", "Required value") in causes(
        json.loads(err.value.body)
    )


def test_metadata_name_must_be_a_dns_subdomain(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, body({"displayName": "x"}, "Bad_Name")
        )
    field, _reason, message = causes(json.loads(err.value.body))[0]
    assert field == "metadata.name" and message.startswith(
        'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
    )


def test_root_level_cel_rule_reports_the_nil_field_path(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, body({"displayName": "x"}, "forbidden-1")
        )
    status = json.loads(err.value.body)
    assert status["message"] == (
        'Widget.test.example.com "forbidden-1" is invalid: '
        "<nil>: Invalid value: widget names must not start with forbidden-"
    )


@pytest.mark.parametrize(
    ("meta", "field", "start"),
    [
        pytest.param(
            {"labels": {"team": "a b"}},
            "metadata.labels",
            'Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric',
            id="label-value",
        ),
        pytest.param(
            {"labels": {"a/b/c": "x"}},
            "metadata.labels",
            'Invalid value: "a/b/c": a valid label key must consist of alphanumeric characters',
            id="label-key",
        ),
        pytest.param(
            {"annotations": {"exa_mple.com/x": "y"}},
            "metadata.annotations",
            'Invalid value: "exa_mple.com/x": prefix part a lowercase RFC 1123 subdomain',
            id="annotation-key",
        ),
        pytest.param(
            {"finalizers": ["no spaces please"]},
            "metadata.finalizers",
            'Invalid value: "no spaces please": name part must consist of alphanumeric characters',
            id="finalizer",
        ),
    ],
)
def test_metadata_is_validated_as_object_meta(
    custom: client.CustomObjectsApi, meta: dict[str, Any], field: str, start: str
) -> None:
    obj = body({"displayName": "x"})
    obj["metadata"].update(meta)
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, obj)
    found = causes(json.loads(err.value.body))
    assert any(f == field and m.startswith(start) for f, _, m in found), found


def test_cel_rules_run_beside_value_errors_but_not_after_a_blocking_error(
    custom: client.CustomObjectsApi,
) -> None:
    """As kube-apiserver: Invalid errors (pattern, minimum...) let CEL run; Required, NotSupported,
    TooLong, TooMany and type errors stop it with a fieldless note."""
    _, status = rejected(custom, {"displayName": "a b", "size": 2, "minSize": 5})
    fields = [c[0] for c in causes(status)]
    assert fields == ["spec.displayName", "spec.size"]
    _, status = rejected(custom, {"size": 2, "minSize": 5})
    assert [c[0] for c in causes(status)] == ["spec.displayName", "<nil>"]
    _, status = rejected(custom, {"displayName": "x", "size": "2", "minSize": 5})
    assert causes(status)[-1] == (
        "<nil>",
        "FieldValueInvalid",
        "Invalid value: null: some validation rules were not checked because the object was invalid; "
        "correct the existing errors to complete validation",
    )


def test_updates_ratchet_over_values_they_leave_unchanged(custom: client.CustomObjectsApi) -> None:
    """An object stored under a laxer version stays writable until its invalid value is touched."""
    lax = body({"displayName": "not valid in v1"}, "ratchet")
    lax["apiVersion"] = f"{GROUP}/v1beta1"
    custom.create_namespaced_custom_object(GROUP, "v1beta1", NS, PLURAL, lax)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "ratchet", {"status": {"phase": "Up"}}
    )
    assert custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "ratchet", {"spec": {"size": 4}})
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "ratchet", {"spec": {"displayName": "still not valid"}}
        )
    assert [c[0] for c in causes(json.loads(err.value.body))] == ["spec.displayName"]


def test_cel_message_expression_and_reason(custom: client.CustomObjectsApi) -> None:
    gadget = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": "g11"},
        "spec": {"level": 11},
    }
    with pytest.raises(ApiException) as err:
        custom.create_cluster_custom_object(GROUP, VERSION, "gadgets", gadget)
    assert causes(json.loads(err.value.body)) == [
        ("spec", "FieldValueForbidden", "Forbidden: level 11 is above 10")
    ]
