"""QLibraryItem end to end: the real operator process against the real kube-apiserver and the AWS
stand-in.

Each test works in an instance of its own (library items and categories are scoped by instance), so
"exactly one library item" is read straight from ListLibraryItems, as a user would check it.
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from q_operator.emulate.aws.faults import TokenBucket
from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import QLIBRARYITEM, QLIBRARYITEMS, new_instance_id, qlibraryitem

from .helpers import allow_adoption, apply, calls, client, listed, wait_event_reasons

AWS_ARGS = ["--build-seconds", "0.2"]
#: Library items and connectors have no build: poll right after a create or update, not after 1 s.
OPERATOR_ENV = {"Q_OPERATOR_POLL_MIN_SECONDS": "0.2"}

CATEGORY_A = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"
CATEGORY_B = "4f5a6b7c-8d9e-4fa0-b1c2-d3e4f5a6b7c8"
CATEGORY_C = "5a6b7c8d-9e0f-4a1b-82c3-e4f5a6b7c8d9"


def _one_item(sandbox: Sandbox, instance: str) -> dict[str, Any]:
    items = listed(sandbox, QLIBRARYITEM, instanceId=instance)
    assert len(items) == 1, items
    return items[0]


def _publish(sandbox: Sandbox, namespace: str, name: str, **spec: Any) -> tuple[str, dict[str, Any]]:
    """Apply a library item in a fresh instance and wait for Ready; (instance, object)."""
    instance = new_instance_id()
    apply(sandbox, qlibraryitem(name, namespace, instanceId=instance, **spec))
    return instance, sandbox.wait_condition(QLIBRARYITEMS, namespace, name, "Ready", timeout=30)


def test_publish_reaches_ready_with_the_one_item_aws_holds(sandbox: Sandbox, namespace: str) -> None:
    instance, obj = _publish(
        sandbox, namespace, "expenses", categories=[CATEGORY_A], itemStatus="PUBLISHED", isVerified=True
    )
    item = _one_item(sandbox, instance)
    status = obj["status"]
    assert status["libraryItemId"] == item["libraryItemId"]
    assert item["appId"] == obj["spec"]["appId"] and item["appVersion"] == 1
    assert [c["id"] for c in item["categories"]] == [CATEGORY_A]
    assert item["status"].casefold() == "published" and item["isVerified"] is True
    assert status["itemStatus"].casefold() == "published" and status["isVerified"] is True
    assert status["instanceId"] == instance and status["categories"] == [CATEGORY_A]
    assert condition(obj, "Synced", "True")
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert "createPending" not in status


def test_recategorizing_updates_the_same_item_in_place(sandbox: Sandbox, namespace: str) -> None:
    instance, obj = _publish(sandbox, namespace, "recat", categories=[CATEGORY_A])
    item_id = obj["status"]["libraryItemId"]
    spec = obj["spec"]
    before = len(calls(sandbox, "UpdateLibraryItem"))
    creates = len(calls(sandbox, "CreateLibraryItem"))
    apply(sandbox, qlibraryitem("recat", namespace, **{**spec, "categories": [CATEGORY_B, CATEGORY_C]}))
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "recat", "Ready", timeout=30)
    item = _one_item(sandbox, instance)
    assert item["libraryItemId"] == item_id == obj["status"]["libraryItemId"]
    assert {c["id"] for c in item["categories"]} == {CATEGORY_B, CATEGORY_C}
    assert set(obj["status"]["categories"]) == {CATEGORY_B, CATEGORY_C}
    assert len(calls(sandbox, "UpdateLibraryItem")) == before + 1
    assert len(calls(sandbox, "CreateLibraryItem")) == creates


def test_disabling_sets_the_item_status_in_aws(sandbox: Sandbox, namespace: str) -> None:
    instance, obj = _publish(sandbox, namespace, "pause", itemStatus="PUBLISHED")
    apply(sandbox, qlibraryitem("pause", namespace, **{**obj["spec"], "itemStatus": "DISABLED"}))
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "pause", "Ready", timeout=30)
    item = _one_item(sandbox, instance)
    assert item["status"].casefold() == "disabled"
    assert obj["status"]["itemStatus"].casefold() == "disabled"
    assert item["libraryItemId"] == obj["status"]["libraryItemId"]


def test_disabled_at_create_is_applied_right_after_publishing(sandbox: Sandbox, namespace: str) -> None:
    instance, obj = _publish(sandbox, namespace, "dark", itemStatus="DISABLED")
    item = _one_item(sandbox, instance)
    assert item["status"].casefold() == "disabled" == obj["status"]["itemStatus"].casefold()


def test_verifying_uses_update_library_item_metadata(sandbox: Sandbox, namespace: str) -> None:
    instance, obj = _publish(sandbox, namespace, "trusted", isVerified=False)
    assert _one_item(sandbox, instance)["isVerified"] is False
    before = len(calls(sandbox, "UpdateLibraryItemMetadata"))
    apply(sandbox, qlibraryitem("trusted", namespace, **{**obj["spec"], "isVerified": True}))
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "trusted", "Ready", timeout=30)
    item = _one_item(sandbox, instance)
    assert item["isVerified"] is True and obj["status"]["isVerified"] is True
    assert item["libraryItemId"] == obj["status"]["libraryItemId"]
    assert len(calls(sandbox, "UpdateLibraryItemMetadata")) == before + 1


def test_bumping_app_version_replaces_the_item_and_deletes_the_old_one(
    sandbox: Sandbox, namespace: str
) -> None:
    instance, obj = _publish(
        sandbox, namespace, "versioned", categories=[CATEGORY_A], itemStatus="PUBLISHED", isVerified=True
    )
    old_id = obj["status"]["libraryItemId"]
    start = len(calls(sandbox))
    apply(sandbox, qlibraryitem("versioned", namespace, **{**obj["spec"], "appVersion": 2}))

    def replaced() -> dict[str, Any] | None:
        items = listed(sandbox, QLIBRARYITEM, instanceId=instance)
        return items[0] if len(items) == 1 and items[0]["libraryItemId"] != old_id else None

    wait_for("one new item in place of the old one", replaced, timeout=30)
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "versioned", "Ready", timeout=30)
    new = _one_item(sandbox, instance)  # read once Ready: verification is applied after the swap
    assert new["appVersion"] == 2 and new["appId"] == obj["spec"]["appId"]
    assert [c["id"] for c in new["categories"]] == [CATEGORY_A] and new["isVerified"] is True
    assert obj["status"]["libraryItemId"] == new["libraryItemId"]
    assert obj["status"]["appVersion"] == 2
    assert not obj["status"].get("retiring")

    assert "Replacing" in wait_event_reasons(sandbox, namespace, "versioned", "Replaced", timeout=15)
    ops = [r["operation"] for r in calls(sandbox)[start:] if r["status"] == 200]
    assert ops.index("CreateLibraryItem") < ops.index("DeleteLibraryItem"), "the library never lacks the app"
    gone = client(sandbox, "qapps")
    try:
        gone.get_library_item(instanceId=instance, libraryItemId=old_id)
        raise AssertionError("the old item still exists")
    except gone.exceptions.ResourceNotFoundException:
        pass


def test_moving_to_another_instance_publishes_there_and_deletes_the_old_item(
    sandbox: Sandbox, namespace: str
) -> None:
    old_instance, obj = _publish(sandbox, namespace, "moving")
    old_id = obj["status"]["libraryItemId"]
    new_instance = new_instance_id()
    apply(sandbox, qlibraryitem("moving", namespace, **{**obj["spec"], "instanceId": new_instance}))
    wait_for(
        "the old instance emptied",
        lambda: listed(sandbox, QLIBRARYITEM, instanceId=old_instance) == [],
        timeout=30,
    )
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "moving", "Ready", timeout=30)
    item = _one_item(sandbox, new_instance)
    assert obj["status"]["libraryItemId"] == item["libraryItemId"] != old_id
    assert obj["status"]["instanceId"] == new_instance


def test_existing_item_of_the_same_app_version_is_refused_then_adopted_on_request(
    sandbox: Sandbox, namespace: str
) -> None:
    """An item published by hand is never silently duplicated nor taken over: the operator asks for
    the adopt annotation, and with it manages that very item."""
    instance = new_instance_id()
    manifest = qlibraryitem("handmade", namespace, instanceId=instance, isVerified=True)
    spec = manifest["spec"]
    existing = client(sandbox, "qapps").create_library_item(
        instanceId=instance, appId=spec["appId"], appVersion=spec["appVersion"], categories=[]
    )["libraryItemId"]
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "handmade", "Synced", "False", timeout=30)
    synced = condition(obj, "Synced", "False") or {}
    assert synced["reason"] == "AlreadyExists"
    assert existing in synced["message"] and "q-operator.dev/adopt-id" in synced["message"]
    assert [i["libraryItemId"] for i in listed(sandbox, QLIBRARYITEM, instanceId=instance)] == [existing]

    manifest["metadata"]["annotations"] = {"q-operator.dev/adopt-id": existing}
    allow_adoption(sandbox, namespace)
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "handmade", "Ready", timeout=30)
    item = _one_item(sandbox, instance)
    assert obj["status"]["libraryItemId"] == item["libraryItemId"] == existing
    assert item["isVerified"] is True


def test_unknown_category_is_flagged_naming_categories_until_the_spec_is_fixed(
    sandbox: Sandbox, namespace: str
) -> None:
    """Once an instance has categories, AWS accepts only those (the stand-in's category rule)."""
    instance = new_instance_id()
    missing = str(uuid.uuid4())
    client(sandbox, "qapps").batch_create_category(
        instanceId=instance, categories=[{"id": CATEGORY_A, "title": "Finance"}]
    )
    manifest = qlibraryitem("lost", namespace, instanceId=instance, categories=[CATEGORY_A, missing])
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "lost", "Synced", "False", timeout=30)
    synced = condition(obj, "Synced", "False") or {}
    assert synced["reason"] == "DependencyNotFound"
    assert "spec.categories" in synced["message"] and missing in synced["message"]
    assert condition(obj, "Ready", "False")
    assert listed(sandbox, QLIBRARYITEM, instanceId=instance) == []
    manifest["spec"]["categories"] = [CATEGORY_A]
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "lost", "Ready", timeout=30)
    assert _one_item(sandbox, instance)["libraryItemId"] == obj["status"]["libraryItemId"]


