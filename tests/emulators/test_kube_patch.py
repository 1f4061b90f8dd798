"""The patch formats of the Kubernetes stand-in, as pure functions."""

from __future__ import annotations

import pytest

from q_operator.emulate.kube.patch import PatchError, json_patch, merge_patch, strategic_merge_patch


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": 1}
    assert merge_patch(target, {"a": {"b": 9}, "l": [3], "gone": None}) == {"a": {"b": 9, "c": 2}, "l": [3]}


def test_json_patch_supports_every_operation_and_fails_a_test_distinctly() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "remove", "path": "/a/0"},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "copy", "from": "/b", "path": "/d"},
        {"op": "move", "from": "/d/c", "path": "/e"},
        {"op": "test", "path": "/e", "value": 2},
        {"op": "add", "path": "/k~1x", "value": True},
    ]
    assert json_patch(doc, ops) == {"a": [2, 3], "b": {"c": 2}, "d": {}, "e": 2, "k/x": True}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(PatchError) as err:
        json_patch(doc, [{"op": "test", "path": "/b/c", "value": 5}])
    assert err.value.test_failed
    with pytest.raises(PatchError) as err:
        json_patch(doc, [{"op": "remove", "path": "/nope"}])
    assert not err.value.test_failed


def test_strategic_merge_patch_uses_the_list_strategies_of_built_in_kinds() -> None:
    crd = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"versions": [{"name": "v1", "served": True}, {"name": "v2"}], "columns": [1, 2]},
    }
    patch = {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]},
        "spec": {
            "versions": [{"name": "v1", "served": False}, {"name": "v2", "$patch": "delete"}],
            "columns": [3],
        },
    }
    assert strategic_merge_patch(crd, patch) == {
        "metadata": {"finalizers": ["c", "b"]},
        "spec": {"versions": [{"name": "v1", "served": False}], "columns": [3]},
    }
    assert strategic_merge_patch({"data": {"a": "1"}}, {"data": {"$patch": "replace", "b": "2"}}) == {
        "data": {"b": "2"}
    }
