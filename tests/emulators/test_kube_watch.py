"""Watches on the Kubernetes stand-in: resume without loss or duplicates, 410, bookmarks, selectors."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from q_operator.emulate.kube.server import KubeEmulator, running_kube_emulator

FIXTURES = Path(__file__).parent / "fixtures"
GROUP, VERSION, PLURAL = "test.example.com", "v1", "widgets"


@pytest.fixture(scope="module")
def emulator() -> Iterator[KubeEmulator]:
    with running_kube_emulator(crds=FIXTURES, bookmark_seconds=0.2, history=200) as emu:
        yield emu


@pytest.fixture(scope="module")
def custom(emulator: KubeEmulator) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


@pytest.fixture
def ns(emulator: KubeEmulator, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-").lower()[:50].strip("-")
    api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    api.close()
    return name


class Stream:
    """A raw watch connection read line by line, each read bounded by the socket timeout."""

    def __init__(self, emulator: KubeEmulator, path: str, **query: str) -> None:
        qs = "&".join(f"{k}={v}" for k, v in {"watch": "true", **query}.items())
        self.resp = urllib.request.urlopen(f"{emulator.url}{path}?{qs}", timeout=5)

    def next(self) -> dict[str, Any]:
        line = self.resp.readline()
        assert line, "watch stream ended"
        event: dict[str, Any] = json.loads(line)
        return event

    def take(self, count: int, skip_bookmarks: bool = True) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        while len(out) < count:
            event = self.next()
            if event["type"] == "BOOKMARK" and skip_bookmarks:
                continue
            out.append((event["type"], event["object"]["metadata"]["name"]))
        return out

    def close(self) -> None:
        self.resp.close()


def widget(
    name: str, labels: dict[str, str] | None = None, finalizers: list[str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if finalizers:
        meta["finalizers"] = finalizers
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": meta,
        "spec": {"displayName": "x"},
    }


def path(ns: str | None) -> str:
    return f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{ns}" if ns else "") + f"/{PLURAL}"


def test_watch_from_a_list_resource_version_sees_every_later_change_once(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("before"))
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("a"))
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a", {"spec": {"size": 5}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a")
    stream = Stream(emulator, path(ns), resourceVersion=rv)
    assert stream.take(3) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("b"))
    assert stream.take(1) == [("ADDED", "b")]
    stream.close()


def test_resuming_from_any_recent_resource_version_loses_and_repeats_nothing(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    rvs = []
    for i in range(6):
        obj = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget(f"r{i}"))
        rvs.append(obj["metadata"]["resourceVersion"])
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("end"))
    for i in range(6):
        stream = Stream(emulator, path(ns), resourceVersion=rvs[i])
        expected = [("ADDED", f"r{j}") for j in range(i + 1, 6)]
        assert stream.take(len(expected) + 1) == [*expected, ("ADDED", "end")]
        stream.close()


def test_watch_without_resource_version_starts_with_synthetic_added(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    for name in ("x", "y"):
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget(name))
    stream = Stream(emulator, path(ns))
    assert stream.take(2) == [("ADDED", "x"), ("ADDED", "y")]
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "x")
    assert stream.take(1) == [("DELETED", "x")]
    stream.close()


def test_too_old_resource_version_is_410_gone(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    first = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("old"))
    for i in range(210):  # more than the history of 200 events kept by this stand-in
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "old", {"spec": {"size": i % 90 + 1}}
        )
    stream = Stream(emulator, path(ns), resourceVersion=first["metadata"]["resourceVersion"])
    event = stream.next()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    stream.close()
    w = watch.Watch()
    with pytest.raises(ApiException) as err:
        for _ in w.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            PLURAL,
            resource_version=first["metadata"]["resourceVersion"],
            timeout_seconds=5,
        ):
            pass
    assert err.value.status == 410


def test_bookmarks_are_sent_when_asked_for(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["metadata"]["resourceVersion"]
    stream = Stream(emulator, path(ns), resourceVersion=rv, allowWatchBookmarks="true")
    event = stream.next()
    assert event["type"] == "BOOKMARK"
    assert int(event["object"]["metadata"]["resourceVersion"]) >= int(rv)
    assert event["object"]["kind"] == "Widget"
    stream.close()


def test_timeout_seconds_ends_the_watch(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, timeout_seconds=1
        )
    )
    assert events == [] and time.monotonic() - started < 4


def test_label_selector_watch_sees_objects_enter_and_leave(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["metadata"]["resourceVersion"]
    stream = Stream(emulator, path(ns), resourceVersion=rv, labelSelector="team%3Dred")
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w", {"team": "blue"}))
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "w", {"metadata": {"labels": {"team": "red"}}}
    )
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {"spec": {"size": 4}})
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "w", {"metadata": {"labels": {"team": "blue"}}}
    )
    assert stream.take(3) == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    stream.close()


def test_deleted_is_sent_once_when_the_last_finalizer_goes(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["metadata"]["resourceVersion"]
    stream = Stream(emulator, path(ns), resourceVersion=rv)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("f", finalizers=["a/b", "c/d"]))
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f")
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f")  # again: nothing changes
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "f", {"metadata": {"finalizers": ["c/d"]}}
    )
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f", {"metadata": {"finalizers": []}})
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("end"))
    assert stream.take(5) == [
        ("ADDED", "f"),
        ("MODIFIED", "f"),
        ("MODIFIED", "f"),
        ("DELETED", "f"),
        ("ADDED", "end"),
    ]
    stream.close()


def test_cluster_wide_watch_spans_namespaces_and_many_watches_all_see_the_change(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    rv = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["metadata"]["resourceVersion"]
    streams = [Stream(emulator, path(None), resourceVersion=rv) for _ in range(30)]
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("one"))
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget(f"{ns}-two"))
    for stream in streams:
        assert stream.take(2) == [("ADDED", "one"), ("ADDED", f"{ns}-two")]
        stream.close()


def test_table_watch_sends_rows_as_kubectl_get_watch_asks(
    emulator: KubeEmulator, custom: client.CustomObjectsApi, ns: str
) -> None:
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["metadata"]["resourceVersion"]
    req = urllib.request.Request(f"{emulator.url}{path(ns)}?watch=true&resourceVersion={rv}")
    req.add_header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    resp = urllib.request.urlopen(req, timeout=5)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("row"))
    event = json.loads(resp.readline())
    resp.close()
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert [c["name"] for c in event["object"]["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    assert event["object"]["rows"][0]["cells"][:2] == ["row", 3]
