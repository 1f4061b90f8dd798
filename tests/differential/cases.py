"""The request sequences sent to both servers: one function per case, registered in `CASES`.

Each case runs in a namespace of its own (the same name on both servers) and records what it wants
compared. Facts that depend on generated values (did the resourceVersion change? is this the same
uid?) are recorded as notes, since the values themselves are replaced by placeholders.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from q_operator.registry import KINDS
from q_operator.sandbox import wait_for
from tests.differential.harness import JSON, Case, Steps, normalise_table

REPO = Path(__file__).resolve().parents[2]
WIDGETS_CRDS = REPO / "tests" / "emulators" / "fixtures" / "widgets.yaml"
OPERATOR_CRDS = REPO / "crds"
SAMPLES = REPO / "samples"

CASES: dict[str, Case] = {}

W = "/apis/test.example.com/v1"
G = "/apis/test.example.com/v1/gadgets"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
MERGE = "application/merge-patch+json"
JSONP = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def case(fn: Case) -> Case:
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


def widgets(s: Steps, name: str = "") -> str:
    return f"{W}/namespaces/{s.ns}/widgets" + (f"/{name}" if name else "")


def widget(name: str, **spec: Any) -> JSON:
    body: JSON = {"displayName": "hello"}
    body.update(spec)
    return {"apiVersion": "test.example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": body}


def rv(reply_body: Any) -> str:
    return str(((reply_body or {}).get("metadata") or {}).get("resourceVersion", ""))


def without_managed_fields(body: Any) -> Any:
    """The body with metadata.managedFields dropped (compared in cases of their own)."""
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        body = copy.deepcopy(body)
        body["metadata"].pop("managedFields", None)
        for item in body.get("items") or []:
            if isinstance(item, dict) and isinstance(item.get("metadata"), dict):
                item["metadata"].pop("managedFields", None)
    return body


NO_MF: Callable[[Any], Any] = without_managed_fields


def sample(name: str) -> JSON:
    doc = yaml.safe_load((SAMPLES / name).read_text())
    assert isinstance(doc, dict)
    return doc


def _in_ns(doc: JSON, ns: str) -> JSON:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = ns
    return doc


# ---- create, read, defaults --------------------------------------------------------------------------


@case
def create_get_and_defaults(s: Steps) -> None:
    created = s.call("create", "POST", widgets(s), widget("w1"), keep=NO_MF)
    s.call("get", "GET", widgets(s, "w1"), keep=NO_MF)
    s.call("create-again", "POST", widgets(s), widget("w1"))
    s.call("get-missing", "GET", widgets(s, "nope"))
    s.call(
        "create-other-namespace-in-body",
        "POST",
        widgets(s),
        {**widget("w2"), "metadata": {"name": "w2", "namespace": "elsewhere"}},
    )
    s.call(
        "create-no-kind",
        "POST",
        widgets(s),
        {"apiVersion": "test.example.com/v1", "metadata": {"name": "w3"}, "spec": {"displayName": "x"}},
    )
    s.call("create-wrong-kind", "POST", widgets(s), {**widget("w4"), "kind": "Gadget"})
    s.call("create-no-name", "POST", widgets(s), {**widget(""), "metadata": {}})
    s.call("create-bad-name", "POST", widgets(s), widget("Not_A_Name"))
    bad_meta = widget("badmeta")
    bad_meta["metadata"].update(labels={"a/b/c": "x", "ok": "a b"}, annotations={"exa_mple.com/x": "y"})
    s.call("create-bad-metadata", "POST", widgets(s), bad_meta)
    s.call("create-not-json", "POST", widgets(s), raw=b"{not json")
    s.call("create-in-missing-namespace", "POST", f"{W}/namespaces/nonexistent-ns/widgets", widget("w5"))
    generated = s.call(
        "create-generate-name",
        "POST",
        widgets(s),
        {**widget(""), "metadata": {"generateName": "gen-"}},
        keep=lambda b: {k: v for k, v in (b or {}).items() if k != "metadata"},
    )
    name = str(generated.body["metadata"]["name"])
    s.note("generated-name-shape", (name.startswith("gen-"), len(name)))
    s.note("create-rv-set", bool(rv(created.body)))


@case
def cluster_scoped_and_message_expression(s: Steps) -> None:
    name = f"{s.ns}-g"
    s.call(
        "create",
        "POST",
        G,
        {
            "apiVersion": "test.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": name},
            "spec": {"level": 3},
        },
        keep=NO_MF,
    )
    s.call(
        "create-too-high",
        "POST",
        G,
        {
            "apiVersion": "test.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": name + "x"},
            "spec": {"level": 30},
        },
    )
    s.call("get", "GET", f"{G}/{name}", keep=NO_MF)
    s.call("get-status-without-subresource", "GET", f"{G}/{name}/status")
    s.call(
        "patch-status-without-subresource",
        "PATCH",
        f"{G}/{name}/status",
        {"status": {"x": 1}},
        content_type=MERGE,
    )
    s.call("get-namespaced-path", "GET", f"/apis/test.example.com/v1/namespaces/{s.ns}/gadgets/{name}")
    s.call("delete", "DELETE", f"{G}/{name}", keep=NO_MF)


# ---- invalid objects --------------------------------------------------------------------------------


@case
def invalid_schema_values(s: Steps) -> None:
    bad = {
        "displayName": "a b",
        "size": 500,
        "color": "pink",
        "tags": {"a": "12345678901", "b": "x", "c": "y", "d": "z"},
        "ports": [{"name": "p"}, {"port": 1}, {"port": "x"}],
        "policy": "Keep",
    }
    s.call("many-errors", "POST", widgets(s), widget("bad", **bad))
    s.call("required-missing", "POST", widgets(s), {**widget("req"), "spec": {"size": 4}})
    s.call("type-errors", "POST", widgets(s), widget("types", size="big", tags=["x"], ports={"a": 1}))
    s.call("too-long", "POST", widgets(s), widget("long", displayName="x" * 25))
    s.call("one-of-none", "POST", widgets(s), widget("oneof", source={}))
    s.call("one-of-both", "POST", widgets(s), widget("oneof2", source={"url": "u", "bucket": "b"}))
    s.call("min-length", "POST", widgets(s), widget("minlen", displayName=""))
    s.call("null-nullable", "POST", widgets(s), widget("nul", note=None), keep=NO_MF)
    s.call("null-not-nullable", "POST", widgets(s), widget("nul2", color=None))
    s.call(
        "int-or-string-ok",
        "POST",
        widgets(s),
        widget("ios", ports=[{"port": 80}, {"port": "http"}]),
        keep=NO_MF,
    )
    s.call(
        "too-many-items", "POST", widgets(s), widget("items", ports=[{"port": 1}, {"port": 2}, {"port": 3}])
    )
    s.call("float-for-int", "POST", widgets(s), widget("flt", size=2.5))
    s.call("int32-overflow", "POST", widgets(s), widget("i32", size=2**40))


@case
def invalid_cel_rules(s: Steps) -> None:
    s.call("root-rule", "POST", widgets(s), widget("forbidden-one"))
    s.call("field-path-rule", "POST", widgets(s), widget("minsize", size=2, minSize=5))
    s.call("cel-and-schema-errors", "POST", widgets(s), widget("both", size=2, minSize=5, displayName="a b"))
    s.call("cel-blocked-by-required", "POST", widgets(s), {**widget("forbidden-two"), "spec": {"size": 4}})
    s.call("create", "POST", widgets(s), widget("imm", color="red"), keep=NO_MF)
    s.call(
        "transition-immutable", "PATCH", widgets(s, "imm"), {"spec": {"color": "blue"}}, content_type=MERGE
    )
    s.call("transition-removed", "PATCH", widgets(s, "imm"), {"spec": {"color": None}}, content_type=MERGE)
    s.call("transition-ok", "PATCH", widgets(s, "imm"), {"spec": {"size": 9}}, content_type=MERGE, keep=NO_MF)


@case
def unknown_fields_and_field_validation(s: Steps) -> None:
    body = widget("u1", bogus=1)
    body["metadata"]["alsoBogus"] = "x"
    body["topLevel"] = True
    s.call("warn-default", "POST", widgets(s), body, keep=NO_MF)
    body2 = copy.deepcopy(body)
    body2["metadata"]["name"] = "u2"
    s.call("strict", "POST", widgets(s), body2, query={"fieldValidation": "Strict"})
    s.call("ignore", "POST", widgets(s), body2, query={"fieldValidation": "Ignore"}, keep=NO_MF)
    s.call("bad-mode", "POST", widgets(s), body2, query={"fieldValidation": "Loud"})
    s.call(
        "strict-patch",
        "PATCH",
        widgets(s, "u1"),
        {"spec": {"other": 2}},
        content_type=MERGE,
        query={"fieldValidation": "Strict"},
    )
    s.call("warn-patch", "PATCH", widgets(s, "u1"), {"spec": {"other": 2}}, content_type=MERGE, keep=NO_MF)
    s.call(
        "preserved-extra",
        "PATCH",
        widgets(s, "u1"),
        {"spec": {"extra": {"anything": {"goes": [1]}}}},
        content_type=MERGE,
        query={"fieldValidation": "Strict"},
        keep=NO_MF,
    )
    s.call(
        "duplicate-field-strict",
        "POST",
        widgets(s),
        raw=b'{"apiVersion":"test.example.com/v1","kind":"Widget","metadata":{"name":"dup"},"spec":{"displayName":"a","displayName":"b"}}',
        query={"fieldValidation": "Strict"},
    )
    s.call(
        "duplicate-field-warn",
        "POST",
        widgets(s),
        raw=b'{"apiVersion":"test.example.com/v1","kind":"Widget","metadata":{"name":"dup2"},"spec":{"displayName":"a","displayName":"b"}}',
        keep=NO_MF,
    )


# ---- updates and status --------------------------------------------------------------------------------


@case
def update_put(s: Steps) -> None:
    created = s.call("create", "POST", widgets(s), widget("u"), keep=NO_MF).body
    body = copy.deepcopy(created)
    body["metadata"].pop("resourceVersion")
    s.call("put-without-rv", "PUT", widgets(s, "u"), body)
    stale = copy.deepcopy(created)
    stale["metadata"]["resourceVersion"] = "1"
    s.call("put-stale-rv", "PUT", widgets(s, "u"), stale)
    same = s.call("put-no-change", "PUT", widgets(s, "u"), created, keep=NO_MF).body
    s.note("no-change-keeps-rv", rv(same) == rv(created))
    other_uid = copy.deepcopy(same)
    other_uid["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    s.call("put-other-uid", "PUT", widgets(s, "u"), other_uid)
    changed = copy.deepcopy(same)
    changed["spec"]["size"] = 7
    changed["status"] = {"phase": "ignored-on-main-resource"}
    changed["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    changed["metadata"]["generation"] = 40
    after = s.call("put-change", "PUT", widgets(s, "u"), changed, keep=NO_MF).body
    s.note("change-moves-rv", rv(after) != rv(same))
    s.call(
        "put-name-mismatch",
        "PUT",
        widgets(s, "u"),
        {**after, "metadata": {**after["metadata"], "name": "other"}},
    )
    s.call(
        "put-missing",
        "PUT",
        widgets(s, "missing"),
        {**after, "metadata": {"name": "missing", "resourceVersion": "5"}},
    )
    labels = copy.deepcopy(after)
    labels["metadata"]["labels"] = {"team": "red"}
    s.call("put-labels-only", "PUT", widgets(s, "u"), labels, keep=NO_MF)


@case
def status_subresource(s: Steps) -> None:
    created = s.call(
        "create-with-status", "POST", widgets(s), {**widget("st"), "status": {"phase": "dropped"}}, keep=NO_MF
    ).body
    status = copy.deepcopy(created)
    status["status"] = {
        "phase": "Ready",
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    }
    status["spec"]["size"] = 50
    s.call("put-status", "PUT", widgets(s, "st") + "/status", status, keep=NO_MF)
    s.call("get-after-status", "GET", widgets(s, "st"), keep=NO_MF)
    s.call(
        "merge-status",
        "PATCH",
        widgets(s, "st") + "/status",
        {"status": {"phase": "Other"}, "spec": {"size": 60}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.call(
        "json-status",
        "PATCH",
        widgets(s, "st") + "/status",
        [{"op": "replace", "path": "/status/phase", "value": "J"}],
        content_type=JSONP,
        keep=NO_MF,
    )
    s.call(
        "invalid-status",
        "PATCH",
        widgets(s, "st") + "/status",
        {"status": {"conditions": [{"type": "Ready"}]}},
        content_type=MERGE,
    )
    s.call(
        "bad-time-status",
        "PATCH",
        widgets(s, "st") + "/status",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "yesterday"}]}},
        content_type=MERGE,
    )
    s.call(
        "status-unknown-field",
        "PATCH",
        widgets(s, "st") + "/status",
        {"status": {"bogus": 1}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.call(
        "status-metadata-labels",
        "PATCH",
        widgets(s, "st") + "/status",
        {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "L"}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.call(
        "status-of-missing",
        "PATCH",
        widgets(s, "nope") + "/status",
        {"status": {"phase": "x"}},
        content_type=MERGE,
    )


# ---- patches ---------------------------------------------------------------------------------------------


@case
def merge_and_json_patches(s: Steps) -> None:
    s.call("create", "POST", widgets(s), widget("p", tags={"a": "1"}), keep=NO_MF)
    s.call(
        "merge",
        "PATCH",
        widgets(s, "p"),
        {"spec": {"size": 8, "tags": {"a": None, "b": "2"}}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.call("merge-array-body", "PATCH", widgets(s, "p"), [{"a": 1}], content_type=MERGE)
    s.call("merge-invalid-result", "PATCH", widgets(s, "p"), {"spec": {"size": 0}}, content_type=MERGE)
    s.call("merge-no-op", "PATCH", widgets(s, "p"), {"spec": {"size": 8}}, content_type=MERGE, keep=NO_MF)
    s.call("merge-missing", "PATCH", widgets(s, "nope"), {"spec": {"size": 8}}, content_type=MERGE)
    s.call(
        "merge-rv-conflict",
        "PATCH",
        widgets(s, "p"),
        {"metadata": {"resourceVersion": "1"}, "spec": {"size": 9}},
        content_type=MERGE,
    )
    s.call(
        "json-add",
        "PATCH",
        widgets(s, "p"),
        [{"op": "add", "path": "/spec/tags/c", "value": "3"}],
        content_type=JSONP,
        keep=NO_MF,
    )
    s.call(
        "json-replace-remove",
        "PATCH",
        widgets(s, "p"),
        [{"op": "replace", "path": "/spec/size", "value": 9}, {"op": "remove", "path": "/spec/tags/b"}],
        content_type=JSONP,
        keep=NO_MF,
    )
    s.call(
        "json-test-ok",
        "PATCH",
        widgets(s, "p"),
        [
            {"op": "test", "path": "/spec/size", "value": 9},
            {"op": "replace", "path": "/spec/size", "value": 10},
        ],
        content_type=JSONP,
        keep=NO_MF,
    )
    s.call(
        "json-test-fails",
        "PATCH",
        widgets(s, "p"),
        [{"op": "test", "path": "/spec/size", "value": 1}],
        content_type=JSONP,
    )
    s.call(
        "json-missing-path",
        "PATCH",
        widgets(s, "p"),
        [{"op": "remove", "path": "/spec/nothing"}],
        content_type=JSONP,
    )
    s.call(
        "json-replace-missing",
        "PATCH",
        widgets(s, "p"),
        [{"op": "replace", "path": "/spec/nothing", "value": 1}],
        content_type=JSONP,
    )
    s.call("json-not-a-list", "PATCH", widgets(s, "p"), {"op": "add"}, content_type=JSONP)
    s.call(
        "json-bad-op", "PATCH", widgets(s, "p"), [{"op": "frobnicate", "path": "/spec"}], content_type=JSONP
    )
    s.call(
        "json-move-copy",
        "PATCH",
        widgets(s, "p"),
        [
            {"op": "copy", "from": "/spec/tags/a", "path": "/spec/tags/d"},
            {"op": "move", "from": "/spec/tags/c", "path": "/spec/tags/e"},
        ],
        content_type=JSONP,
        keep=NO_MF,
    )
    s.call(
        "json-invalid-result",
        "PATCH",
        widgets(s, "p"),
        [{"op": "replace", "path": "/spec/color", "value": "pink"}],
        content_type=JSONP,
    )
    s.call("strategic-on-cr", "PATCH", widgets(s, "p"), {"spec": {"size": 3}}, content_type=STRATEGIC)
    s.call(
        "unknown-patch-type", "PATCH", widgets(s, "p"), {"spec": {"size": 3}}, content_type="application/json"
    )
    s.call("merge-bad-json", "PATCH", widgets(s, "p"), raw=b"{nope", content_type=MERGE)


@case
def strategic_patch_on_builtins(s: Steps) -> None:
    cms = f"/api/v1/namespaces/{s.ns}/configmaps"
    s.call(
        "create",
        "POST",
        cms,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": ["a.example.com/x"]},
            "data": {"a": "1"},
        },
        keep=NO_MF,
    )
    s.call(
        "strategic",
        "PATCH",
        f"{cms}/c",
        {"metadata": {"finalizers": ["b.example.com/y"]}, "data": {"b": "2", "a": None}},
        content_type=STRATEGIC,
        keep=NO_MF,
    )
    s.call(
        "strategic-delete-from-list",
        "PATCH",
        f"{cms}/c",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}},
        content_type=STRATEGIC,
        keep=NO_MF,
    )
    s.call("merge", "PATCH", f"{cms}/c", {"metadata": {"finalizers": None}}, content_type=MERGE, keep=NO_MF)
    s.call(
        "unknown-field-strict",
        "PATCH",
        f"{cms}/c",
        {"spec": {"x": 1}},
        content_type=STRATEGIC,
        query={"fieldValidation": "Strict"},
    )
    s.call("delete", "DELETE", f"{cms}/c")


@case
def server_side_apply(s: Steps) -> None:
    head = "apiVersion: test.example.com/v1\nkind: Widget\nmetadata:\n  name: a\n"
    doc = head + "spec:\n  displayName: applied\n  size: 5\n  tags:\n    one: '1'\n"
    s.call("apply-without-manager", "PATCH", widgets(s, "a"), raw=doc.encode(), content_type=APPLY)
    s.call(
        "apply-create",
        "PATCH",
        widgets(s, "a"),
        raw=doc.encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-a"},
        keep=NO_MF,
    )
    s.call(
        "apply-same",
        "PATCH",
        widgets(s, "a"),
        raw=doc.encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-a"},
        keep=NO_MF,
    )
    s.call(
        "managed-fields-after-create",
        "GET",
        widgets(s, "a"),
        keep=lambda b: b["metadata"].get("managedFields"),
    )
    smaller = (
        "apiVersion: test.example.com/v1\nkind: Widget\nmetadata:\n  name: a\nspec:\n  displayName: applied\n"
    )
    s.call(
        "apply-drops-fields",
        "PATCH",
        widgets(s, "a"),
        raw=smaller.encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-a"},
        keep=NO_MF,
    )
    s.call(
        "update-by-other",
        "PATCH",
        widgets(s, "a"),
        {"spec": {"size": 20}},
        content_type=MERGE,
        query={"fieldManager": "other"},
        keep=NO_MF,
    )
    conflicting = head + "spec:\n  displayName: applied\n  size: 30\n"
    s.call(
        "apply-conflict",
        "PATCH",
        widgets(s, "a"),
        raw=conflicting.encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-b"},
    )
    s.call(
        "apply-force",
        "PATCH",
        widgets(s, "a"),
        raw=conflicting.encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-b", "force": "true"},
        keep=NO_MF,
    )
    s.call(
        "managed-fields-after-force",
        "GET",
        widgets(s, "a"),
        keep=lambda b: b["metadata"].get("managedFields"),
    )
    s.call(
        "apply-invalid",
        "PATCH",
        widgets(s, "a"),
        raw=(head + "spec:\n  displayName: 'a b'\n").encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-a"},
    )
    s.call(
        "apply-not-yaml",
        "PATCH",
        widgets(s, "a"),
        raw=b"- just\n- a list\n",
        content_type=APPLY,
        query={"fieldManager": "mgr-a"},
    )
    s.call(
        "apply-wrong-name",
        "PATCH",
        widgets(s, "a"),
        raw=doc.replace("name: a", "name: b").encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-a"},
    )
    status = (
        "apiVersion: test.example.com/v1\nkind: Widget\nmetadata:\n  name: a\nstatus:\n  phase: Applied\n"
    )
    s.call(
        "apply-status",
        "PATCH",
        widgets(s, "a") + "/status",
        raw=status.encode(),
        content_type=APPLY,
        query={"fieldManager": "mgr-s"},
        keep=NO_MF,
    )


@case
def managed_fields_of_updates(s: Steps) -> None:
    s.call(
        "create",
        "POST",
        widgets(s),
        widget("m"),
        query={"fieldManager": "creator"},
        keep=lambda b: b["metadata"].get("managedFields"),
    )
    s.call(
        "merge",
        "PATCH",
        widgets(s, "m"),
        {"spec": {"size": 4}, "metadata": {"labels": {"x": "y"}}},
        content_type=MERGE,
        query={"fieldManager": "patcher"},
        keep=lambda b: b["metadata"].get("managedFields"),
    )
    s.call(
        "status",
        "PATCH",
        widgets(s, "m") + "/status",
        {"status": {"phase": "P"}},
        content_type=MERGE,
        query={"fieldManager": "statuser"},
        keep=lambda b: b["metadata"].get("managedFields"),
    )
    s.call(
        "default-manager",
        "PATCH",
        widgets(s, "m"),
        {"spec": {"size": 5}},
        content_type=MERGE,
        keep=lambda b: b["metadata"].get("managedFields"),
    )
    s.call(
        "clear-managed-fields",
        "PATCH",
        widgets(s, "m"),
        {"metadata": {"managedFields": [{}]}},
        content_type=MERGE,
        keep=lambda b: b["metadata"].get("managedFields"),
    )


# ---- finalizers and deletion --------------------------------------------------------------------------


@case
def cascading_deletion(s: Steps) -> None:
    options = {"kind": "DeleteOptions", "apiVersion": "v1"}
    for name, policy in (("fg", "Foreground"), ("orph", "Orphan"), ("bg", "Background")):
        s.call(f"create-{name}", "POST", widgets(s), widget(name), keep=NO_MF)
        body = {**options, "propagationPolicy": policy}
        s.call(f"delete-{name}", "DELETE", widgets(s, name), body, keep=NO_MF)
        s.call(f"get-after-{name}", "GET", widgets(s, name), keep=NO_MF)


@case
def finalizers_and_deletion(s: Steps) -> None:
    s.call(
        "create",
        "POST",
        widgets(s),
        {**widget("f"), "metadata": {"name": "f", "finalizers": ["test.example.com/hold"]}},
        keep=NO_MF,
    )
    s.call("delete", "DELETE", widgets(s, "f"), keep=NO_MF)
    s.call("delete-again", "DELETE", widgets(s, "f"), keep=NO_MF)
    s.call("get-terminating", "GET", widgets(s, "f"), keep=NO_MF)
    s.call(
        "add-finalizer-while-deleting",
        "PATCH",
        widgets(s, "f"),
        {"metadata": {"finalizers": ["test.example.com/hold", "test.example.com/more"]}},
        content_type=MERGE,
    )
    s.call(
        "spec-change-while-deleting",
        "PATCH",
        widgets(s, "f"),
        {"spec": {"size": 6}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.call(
        "remove-finalizer",
        "PATCH",
        widgets(s, "f"),
        {"metadata": {"finalizers": None}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.call("get-gone", "GET", widgets(s, "f"))
    s.call("create-plain", "POST", widgets(s), widget("g"), keep=NO_MF)
    s.call("delete-plain", "DELETE", widgets(s, "g"), keep=NO_MF)
    s.call("delete-missing", "DELETE", widgets(s, "g"))
    s.call("create-h", "POST", widgets(s), widget("h"), keep=NO_MF)
    s.call(
        "delete-wrong-uid",
        "DELETE",
        widgets(s, "h"),
        {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": "11111111-1111-1111-1111-111111111111"},
        },
    )
    s.call(
        "delete-wrong-rv",
        "DELETE",
        widgets(s, "h"),
        {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": "1"}},
    )
    s.call("delete-dry-run", "DELETE", widgets(s, "h"), query={"dryRun": "All"}, keep=NO_MF)
    s.call(
        "bad-finalizer-name",
        "POST",
        widgets(s),
        {**widget("bf"), "metadata": {"name": "bf", "finalizers": ["Not A Finalizer"]}},
    )
    s.call(
        "unqualified-finalizer",
        "POST",
        widgets(s),
        {**widget("uf"), "metadata": {"name": "uf", "finalizers": ["plain"]}},
        keep=NO_MF,
    )
    s.call("delete-collection", "DELETE", widgets(s), keep=NO_MF)
    s.call("list-after-collection", "GET", widgets(s), keep=NO_MF)


# ---- watches ---------------------------------------------------------------------------------------------


def _event(e: JSON) -> Any:
    obj = e.get("object") or {}
    meta = obj.get("metadata") or {}
    return {
        "type": e.get("type"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "size": (obj.get("spec") or {}).get("size"),
        "deleting": "deletionTimestamp" in meta,
        "finalizers": meta.get("finalizers"),
        "code": obj.get("code"),
        "reason": obj.get("reason"),
    }


@case
def watch_from_resource_version(s: Steps) -> None:
    listed = s.call("list-empty", "GET", widgets(s), keep=NO_MF).body
    start = rv(listed)
    s.call("create-a", "POST", widgets(s), widget("a"), keep=NO_MF)
    s.call("patch-a", "PATCH", widgets(s, "a"), {"spec": {"size": 4}}, content_type=MERGE, keep=NO_MF)
    s.call(
        "create-b",
        "POST",
        widgets(s),
        {**widget("b"), "metadata": {"name": "b", "finalizers": ["test.example.com/x"]}},
        keep=NO_MF,
    )
    s.call("delete-a", "DELETE", widgets(s, "a"), keep=NO_MF)
    s.call("delete-b", "DELETE", widgets(s, "b"), keep=NO_MF)
    s.call(
        "unfinalize-b",
        "PATCH",
        widgets(s, "b"),
        {"metadata": {"finalizers": None}},
        content_type=MERGE,
        keep=NO_MF,
    )
    s.watch("events-from-list-rv", widgets(s), {"resourceVersion": start}, count=7, timeout=5, keep=_event)
    s.call(
        "create-c",
        "POST",
        widgets(s),
        {**widget("c"), "metadata": {"name": "c", "labels": {"team": "red"}}},
        keep=NO_MF,
    )
    s.watch("events-without-rv", widgets(s), {}, count=2, timeout=3, keep=_event)
    s.watch("events-rv-0", widgets(s), {"resourceVersion": "0"}, count=2, timeout=3, keep=_event)
    s.watch(
        "events-label-selector",
        widgets(s),
        {"resourceVersion": start, "labelSelector": "team=red"},
        count=2,
        timeout=3,
        keep=_event,
    )
    s.watch(
        "events-field-selector",
        widgets(s),
        {"resourceVersion": start, "fieldSelector": "metadata.name=b"},
        count=4,
        timeout=3,
        keep=_event,
    )
    s.watch("events-bad-rv", widgets(s), {"resourceVersion": "abc"}, count=1, timeout=3, keep=_event)
    s.watch(
        "full-event",
        widgets(s),
        {"resourceVersion": start},
        count=1,
        timeout=3,
        keep=lambda e: without_managed_fields(e),
    )
    bookmarks = s.endpoint.watch(
        widgets(s),
        {"resourceVersion": start, "allowWatchBookmarks": "true", "timeoutSeconds": "2"},
        count=50,
        timeout=6,
    )
    s.note("bookmark-events-kinds", sorted({e["type"] for e in bookmarks}))


# ---- lists, paging, selectors ----------------------------------------------------------------------------


@case
def list_paging_and_selectors(s: Steps) -> None:
    for i in range(5):
        s.call(
            None,
            "POST",
            widgets(s),
            {
                **widget(f"item-{i}", color=["red", "green", "blue"][i % 3]),
                "metadata": {"name": f"item-{i}", "labels": {"n": str(i), "even": str(i % 2 == 0).lower()}},
            },
        )
    page1 = s.call("page-1", "GET", widgets(s), query={"limit": "2"}, keep=NO_MF).body
    token = str((page1.get("metadata") or {}).get("continue", ""))
    page2 = s.call("page-2", "GET", widgets(s), query={"limit": "2", "continue": token}, keep=NO_MF).body
    token2 = str((page2.get("metadata") or {}).get("continue", ""))
    s.call("page-3", "GET", widgets(s), query={"limit": "2", "continue": token2}, keep=NO_MF)
    s.call("bad-continue", "GET", widgets(s), query={"limit": "2", "continue": "garbage"})
    s.call(
        "label-eq",
        "GET",
        widgets(s),
        query={"labelSelector": "even=true"},
        keep=lambda b: [i["metadata"]["name"] for i in b.get("items", [])],
    )
    s.call(
        "label-set",
        "GET",
        widgets(s),
        query={"labelSelector": "n in (1,3),even"},
        keep=lambda b: [i["metadata"]["name"] for i in b.get("items", [])],
    )
    s.call(
        "label-not",
        "GET",
        widgets(s),
        query={"labelSelector": "n!=1,!missing"},
        keep=lambda b: [i["metadata"]["name"] for i in b.get("items", [])],
    )
    s.call("label-bad", "GET", widgets(s), query={"labelSelector": "a b c"})
    s.call(
        "field-name",
        "GET",
        widgets(s),
        query={"fieldSelector": "metadata.name=item-3"},
        keep=lambda b: [i["metadata"]["name"] for i in b.get("items", [])],
    )
    s.call(
        "field-selectable",
        "GET",
        widgets(s),
        query={"fieldSelector": "spec.color=green"},
        keep=lambda b: [i["metadata"]["name"] for i in b.get("items", [])],
    )
    s.call("field-unknown", "GET", widgets(s), query={"fieldSelector": "spec.size=3"})
    s.call(
        "limit-with-selector",
        "GET",
        widgets(s),
        query={"limit": "1", "labelSelector": "even=true"},
        keep=lambda b: {
            "names": [i["metadata"]["name"] for i in b.get("items", [])],
            "meta": b.get("metadata"),
        },
    )
    s.call(
        "all-namespaces",
        "GET",
        f"{W}/widgets",
        query={"labelSelector": "n=4"},
        keep=lambda b: {"kind": b.get("kind"), "names": [i["metadata"]["name"] for i in b.get("items", [])]},
    )
    s.call("rv-match-exact-without-rv", "GET", widgets(s), query={"resourceVersionMatch": "Exact"})


# ---- Table output ---------------------------------------------------------------------------------------


@case
def table_output(s: Steps) -> None:
    s.call(None, "POST", widgets(s), {**widget("t1", size=4), "metadata": {"name": "t1"}})
    s.call(
        None,
        "PATCH",
        widgets(s, "t1") + "/status",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        content_type=MERGE,
    )
    s.call(None, "POST", widgets(s), widget("t2"))
    s.call("list", "GET", widgets(s), accept=TABLE)
    s.call("get", "GET", widgets(s, "t1"), accept=TABLE)
    s.call("include-object", "GET", widgets(s), accept=TABLE, query={"includeObject": "Object"}, keep=NO_MF)
    s.call("include-none", "GET", widgets(s), accept=TABLE, query={"includeObject": "None"})
    s.call("paged", "GET", widgets(s), accept=TABLE, query={"limit": "1"})
    s.call("cluster-scoped-no-columns", "GET", G, accept=TABLE, query={"fieldSelector": "metadata.name=none"})
    s.call("table-missing", "GET", widgets(s, "nope"), accept=TABLE)
    s.call("table-v1beta1", "GET", widgets(s), accept="application/json;as=Table;v=v1beta1;g=meta.k8s.io")
    s.call(
        "table-fallback",
        "GET",
        widgets(s),
        accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        keep=lambda b: b.get("kind"),
    )
    s.call("configmaps", "GET", f"/api/v1/namespaces/{s.ns}/configmaps", accept=TABLE)
    s.call("namespace", "GET", f"/api/v1/namespaces/{s.ns}", accept=TABLE)
    s.call(
        "partial-metadata",
        "GET",
        widgets(s, "t1"),
        accept="application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
        keep=NO_MF,
    )


# ---- built-ins the operator and kopf use ------------------------------------------------------------------


@case
def builtin_objects(s: Steps) -> None:
    api = f"/api/v1/namespaces/{s.ns}"
    s.call(
        "configmap",
        "POST",
        f"{api}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}},
        keep=NO_MF,
    )
    s.call(
        "configmap-bad-key",
        "POST",
        f"{api}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm2"}, "data": {"bad key": "v"}},
    )
    s.call(
        "configmap-put-no-rv",
        "PUT",
        f"{api}/configmaps/cm",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "w"}},
        keep=NO_MF,
    )
    s.call(
        "secret",
        "POST",
        f"{api}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}},
        keep=NO_MF,
    )
    s.call(
        "secret-bad-data",
        "POST",
        f"{api}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"}, "data": {"a": "not base64!"}},
    )
    s.call(
        "serviceaccount",
        "POST",
        f"{api}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
        keep=NO_MF,
    )
    s.call(
        "event",
        "POST",
        f"{api}/events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "ev1"},
            "involvedObject": {
                "kind": "Widget",
                "name": "w",
                "namespace": s.ns,
                "apiVersion": "test.example.com/v1",
            },
            "reason": "Tested",
            "message": "hello",
            "type": "Normal",
            "source": {"component": "difftest"},
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": "2024-01-01T00:00:00Z",
            "count": 1,
        },
        keep=NO_MF,
    )
    s.call(
        "event-missing-involved",
        "POST",
        f"{api}/events",
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev2"}, "reason": "R", "message": "m"},
    )
    s.call(
        "events-by-field",
        "GET",
        f"{api}/events",
        query={"fieldSelector": "involvedObject.name=w,involvedObject.kind=Widget"},
        keep=lambda b: [i["metadata"]["name"] for i in b.get("items", [])],
    )
    s.call(
        "lease",
        "POST",
        f"/apis/coordination.k8s.io/v1/namespaces/{s.ns}/leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
        },
        keep=NO_MF,
    )
    s.call("delete-configmap", "DELETE", f"{api}/configmaps/cm", keep=NO_MF)
    s.call("delete-secret", "DELETE", f"{api}/secrets/s", keep=NO_MF)
    s.call("namespace-get", "GET", f"/api/v1/namespaces/{s.ns}", keep=NO_MF)


@case
def namespaces(s: Steps) -> None:
    name = f"{s.ns}-x"
    s.call(
        "create",
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        keep=NO_MF,
    )
    s.call(
        "create-bad-name",
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad.Name"}},
    )
    s.call(
        "put-cm",
        "POST",
        f"/api/v1/namespaces/{name}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
        keep=NO_MF,
    )
    s.call(
        "delete",
        "DELETE",
        f"/api/v1/namespaces/{name}",
        keep=lambda b: {
            "kind": b.get("kind"),
            "phase": (b.get("status") or {}).get("phase"),
            "deleting": "deletionTimestamp" in (b.get("metadata") or {}),
        },
    )
    s.call(
        "create-in-terminating",
        "POST",
        f"/api/v1/namespaces/{name}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm2"}},
    )


# ---- our own kinds -----------------------------------------------------------------------------------------


@case
def operator_kinds(s: Steps) -> None:
    for info in KINDS:  # every registered kind, with the sample its docs show first
        plural = info.plural
        doc = _in_ns(sample(info.sample), s.ns)
        base = f"/apis/{info.api_version}/namespaces/{s.ns}/{plural}"
        name = doc["metadata"]["name"]
        s.call(f"{plural}-create", "POST", base, doc, keep=NO_MF)
        s.call(f"{plural}-table", "GET", base, accept=TABLE)
        s.call(
            f"{plural}-kopf-annotations",
            "PATCH",
            f"{base}/{name}",
            {
                "metadata": {
                    "finalizers": ["q-operator.dev/finalizer"],
                    "annotations": {"kopf.zalando.org/last-handled-configuration": "{}"},
                }
            },
            content_type=MERGE,
            keep=NO_MF,
        )
        s.call(
            f"{plural}-status",
            "PATCH",
            f"{base}/{name}/status",
            {
                "status": {
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "Creating",
                            "message": "m",
                            "lastTransitionTime": "2024-01-01T00:00:00Z",
                            "observedGeneration": 1,
                        }
                    ],
                }
            },
            content_type=MERGE,
            keep=NO_MF,
        )
        s.call(
            f"{plural}-status-unknown",
            "PATCH",
            f"{base}/{name}/status",
            {"status": {"kopf": {"progress": {}}, "somethingElse": 1}},
            content_type=MERGE,
            keep=NO_MF,
        )
        s.call(f"{plural}-delete", "DELETE", f"{base}/{name}", keep=NO_MF)
    invalid = _in_ns(sample("qplugin-invalid.yaml"), s.ns)
    s.call(
        "qplugin-invalid",
        "POST",
        f"/apis/qbusiness.q-operator.dev/v1alpha1/namespaces/{s.ns}/qplugins",
        invalid,
    )
    broken = _in_ns(sample("qplugin-salesforce-oauth.yaml"), s.ns)
    broken["metadata"]["name"] = "broken2"
    broken["spec"]["authConfiguration"]["noAuthConfiguration"] = {}
    broken["spec"]["tags"] = {"q-operator.dev/x": "y"}
    broken["spec"]["type"] = "CUSTOM"
    s.call(
        "qplugin-cel", "POST", f"/apis/qbusiness.q-operator.dev/v1alpha1/namespaces/{s.ns}/qplugins", broken
    )


# ---- discovery and OpenAPI ------------------------------------------------------------------------------


OUR_GROUPS = ("test.example.com", *(info.group for info in KINDS))
SERVED_CORE = ("namespaces", "configmaps", "secrets", "serviceaccounts", "events", "services")
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


def _our_groups(body: Any) -> Any:
    """The groups our CRDs serve, by name (the order of discovery lists means nothing to clients)."""
    if not isinstance(body, dict):
        return body
    out = dict(body)
    out["groups"] = sorted(
        (g for g in body.get("groups") or [] if g.get("name") in OUR_GROUPS), key=lambda g: g["name"]
    )
    return out


def _resources_by_name(body: Any, only: tuple[str, ...] = ()) -> Any:
    """Resources keyed by name (so a missing one shows as such), optionally only those in `only`."""
    if not isinstance(body, dict):
        return body
    resources = body.get("resources") or []
    kept = [r for r in resources if not only or r["name"].split("/")[0] in only]
    return {**body, "resources": {r["name"]: r for r in kept}}


def _core_resources(body: Any) -> Any:
    """The core kinds the stand-in serves (it serves no pods, nodes and so on: see docs/testing.md)."""
    return _resources_by_name(body, SERVED_CORE)


def _aggregated_versions(item: JSON, only: tuple[str, ...] = ()) -> JSON:
    versions = {}
    for version in item.get("versions") or []:
        resources = {}
        for r in version.get("resources") or []:
            if only and r["resource"] not in only:
                continue
            subs = {sub["subresource"]: sub for sub in r.get("subresources") or []}
            resources[r["resource"]] = {**r, "subresources": subs} if subs else r
        versions[version["version"]] = {**version, "resources": resources}
    return {**item, "versions": versions}


def _aggregated(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    items = [i for i in body.get("items") or [] if (i.get("metadata") or {}).get("name", "") in OUR_GROUPS]
    return {**body, "items": {i["metadata"]["name"]: _aggregated_versions(i) for i in items}}


def _aggregated_core(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    return {**body, "items": [_aggregated_versions(i, SERVED_CORE) for i in body.get("items") or []]}


@case
def discovery(s: Steps) -> None:
    s.call("apis", "GET", "/apis", keep=_our_groups)
    s.call("group", "GET", "/apis/test.example.com")
    s.call("group-version", "GET", "/apis/test.example.com/v1", keep=_resources_by_name)
    s.call("group-version-qbusiness", "GET", "/apis/qbusiness.q-operator.dev/v1alpha1")
    s.call("group-version-v1beta1", "GET", "/apis/test.example.com/v1beta1")
    s.call("group-version-missing", "GET", "/apis/test.example.com/v9")
    s.call("group-missing", "GET", "/apis/nothing.example.com")
    s.call(
        "core",
        "GET",
        "/api",
        keep=lambda b: {k: v for k, v in b.items() if k != "serverAddressByClientCIDRs"},
    )
    s.call("core-v1", "GET", "/api/v1", keep=_core_resources)
    s.call("aggregated-apis", "GET", "/apis", accept=AGGREGATED, keep=_aggregated)
    s.call("aggregated-api", "GET", "/api", accept=AGGREGATED, keep=_aggregated_core)
    s.call(
        "aggregated-v2beta1-only",
        "GET",
        "/apis",
        accept="application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        keep=_our_groups,
    )
    s.call("version", "GET", "/version", keep=lambda b: sorted(b))
    s.call("unknown-path", "GET", "/nothing/here")
    s.call("healthz", "GET", "/healthz", accept="*/*")
    s.call("readyz", "GET", "/readyz", accept="*/*")


def _definitions(doc: Any, names: tuple[str, ...]) -> Any:
    if not isinstance(doc, dict):
        return doc
    defs = doc.get("definitions") or (doc.get("components") or {}).get("schemas") or {}
    return {n: defs.get(n) for n in names}


def _parameter_names(parameters: Any, shared: JSON) -> list[str]:
    """`in:name` of each parameter; v2 documents share some by $ref."""
    names = []
    for p in parameters or []:
        if isinstance(p, dict) and "$ref" in p:
            p = shared.get(p["$ref"].rsplit("/", 1)[-1], {})
        if isinstance(p, dict):
            names.append(f"{p.get('in')}:{p.get('name')}")
    return sorted(names)


def _operations(doc: Any, prefix: str) -> Any:
    """The shape of every operation under `prefix`: what a client relies on (operation ids, parameter
    names, request and response media types, status codes, the GVK), without the prose."""
    if not isinstance(doc, dict):
        return doc
    out: JSON = {}
    for path, item in (doc.get("paths") or {}).items():
        if not path.startswith(prefix):
            continue
        shared = doc.get("parameters") or {}
        shaped: JSON = {"parameters": _parameter_names(item.get("parameters"), shared)}
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            body = op.get("requestBody") or {}
            responses = op.get("responses") or {}
            shaped[method] = {
                "operationId": op.get("operationId"),
                "tags": op.get("tags"),
                "parameters": _parameter_names(op.get("parameters"), shared),
                "consumes": op.get("consumes") or sorted(body.get("content") or {}),
                "produces": op.get("produces")
                or sorted({t for r in responses.values() for t in (r.get("content") or {})}),
                "responses": sorted(responses),
                "action": op.get("x-kubernetes-action"),
                "gvk": op.get("x-kubernetes-group-version-kind"),
            }
        out[path] = shaped
    return out


def _our_paths(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    return {k: v for k, v in (body.get("paths") or {}).items() if "test.example.com" in k}


@case
def openapi(s: Steps) -> None:
    names = ("com.example.test.v1.Widget", "com.example.test.v1.WidgetList", "com.example.test.v1.Gadget")
    group_doc = "/openapi/v3/apis/test.example.com/v1"
    prefix = "/apis/test.example.com/v1"
    s.call("v3-root", "GET", "/openapi/v3", keep=_our_paths)
    s.call("v3-widget-schemas", "GET", group_doc, keep=lambda b: _definitions(b, names))
    s.call("v3-operations", "GET", group_doc, keep=lambda b: _operations(b, prefix))
    s.call("v3-doc-info", "GET", group_doc, keep=lambda b: {k: b.get(k) for k in ("openapi", "info")})
    s.call("v3-components", "GET", group_doc, keep=lambda b: sorted(b["components"]["schemas"]))
    qplugin = ("dev.q-operator.qbusiness.v1alpha1.QPlugin",)
    qbusiness = "/openapi/v3/apis/qbusiness.q-operator.dev/v1alpha1"
    s.call("v3-qplugin", "GET", qbusiness, keep=lambda b: _definitions(b, qplugin))
    s.call("v3-missing", "GET", "/openapi/v3/apis/nothing.example.com/v1")
    s.call("v2-widget", "GET", "/openapi/v2", keep=lambda b: _definitions(b, names))
    s.call("v2-operations", "GET", "/openapi/v2", keep=lambda b: _operations(b, prefix))


# ---- what users run: kubectl --------------------------------------------------------------------------

_WIDGET_YAML = """apiVersion: test.example.com/v1
kind: Widget
metadata:
  name: k1
  labels:
    team: red
