"""The Kubernetes stand-in's object life cycle, driven through the `kubernetes` Python client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from q_operator.emulate.kube.server import KubeEmulator, running_kube_emulator

FIXTURES = Path(__file__).parent / "fixtures"
GROUP, VERSION, PLURAL = "test.example.com", "v1", "widgets"


@pytest.fixture(scope="module")
def emulator() -> Iterator[KubeEmulator]:
    with running_kube_emulator(crds=FIXTURES) as emu:
        yield emu


@pytest.fixture(scope="module")
def api_client(emulator: KubeEmulator) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api, request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test, so tests do not see each other's objects."""
    name = request.node.name.replace("_", "-").lower()[:50].strip("-")
    core.create_namespace({"metadata": {"name": name}})
    return name


def widget(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"displayName": "hello"}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": body}


def create(custom: client.CustomObjectsApi, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, widget(name, **spec)
    )
    return result


def get(custom: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return result


def raw(
    emulator: KubeEmulator, method: str, path: str, body: Any = None, content_type: str = ""
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(emulator.url + path, data=data, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_default_and_kube_system_namespaces_exist_at_start(core: client.CoreV1Api) -> None:
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_discovery_lists_custom_resources_with_short_names_categories_and_status(
    emulator: KubeEmulator,
) -> None:
    code, doc = raw(emulator, "GET", "/apis/test.example.com/v1")
    assert code == 200 and doc["kind"] == "APIResourceList"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["widgets"]["shortNames"] == ["wd"]
    assert by_name["widgets"]["categories"] == ["example"]
    assert by_name["widgets"]["namespaced"] is True and by_name["gadgets"]["namespaced"] is False
    assert set(by_name["widgets"]["verbs"]) >= {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert "widgets/status" in by_name and "gadgets/status" not in by_name
    _, groups = raw(emulator, "GET", "/apis")
    test_group = next(g for g in groups["groups"] if g["name"] == GROUP)
    assert test_group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in test_group["versions"]] == ["v1", "v1beta1"]
    _, core_doc = raw(emulator, "GET", "/api/v1")
    assert {"namespaces", "events", "configmaps", "secrets", "serviceaccounts"} <= {
        r["name"] for r in core_doc["resources"]
    }


def test_create_sets_uid_timestamp_generation_and_resource_version(
    custom: client.CustomObjectsApi, ns: str
) -> None:
    obj = create(custom, ns, "w")
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert get(custom, ns, "w")["metadata"]["uid"] == meta["uid"]


def test_resource_versions_increase_across_every_write(custom: client.CustomObjectsApi, ns: str) -> None:
    first = int(create(custom, ns, "a")["metadata"]["resourceVersion"])
    second = int(create(custom, ns, "b")["metadata"]["resourceVersion"])
    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a", {"spec": {"size": 9}})
    assert first < second < int(patched["metadata"]["resourceVersion"])


def test_create_twice_is_already_exists(custom: client.CustomObjectsApi, ns: str) -> None:
    create(custom, ns, "dup")
    with pytest.raises(ApiException) as err:
        create(custom, ns, "dup")
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_get_missing_is_not_found_status(custom: client.CustomObjectsApi, ns: str) -> None:
    with pytest.raises(ApiException) as err:
        get(custom, ns, "nope")
    status = json.loads(err.value.body)
    assert err.value.status == 404
    assert status["message"] == 'widgets.test.example.com "nope" not found'
    assert status["details"] == {"name": "nope", "group": GROUP, "kind": "widgets"}


def test_generate_name_makes_a_unique_name(custom: client.CustomObjectsApi, ns: str) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    names = {
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)["metadata"]["name"]
        for _ in range(5)
    }
    assert len(names) == 5 and all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_update_with_stale_resource_version_conflicts(custom: client.CustomObjectsApi, ns: str) -> None:
    obj = create(custom, ns, "w")
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {"spec": {"size": 5}})
    obj["spec"]["size"] = 6
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", obj)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            "w",
            {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}},
        )
    assert err.value.status == 409


def test_update_of_a_custom_resource_requires_a_resource_version(
    custom: client.CustomObjectsApi, ns: str
) -> None:
    obj = create(custom, ns, "w")
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", obj)
    assert err.value.status == 422
    message = json.loads(err.value.body)["message"]
    assert message.endswith("metadata.resourceVersion: Invalid value: 0: must be specified for an update")