def test_app_the_instance_does_not_know_is_flagged_naming_app_id(sandbox: Sandbox, namespace: str) -> None:
    instance = new_instance_id()
    sandbox.aws("POST", "/_emulator/config", {"known_apps": [str(uuid.uuid4())]})
    try:
        manifest = qlibraryitem("orphan", namespace, instanceId=instance)
        apply(sandbox, manifest)
        obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "orphan", "Synced", "False", timeout=30)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"known_apps": None})
    synced = condition(obj, "Synced", "False") or {}
    assert synced["reason"] == "DependencyNotFound"
    assert "spec.appId" in synced["message"] and manifest["spec"]["appId"] in synced["message"]
    assert listed(sandbox, QLIBRARYITEM, instanceId=instance) == []


def test_throttled_creates_converge_and_honour_retry_after(sandbox: Sandbox, namespace: str) -> None:
    """CreateLibraryItem limited to one call every 3 s: the burst of creates is throttled with
    Retry-After (3 s), every item still converges (one each), and no throttled-op call comes before
    the wait AWS asked for, bar those already in flight when the 429 was sent (up to 1 s later on a
    busy machine). The operator resends a throttled call itself, paced by its limiter, before it
    would report Throttled on the object."""
    rate = 1 / 3
    names = [f"busy{i}" for i in range(3)]
    instance = new_instance_id()
    sandbox.aws("POST", "/_emulator/config", {"throttle": {"qapps:CreateLibraryItem": rate}})
    try:
        start = len(calls(sandbox, "CreateLibraryItem"))
        burst = [qlibraryitem(name, namespace, instanceId=instance) for name in names]
        sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(burst))  # one apply, one burst
        objs = [sandbox.wait_condition(QLIBRARYITEMS, namespace, n, "Ready", timeout=45) for n in names]
    finally:
        sandbox.aws("POST", "/_emulator/config", {"throttle": {}})
    items = listed(sandbox, QLIBRARYITEM, instanceId=instance)
    assert sorted(i["libraryItemId"] for i in items) == sorted(o["status"]["libraryItemId"] for o in objs)
    assert len(items) == len(names)

    log = calls(sandbox, "CreateLibraryItem")[start:]
    throttled = [r for r in log if r["status"] == 429]
    assert throttled, "the burst must have been throttled"
    assert all(r.get("error") == "ThrottlingException" for r in throttled)
    # Replay the stand-in's token bucket over the logged times to learn each 429's Retry-After.
    bucket = TokenBucket(rate, log[0]["time"])
    in_flight = 1.0
    for index, entry in enumerate(log):
        wait = bucket.take(entry["time"])
        if entry["status"] != 429:
            continue
        retry_after = max(1, -(-wait // 1))
        for later in log[index + 1 :]:
            gap = later["time"] - entry["time"]
            assert gap <= in_flight or gap >= retry_after, (
                f"a CreateLibraryItem {gap:.2f}s after a 429 that asked for {retry_after:.0f}s"
            )
    assert len([r for r in log if r["status"] == 200]) == len(names), "one create per item, no more"


def test_throttle_and_internal_error_are_retried_no_sooner_than_their_retry_after(
    sandbox: Sandbox, namespace: str
) -> None:
    """One object, so nothing else is in flight: a 429 asking for 2 s, then a 500 asking for 3 s
    (qapps' InternalServerException carries Retry-After too). Each next call waits at least that."""
    instance = new_instance_id()
    start = len(calls(sandbox, "CreateLibraryItem"))
    op = "qapps:CreateLibraryItem"
    faults = [
        {"operation": op, "error": "ThrottlingException", "count": 1, "fields": {"retryAfterSeconds": 2}},
        {"operation": op, "error": "InternalServerException", "count": 1, "fields": {"retryAfterSeconds": 3}},
    ]
    sandbox.aws("POST", "/_emulator/config", {"inject": faults})
    apply(sandbox, qlibraryitem("shaky", namespace, instanceId=instance))
    obj = sandbox.wait_condition(QLIBRARYITEMS, namespace, "shaky", "Ready", timeout=30)
    assert _one_item(sandbox, instance)["libraryItemId"] == obj["status"]["libraryItemId"]
    throttled, failed, created = calls(sandbox, "CreateLibraryItem")[start:]
    assert throttled["error"] == "ThrottlingException" and failed["error"] == "InternalServerException"
    assert created["status"] == 200
    assert failed["time"] - throttled["time"] >= 2.0, "a call came before the 429's Retry-After"
    assert created["time"] - failed["time"] >= 3.0, "a call came before the 500's Retry-After"
