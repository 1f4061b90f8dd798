"""Objects, the one global resourceVersion counter, and the bounded watch event log.

Everything here runs on the server's event loop, so no locks: a watch that reads the history and then
subscribes does so without an `await` in between, which is why no event is lost or sent twice.
Stored objects are never mutated in place; a write replaces the dict, so events can share them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
Key = tuple[str, str]
ObjKey = tuple[str, str]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one object, as the watch stream reports it."""

    rv: int
    key: Key
    type: str
    obj: JSON
    old: JSON | None
    # Encoded watch lines by (event type as seen, apiVersion): many watchers share one encoding.
    lines: dict[tuple[str, str], bytes] = field(default_factory=dict, compare=False)


class Watcher:
    """A subscriber to the events of one resource; the watch handler filters what it sends."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()


def obj_key(obj: JSON) -> ObjKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Store:
    """The objects of every resource, keyed by (group, plural) and then (namespace, name)."""

    def __init__(self, history: int = 10_000) -> None:
        self.rv = 0
        self.objects: dict[Key, dict[ObjKey, JSON]] = {}
        self.history: deque[Event] = deque()
        self.history_limit = history
        self.compacted = 0
        self.watchers: dict[Key, set[Watcher]] = {}

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def get(self, key: Key, namespace: str, name: str) -> JSON | None:
        return self.objects.get(key, {}).get((namespace, name))

    def items(self, key: Key, namespace: str | None = None) -> list[JSON]:
        """Objects of a resource sorted by namespace and name, optionally in one namespace."""
        bucket = self.objects.get(key, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    def namespaced_keys(self) -> list[Key]:
        return list(self.objects)

    def put(self, key: Key, obj: JSON, old: JSON | None) -> Event:
        """Store a created or updated object (its resourceVersion already set) and tell watchers."""
        self.objects.setdefault(key, {})[obj_key(obj)] = obj
        rv = int(obj["metadata"]["resourceVersion"])
        return self._record(Event(rv, key, ADDED if old is None else MODIFIED, obj, old))

    def remove(self, key: Key, obj: JSON, old: JSON | None) -> Event:
        """Drop an object; `obj` is its final state with the deletion's resourceVersion."""
        self.objects.get(key, {}).pop(obj_key(obj), None)
        rv = int(obj["metadata"]["resourceVersion"])
        return self._record(Event(rv, key, DELETED, obj, old))

    def drop_resource(self, key: Key) -> None:
        self.objects.pop(key, None)

    def _record(self, event: Event) -> Event:
        self.history.append(event)
        if len(self.history) > self.history_limit:
            self.compacted = self.history.popleft().rv
        for watcher in self.watchers.get(event.key, ()):
            watcher.queue.put_nowait(event)
        return event

    def events_since(self, key: Key, rv: int) -> list[Event] | None:
        """Events of `key` after `rv`, oldest first; None when some of them were already compacted."""
        if rv < self.compacted:
            return None
        out: list[Event] = []
        for event in reversed(self.history):
            if event.rv <= rv:
                break
            if event.key == key:
                out.append(event)
        out.reverse()
        return out

    def subscribe(self, key: Key) -> Watcher:
        watcher = Watcher(key)
        self.watchers.setdefault(key, set()).add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers.get(watcher.key, set()).discard(watcher)

    def close_watchers(self, key: Key) -> None:
        """End every watch of a resource (its CRD was deleted)."""
        for watcher in self.watchers.pop(key, set()):
            watcher.queue.put_nowait(None)