def test_generation_bumps_on_spec_changes_only(custom: client.CustomObjectsApi, ns: str) -> None:
    create(custom, ns, "w")
    labelled = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "w", {"status": {"phase": "Up"}}
    )
    assert status["metadata"]["generation"] == 1
    spec = custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {"spec": {"size": 7}})
    assert spec["metadata"]["generation"] == 2


def test_a_no_op_patch_keeps_the_resource_version(custom: client.CustomObjectsApi, ns: str) -> None:
    obj = create(custom, ns, "w")
    same = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "w", {"spec": {"displayName": "hello"}}
    )
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_status_subresource_is_kept_apart_from_the_main_resource(
    custom: client.CustomObjectsApi, ns: str
) -> None:
    body = widget("w")
    body["status"] = {"phase": "ignored-on-create"}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    assert "status" not in created
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "w", {"status": {"phase": "Ready"}, "spec": {"size": 50}}
    )
    obj = get(custom, ns, "w")
    assert obj["status"] == {"phase": "Ready"} and obj["spec"]["size"] == 3
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {"status": {"phase": "Hacked"}})
    assert get(custom, ns, "w")["status"] == {"phase": "Ready"}
    obj = get(custom, ns, "w")
    obj["status"] = {"phase": "Replaced"}
    custom.replace_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "w", obj)
    assert get(custom, ns, "w")["status"] == {"phase": "Replaced"}


def test_without_status_subresource_status_is_ordinary(custom: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": "test.example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "status": {"x": 1},
    }
    created = custom.create_cluster_custom_object(GROUP, VERSION, "gadgets", body)
    assert created["status"] == {"x": 1}
    patched = custom.patch_cluster_custom_object(GROUP, VERSION, "gadgets", "g1", {"status": {"x": 2}})
    assert patched["status"] == {"x": 2} and patched["metadata"]["generation"] == 2
    custom.delete_cluster_custom_object(GROUP, VERSION, "gadgets", "g1")


def test_json_patch_applies_and_failed_test_is_422(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    create(custom, ns, "w", size=4)
    ops = [
        {"op": "test", "path": "/spec/size", "value": 4},
        {"op": "replace", "path": "/spec/size", "value": 8},
    ]
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "w", ops, _content_type="application/json-patch+json"
    )
    assert patched["spec"]["size"] == 8
    code, status = raw(
        emulator,
        "PATCH",
        f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets/w",
        [{"op": "test", "path": "/spec/size", "value": 4}],
        "application/json-patch+json",
    )
    # As on a real server, the JSON patch library's detail does not reach the client.
    assert code == 422 and status["reason"] == "Invalid"
    assert status["message"] == "the server rejected our request due to an error in our request"


def test_strategic_merge_patch_on_a_custom_resource_is_415(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    create(custom, ns, "w")
    code, status = raw(
        emulator,
        "PATCH",
        f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets/w",
        {"spec": {"size": 5}},
        "application/strategic-merge-patch+json",
    )
    assert code == 415 and status["reason"] == "UnsupportedMediaType"


def test_server_side_apply_creates_merges_and_drops_what_it_stopped_applying(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets/ssa?fieldManager=test"
    code, obj = raw(emulator, "PATCH", path, widget("ssa", size=2), "application/apply-patch+yaml")
    assert code == 201 and obj["spec"]["size"] == 2
    code, obj = raw(emulator, "PATCH", path, widget("ssa", size=4, minSize=2), "application/apply-patch+yaml")
    assert code == 200 and obj["spec"]["size"] == 4 and obj["spec"]["minSize"] == 2
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "ssa", {"spec": {"color": "red"}})
    code, obj = raw(emulator, "PATCH", path, widget("ssa", size=4), "application/apply-patch+yaml")
    # What this manager no longer applies goes; what another writer set stays.
    assert code == 200 and "minSize" not in obj["spec"] and obj["spec"]["color"] == "red"


def test_label_selectors_filter_lists(custom: client.CustomObjectsApi, ns: str) -> None:
    for name, labels in (("a", {"env": "prod", "tier": "web"}), ("b", {"env": "dev"}), ("c", {})):
        body = widget(name)
        body["metadata"]["labels"] = labels
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)

    def names(selector: str) -> list[str]:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, label_selector=selector)[
            "items"
        ]
        return [i["metadata"]["name"] for i in items]

    assert names("env=prod") == ["a"]
    assert names("env!=prod") == ["b", "c"]
    assert names("env in (prod,dev)") == ["a", "b"]
    assert names("env notin (prod)") == ["b", "c"]
    assert names("tier") == ["a"]
    assert names("!env") == ["c"]
    assert names("env=prod,tier=web") == ["a"]