spec:
  displayName: {display}
  color: red
"""
_BAD_WIDGET_YAML = """apiVersion: test.example.com/v1
kind: Widget
metadata:
  name: k-bad
spec:
  displayName: "not valid"
  size: 500
  color: pink
"""


def _json_output(text: str) -> Any:
    """kubectl -o json output as data, managedFields left out (compared in cases of their own)."""
    try:
        return without_managed_fields(json.loads(text))
    except ValueError:
        return text


@case
def kubectl_commands(s: Steps) -> None:
    """What users type, compared by output: apply, get, describe, explain, patch, wait, delete."""
    s.kubectl("apply-create", "apply", "-f", "-", stdin=_WIDGET_YAML.format(display="one"))
    s.kubectl("apply-unchanged", "apply", "-f", "-", stdin=_WIDGET_YAML.format(display="one"))
    s.kubectl("apply-configured", "apply", "-f", "-", stdin=_WIDGET_YAML.format(display="two"))
    s.kubectl("create-invalid", "create", "-f", "-", stdin=_BAD_WIDGET_YAML)
    s.kubectl("apply-invalid", "apply", "-f", "-", stdin=_BAD_WIDGET_YAML)
    s.kubectl("get", "get", "widgets")
    s.kubectl("get-wide", "get", "wd", "-o", "wide")
    s.kubectl("get-category", "get", "example")
    s.kubectl("get-label", "get", "widgets", "-l", "team=red", "-o", "name")
    s.kubectl("get-json", "get", "widget", "k1", "-o", "json", keep=_json_output)
    s.kubectl("get-missing", "get", "widget", "nope")
    s.kubectl("patch-merge", "patch", "widget", "k1", "--type", "merge", "-p", '{"spec":{"size":7}}')
    s.kubectl("patch-default-strategic", "patch", "widget", "k1", "-p", '{"spec":{"size":8}}')
    s.kubectl(
        "patch-json",
        "patch",
        "widget",
        "k1",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/size","value":9}]',
    )
    s.kubectl("patch-invalid", "patch", "widget", "k1", "--type", "merge", "-p", '{"spec":{"color":"blue"}}')
    s.kubectl("wait-timeout", "wait", "--for=condition=Ready", "widget/k1", "--timeout=1s")
    s.kubectl(
        "patch-status",
        "patch",
        "widget",
        "k1",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    )
    s.kubectl("wait-ready", "wait", "--for=condition=Ready", "widget/k1", "--timeout=20s")
    s.kubectl("get-after-status", "get", "widget", "k1")
    s.kubectl("describe", "describe", "widget", "k1")
    s.kubectl("label", "label", "widget", "k1", "tier=gold")
    s.kubectl("annotate", "annotate", "widget", "k1", "note=hi")
    server_side = _WIDGET_YAML.format(display="three").replace("name: k1", "name: k2")
    s.kubectl("apply-server-side", "apply", "--server-side", "-f", "-", stdin=server_side)
    conflicting = server_side.replace("color: red", "color: red\n  size: 50")
    s.kubectl("patch-k2", "patch", "widget", "k2", "--type", "merge", "-p", '{"spec":{"size":20}}')
    s.kubectl("apply-server-side-conflict", "apply", "--server-side", "-f", "-", stdin=conflicting)
    s.kubectl(
        "apply-server-side-force", "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=conflicting
    )
    s.kubectl("get-k2-json", "get", "widget", "k2", "-o", "json", keep=_json_output)
    s.kubectl("delete", "delete", "widget", "k2")
    s.kubectl(
        "patch-finalizer",
        "patch",
        "widget",
        "k1",
        "--type",
        "merge",
        "-p",
        '{"metadata":{"finalizers":["test.example.com/hold"]}}',
    )
    s.kubectl("delete-no-wait", "delete", "widget", "k1", "--wait=false")
    s.kubectl(
        "get-terminating",
        "get",
        "widget",
        "k1",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
        keep=lambda t: bool(t),
    )
    s.kubectl(
        "unfinalize",
        "patch",
        "widget",
        "k1",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    s.kubectl("wait-delete", "wait", "--for=delete", "widget/k1", "--timeout=20s")
    s.kubectl("delete-missing", "delete", "widget", "k1")


@case
def kubectl_discovery_and_explain(s: Steps) -> None:
    s.kubectl("api-resources", "api-resources", "--api-group=test.example.com")
    s.kubectl("api-resources-q", "api-resources", "--categories=q-operator", "-o", "name")
    s.kubectl("explain", "explain", "widget")
    s.kubectl("explain-spec", "explain", "widget.spec")
    s.kubectl("explain-field", "explain", "widgets.spec.size")
    s.kubectl("explain-metadata", "explain", "widget.metadata.ownerReferences")
    s.kubectl("explain-recursive", "explain", "qplugin.spec", "--recursive")
    s.kubectl("explain-qplugin-auth", "explain", "qplugin.spec.authConfiguration")
    s.kubectl("explain-missing", "explain", "widget.spec.nothing")
    s.kubectl("get-qplugins", "get", "qplugins")
    s.kubectl("get-q-operator", "get", "q-operator")


# ---- CRDs themselves, watches as Tables, the chart's objects -------------------------------------------

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _scratch_crd(plural: str, schema: JSON) -> JSON:
    kind = plural[:-1].capitalize()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.scratch.example.com"},
        "spec": {
            "group": "scratch.example.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }


def _crd_view(body: Any) -> Any:
    """A CRD answer without the status conditions' timing (Established comes a moment later)."""
    body = without_managed_fields(body)
    if isinstance(body, dict) and isinstance(body.get("status"), dict):
        body = copy.deepcopy(body)
        for condition in body["status"].get("conditions") or []:
            condition.pop("lastTransitionTime", None)
    return body