def test_field_selector_on_metadata_name(custom: client.CustomObjectsApi, ns: str) -> None:
    create(custom, ns, "one")
    create(custom, ns, "two")
    items = custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, field_selector="metadata.name=two"
    )
    assert [i["metadata"]["name"] for i in items["items"]] == ["two"]


def test_cluster_wide_list_spans_namespaces(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, ns: str
) -> None:
    other = ns + "-b"
    core.create_namespace({"metadata": {"name": other}})
    create(custom, ns, "x")
    create(custom, other, "y")
    items = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
    seen = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
    assert {(ns, "x"), (other, "y")} <= seen


def test_list_pages_with_limit_and_continue(custom: client.CustomObjectsApi, ns: str) -> None:
    for i in range(5):
        create(custom, ns, f"p{i}")
    first = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, limit=2)
    second = custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, limit=10, _continue=first["metadata"]["continue"]
    )
    names = [i["metadata"]["name"] for i in first["items"] + second["items"]]
    assert names == ["p0", "p1", "p2", "p3", "p4"] and not second["metadata"].get("continue")
    assert first["metadata"]["remainingItemCount"] == 3


def test_dry_run_stores_nothing(custom: client.CustomObjectsApi, ns: str) -> None:
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("dry"), dry_run="All")
    assert obj["metadata"]["name"] == "dry"
    with pytest.raises(ApiException) as err:
        get(custom, ns, "dry")
    assert err.value.status == 404


def test_delete_without_finalizers_removes_at_once(custom: client.CustomObjectsApi, ns: str) -> None:
    create(custom, ns, "w")
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")
    with pytest.raises(ApiException) as err:
        get(custom, ns, "w")
    assert err.value.status == 404


def test_finalizers_hold_deletion_until_emptied(custom: client.CustomObjectsApi, ns: str) -> None:
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    deleting = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")
    assert (
        deleting["metadata"]["deletionTimestamp"] and deleting["metadata"]["deletionGracePeriodSeconds"] == 0
    )
    assert get(custom, ns, "w")["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            "w",
            {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}},
        )
    assert err.value.status == 422 and "no new finalizers can be added" in err.value.body
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        get(custom, ns, "w")
    assert err.value.status == 404


def test_deleting_a_namespace_deletes_its_objects_and_waits_for_finalizers(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, ns: str
) -> None:
    create(custom, ns, "plain")
    held = widget("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, held)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    core.delete_namespace(ns)
    assert core.read_namespace(ns).status.phase == "Terminating"
    assert [
        i["metadata"]["name"]
        for i in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    ] == ["held"]
    assert core.list_namespaced_config_map(ns).items == []
    with pytest.raises(ApiException) as err:
        create(custom, ns, "late")
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        f'widgets.test.example.com "late" is forbidden: unable to create new content in namespace {ns} '
        "because it is being terminated"
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "held", {"metadata": {"finalizers": []}}
    )
    with pytest.raises(ApiException) as err:
        core.read_namespace(ns)
    assert err.value.status == 404


def test_creating_in_a_missing_namespace_is_not_found(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        create(custom, "no-such-ns", "w")
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "no-such-ns" not found'


def test_crd_created_through_the_api_is_served(
    api_client: client.ApiClient, custom: client.CustomObjectsApi
) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "sprockets.late.example.com"},
        "spec": {
            "group": "late.example.com",
            "scope": "Namespaced",
            "names": {"plural": "sprockets", "kind": "Sprocket"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api_client)
    created = ext.create_custom_resource_definition(crd)
    assert created.status.conditions is None  # as on a real server: the controllers establish it next
    established = ext.read_custom_resource_definition("sprockets.late.example.com")
    assert {c.type for c in established.status.conditions} == {"NamesAccepted", "Established"}
    body = {
        "apiVersion": "late.example.com/v1",
        "kind": "Sprocket",
        "metadata": {"name": "s"},
        "any": {"thing": 1},
    }
    assert custom.create_namespaced_custom_object("late.example.com", "v1", "default", "sprockets", body)[
        "any"
    ] == {"thing": 1}
    ext.delete_custom_resource_definition("sprockets.late.example.com")
    with pytest.raises(ApiException) as err:
        custom.list_namespaced_custom_object("late.example.com", "v1", "default", "sprockets")
    assert err.value.status == 404


def test_every_served_version_shows_the_same_objects_with_its_own_defaults(
    custom: client.CustomObjectsApi, ns: str
) -> None:
    create(custom, ns, "w")
    beta = custom.get_namespaced_custom_object(GROUP, "v1beta1", ns, PLURAL, "w")
    assert beta["apiVersion"] == "test.example.com/v1beta1" and beta["spec"]["displayName"] == "hello"
    lax = widget("lax")
    lax["apiVersion"] = f"{GROUP}/v1beta1"
    custom.create_namespaced_custom_object(GROUP, "v1beta1", ns, PLURAL, lax)
    assert "size" not in custom.get_namespaced_custom_object(GROUP, "v1beta1", ns, PLURAL, "lax")["spec"]
    assert get(custom, ns, "lax")["spec"]["size"] == 3  # v1's default, applied on read
    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "lax", {"status": {"phase": "Up"}}
    )
    assert status["metadata"]["generation"] == 1  # defaults seen on read are not a spec change


def test_events_are_selected_by_involved_object(core: client.CoreV1Api, ns: str) -> None:
    for name in ("a", "b"):
        core.create_namespaced_event(
            ns,
            {
                "metadata": {"generateName": "ev-"},
                "involvedObject": {"kind": "Widget", "name": name, "namespace": ns, "uid": f"uid-{name}"},
                "reason": "Tested",
                "message": f"about {name}",
                "type": "Normal",
            },
        )
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=b,involvedObject.kind=Widget")
    assert [e.message for e in events.items] == ["about b"]