def _wait_established(s: Steps, path: str, timeout: float = 30.0) -> None:
    """A real server establishes a CRD a moment after creating it: wait (bounded), as clients do."""

    def established() -> bool:
        conditions = (s.endpoint.request("GET", path).body or {}).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    wait_for(f"{path} Established on {s.server}", established, timeout=timeout, error=AssertionError)


@case
def crd_validation(s: Steps) -> None:
    """Which CRDs a real server refuses, and how it words it (names are per-case: CRDs are cluster-wide)."""
    p = s.ns.replace("-", "")[:20]
    obj = {"type": "object"}
    s.call(
        "metadata-described",
        "POST",
        CRDS,
        _scratch_crd(
            f"{p}as", {"type": "object", "properties": {"metadata": {"type": "object", "description": "x"}}}
        ),
    )
    s.call(
        "untyped-field",
        "POST",
        CRDS,
        _scratch_crd(f"{p}bs", {"type": "object", "properties": {"spec": {"description": "no type"}}}),
    )
    s.call("root-not-object", "POST", CRDS, _scratch_crd(f"{p}cs", {"type": "string"}))
    s.call(
        "pattern-over-1000",
        "POST",
        CRDS,
        _scratch_crd(
            f"{p}ds", {"type": "object", "properties": {"spec": {"type": "string", "pattern": "^.{0,1023}$"}}}
        ),
    )
    s.call(
        "bad-cel",
        "POST",
        CRDS,
        _scratch_crd(f"{p}es", {"type": "object", "x-kubernetes-validations": [{"rule": "self.nope ==="}]}),
    )
    wrong_name = _scratch_crd(f"{p}fs", obj)
    wrong_name["metadata"]["name"] = "other.scratch.example.com"
    s.call("name-mismatch", "POST", CRDS, wrong_name)
    no_storage = _scratch_crd(f"{p}gs", obj)
    no_storage["spec"]["versions"][0]["storage"] = False
    s.call("no-storage-version", "POST", CRDS, no_storage)
    both = _scratch_crd(
        f"{p}hs",
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": {"type": "string"},
                }
            },
        },
    )
    s.call("properties-and-additional", "POST", CRDS, both)
    s.call(
        "valid",
        "POST",
        CRDS,
        _scratch_crd(
            f"{p}is",
            {
                "type": "object",
                "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            },
        ),
        keep=_crd_view,
    )
    _wait_established(s, f"{CRDS}/{p}is.scratch.example.com")
    s.call(
        "delete-valid",
        "DELETE",
        f"{CRDS}/{p}is.scratch.example.com",
        keep=lambda b: {k: (b or {}).get(k) for k in ("kind", "status")} if isinstance(b, dict) else b,
    )


def _table_events(events: list[JSON]) -> list[Any]:
    """The events' Tables, ages normalised. Only a watch's first Table carries the column definitions
    (kube-apiserver's and the stand-in's alike), so later rows are read with the columns last sent:
    a MODIFIED event's age column printed "0s" by one server and "1s" by the other."""
    shown: list[Any] = []
    columns: list[JSON] = []
    for e in events:
        raw = e.get("object") or {}
        columns = raw.get("columnDefinitions") or columns
        obj = normalise_table({**raw, "columnDefinitions": columns}) if raw.get("kind") == "Table" else raw
        shown.append(
            {
                "type": e.get("type"),
                "kind": obj.get("kind"),
                "columns": [c.get("name") for c in raw.get("columnDefinitions") or []],
                "cells": [row.get("cells") for row in obj.get("rows") or []],
            }
        )
    return shown


@case
def watch_as_table(s: Steps) -> None:
    """`kubectl get -w`: a watch whose events carry Tables."""
    start = rv(s.call(None, "GET", widgets(s)).body)
    s.call("create", "POST", widgets(s), widget("tw", size=5), keep=NO_MF)
    s.call("patch", "PATCH", widgets(s, "tw"), {"spec": {"size": 6}}, content_type=MERGE, keep=NO_MF)
    events = s.endpoint.watch(widgets(s), {"resourceVersion": start}, count=2, timeout=5, accept=TABLE)
    s.record("events", _table_events(events))


def _chart_objects(namespace: str) -> list[JSON]:
    import subprocess

    rendered = subprocess.run(
        [
            str(REPO / ".tools" / "bin" / "helm"),
            "template",
            "q",
            str(REPO / "charts" / "q-operator"),
            "--namespace",
            namespace,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict)]


def _object_path(obj: JSON, namespace: str) -> str:
    group_version = obj["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    plural = {
        "ServiceAccount": "serviceaccounts",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
        "Deployment": "deployments",
        "Service": "services",
        "Role": "roles",
        "RoleBinding": "rolebindings",
    }[obj["kind"]]
    cluster = obj["kind"].startswith("Cluster")
    return f"{base}/{plural}" if cluster else f"{base}/namespaces/{namespace}/{plural}"


@case
def chart_objects(s: Steps) -> None:
    """What the Helm chart creates, as each server stores it. A kind the chart makes more than one of
    (its ClusterRoles) is labelled by name from the second on."""
    seen: set[str] = set()
    for obj in _chart_objects(s.ns):
        label = f"create-{obj['kind']}"
        if label in seen:
            label = f"{label}-{obj['metadata']['name']}"
        seen.add(label)
        if obj["kind"].startswith("Cluster"):
            obj["metadata"]["name"] = f"{obj['metadata']['name']}-{s.ns}"
            for subject in obj.get("subjects") or []:
                subject["namespace"] = s.ns
            if obj.get("roleRef", {}).get("kind") == "ClusterRole":
                obj["roleRef"]["name"] = f"{obj['roleRef']['name']}-{s.ns}"
        s.call(label, "POST", _object_path(obj, s.ns), obj, keep=NO_MF)