def test_configmaps_take_strategic_merge_and_secrets_take_string_data(
    emulator: KubeEmulator, core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    code, cm = raw(
        emulator,
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/cm",
        {"data": {"b": "2"}},
        "application/strategic-merge-patch+json",
    )
    assert code == 200 and cm["data"] == {"a": "1", "b": "2"}
    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert secret.data == {"k": "dg=="} and secret.type == "Opaque"


def test_request_log_names_verbs_as_rbac_does(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    raw(emulator, "DELETE", "/_emulator/requests")
    create(custom, ns, "w")
    get(custom, ns, "w")
    custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "w", {"status": {"phase": "x"}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")
    with pytest.raises(ApiException):
        get(custom, ns, "w")
    _, log = raw(emulator, "GET", "/_emulator/requests")
    seen = [(e["verb"], e["resource"], e["subresource"], e["namespace"], e["name"], e["code"]) for e in log]
    assert seen == [
        ("create", "widgets", "", ns, "", 201),
        ("get", "widgets", "", ns, "w", 200),
        ("list", "widgets", "", ns, "", 200),
        ("patch", "widgets", "status", ns, "w", 200),
        ("delete", "widgets", "", ns, "w", 200),
        ("get", "widgets", "", ns, "w", 404),
    ]
    assert all(e["group"] == GROUP and e["version"] == VERSION for e in log)


def test_a_crd_with_a_non_structural_schema_is_refused(api_client: client.ApiClient) -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"untyped": {"description": "no type"}},
                "anyOf": [{"type": "object", "required": ["untyped"]}],
            }
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "bads.late.example.com"},
        "spec": {
            "group": "late.example.com",
            "scope": "Namespaced",
            "names": {"plural": "bads", "kind": "Bad"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }
    with pytest.raises(ApiException) as err:
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    found = {(c["field"], c["message"]) for c in json.loads(err.value.body)["details"]["causes"]}
    base = "spec.validation.openAPIV3Schema.properties[spec]"  # one schema: hoisted, as there
    assert found == {
        (f"{base}.properties[untyped].type", "Required value: must not be empty for specified object fields"),
        (f"{base}.anyOf[0].type", "Forbidden: must be empty to be structural"),
    }


def test_a_custom_resource_body_must_name_its_kind(emulator: KubeEmulator, ns: str) -> None:
    code, status = raw(
        emulator,
        "POST",
        f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets",
        {"metadata": {"name": "x"}},
        "application/json",
    )
    assert code == 400 and status["message"].startswith(
        "the object provided is unrecognized (must be of type Widget): Object 'Kind' is missing in '{"
    )


def test_server_side_apply_requires_a_field_manager(emulator: KubeEmulator, ns: str) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets/nofm"
    code, status = raw(emulator, "PATCH", path, widget("nofm"), "application/apply-patch+yaml")
    assert code == 422 and status["details"]["causes"][0]["field"] == "fieldManager"


def test_aggregated_discovery_answers_what_kubectl_asks_for_first(emulator: KubeEmulator) -> None:
    """kubectl asks for apidiscovery v2 first and gets one APIGroupDiscoveryList, as from a real server."""
    req = urllib.request.Request(emulator.url + "/apis")
    req.add_header(
        "Accept",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        )
        doc = json.loads(resp.read())
    assert doc["kind"] == "APIGroupDiscoveryList"
    groups = {item["metadata"]["name"]: item for item in doc["items"]}
    version = next(v for v in groups[GROUP]["versions"] if v["version"] == VERSION)
    widgets = next(r for r in version["resources"] if r["resource"] == "widgets")
    assert widgets["scope"] == "Namespaced" and widgets["subresources"][0]["subresource"] == "status"
    _, legacy = raw(emulator, "GET", "/apis")
    assert legacy["kind"] == "APIGroupList"
    _, version_doc = raw(emulator, "GET", "/version")
    assert version_doc["major"] == "1" and version_doc["minor"] == "37"


def test_openapi_documents_carry_the_crd_schemas(emulator: KubeEmulator) -> None:
    _, root = raw(emulator, "GET", "/openapi/v3")
    url = root["paths"]["apis/test.example.com/v1"]["serverRelativeURL"]
    _, doc = raw(emulator, "GET", url)
    widget_schema = doc["components"]["schemas"]["com.example.test.v1.Widget"]
    assert widget_schema["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "version": "v1", "kind": "Widget"}
    ]
    assert widget_schema["properties"]["spec"]["required"] == ["displayName"]
    patch = doc["paths"]["/apis/test.example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    _, v2 = raw(emulator, "GET", "/openapi/v2")
    assert (
        v2["definitions"]["com.example.test.v1.Widget"]["properties"]["spec"]["properties"]["size"]["maximum"]
        == 100
    )


def test_unknown_top_level_fields_of_built_in_kinds_are_refused_in_strict_mode(
    core: client.CoreV1Api, ns: str
) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": "typo"}, "datta": {"a": "b"}}, field_validation="Strict"
        )
    assert err.value.status == 400 and 'unknown field "datta"' in json.loads(err.value.body)["message"]


def test_injected_faults_answer_as_the_api_server_would(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    create(custom, ns, "w")
    rules = [
        {"verb": "patch", "resource": "widgets", "subresource": "status", "code": 409, "count": 1},
        {"verb": "list", "resource": "widgets", "namespace": ns, "code": 429, "retryAfterSeconds": 3},
    ]
    code, config_doc = raw(emulator, "POST", "/_emulator/config", {"inject": rules}, "application/json")
    assert code == 200 and len(config_doc["inject"]) == 2
    try:
        with pytest.raises(ApiException) as err:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, "w", {"status": {"phase": "x"}}
            )
        assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, "w", {"status": {"phase": "x"}}
        )
        # Raw HTTP: urllib3 under the kubernetes client would honour Retry-After and retry by itself.
        req = urllib.request.Request(f"{emulator.url}/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets")
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(req, timeout=10)
        assert http_err.value.code == 429 and http_err.value.headers["Retry-After"] == "3"
        assert json.loads(http_err.value.read())["reason"] == "TooManyRequests"
    finally:
        raw(emulator, "POST", "/_emulator/config", {"inject": [], "latency_ms": 0}, "application/json")
    assert custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]


def test_field_selectors_on_crd_selectable_fields(custom: client.CustomObjectsApi, ns: str) -> None:
    create(custom, ns, "one", color="blue")
    create(custom, ns, "two", color="red")
    items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, field_selector="spec.color=blue")
    assert [i["metadata"]["name"] for i in items["items"]] == ["one"]
    with pytest.raises(ApiException) as err:
        custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, field_selector="spec.size=3")
    assert (
        err.value.status == 400
        and json.loads(err.value.body)["message"] == "field label not supported: spec.size"
    )
