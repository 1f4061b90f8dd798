"""What this process remembers about each object: one `ObjectMemory` per object, and the lookups kept
beside it by uid (who holds which AWS resource, which objects name which ConfigMap or live in which
namespace: `Index`).

- **Made in one place.** `Memory.of` makes an object's entry at its first cycle; its watch events
  fill its index entries (handlers.py `index`).
- **Forgotten in one place.** `bridge.forget`, when the finalizer goes (RELEASE) or the object's
  DELETED event arrives, and nowhere else: `Memory.forget` drops the entry, the resources it holds
  and its index entries, and hands back the entry, so that the two structures outside this module
  built from it are undone there too — its place in its parent's List sweep (`Watcher.forget`,
  sweep.py) and its count in the resources gauge (metrics.py). A new per-object structure belongs
  in `ObjectMemory`, or, if it must live elsewhere, is undone in `bridge.forget` from the entry.

Nothing here is the truth: the object's status is. This memory only saves work and closes races
inside one process (a lock per object, the status it wrote, how long builds take), so a restart
that loses it costs a few extra AWS calls, never a duplicate or an orphan.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from q_operator.engine.metrics import Counted
from q_operator.kinds.base import KindInfo, Page

#: (kind, where: the account and region, the resource's reference): natural keys (a connector's
#: label) are unique only within an account and region.
HoldKey = tuple[str, tuple[str, str], tuple[tuple[str, str], ...]]


@dataclass
class Build:
    """A build (a create or update AWS accepted) whose end this process waits for: paces the polls."""

    started: float
    #: "<Kind>/<step>": build durations are learned per kind and step.
    kind: str
    #: the last time a poll saw this build still in progress (None: no poll has yet)
    seen_running: float | None = None
    #: when the next poll was meant to happen: the learning uses it rather than when the poll did
    #: happen, which a busy operator makes later — learning from that would feed on itself.
    planned: float | None = None
    #: begun by a drift-timer cycle: the timer polls it itself (no change handler is waiting on it).
    by_timer: bool = False


#: Lists one page of a parent's resources from a token (None: the first page), as an object calls AWS.
Lister = Callable[[Mapping[str, str], str | None], Awaitable[Page]]


@dataclass
class Watched:
    """A Ready object its parent's List sweep looks after (sweep.py), instead of a per-object observe
    at every drift interval."""

    kind: KindInfo[Any, Any]
    #: (kind, where it is called: region and identity, the parent's ref fields): one sweep each.
    parent: tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]
    ref: Mapping[str, str]
    #: the status the object's last cycle left (what the operator last saw of the resource).
    status: Mapping[str, Any]
    namespace: str
    name: str
    generation: int
    #: how this object lists its parent (its identity, its region).
    lister: Lister
    #: when it was noted (monotonic): a page asked for before that may be older than the status.
    since: float
    #: when its next full per-object observe is due (monotonic): what no summary shows (tags).
    full_due: float
    #: what a sweep found that the status does not show ("updatedAt changed", "not listed"): the
    #: object has been woken; until its next cycle, no drift check of it is skipped.
    suspect: str | None = None


@dataclass(frozen=True)
class Met:
    """When this process first reconciled an object, and whether it already held AWS resources then:
    if so, a write an earlier process sent just before it stopped may still be settling (consistency.py)."""

    at: float
    generation: int
    held: bool


@dataclass
class ObjectMemory:
    """Everything this process keeps about one object, in one place."""

    #: a timer and a handler never reconcile the same object at once.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: the status as this process's own patches left it (every key a cycle wrote, merged in order):
    #: laid over every body a cycle is handed. This process is the status's only writer (kopf's
    #: peering keeps one active per scope), and a handler or timer may be handed a body older than
    #: any number of our patches (a busy event loop, a late watch): it must see them all, or it
    #: records a second create intent for an object whose resource already exists.
    wrote: dict[str, Any] = field(default_factory=dict)
    #: when (monotonic) `wrote` last changed: a body still without it long after was not just late,
    #: the write was lost (kopf gave up on an API server that was away), and is written again.
    wrote_at: float = 0.0
    #: a body was seen holding all of `wrote`: nothing to repair until `wrote` changes again.
    wrote_stored: bool = False
    #: the resourceVersion at which the last cycle converged (DONE): kopf runs resume and
    #: create/update one after another on the same body at startup; the second has nothing to add.
    converged_at: str | None = None
    #: the resourceVersions our own status writes inside the last handler call made (bridge.py): kopf
    #: may hand those older bodies to a handler after that call converged (its consistency wait timed
    #: out under load); at the same spec, they have nothing to add either.
    own_versions: set[str] = field(default_factory=set)
    #: failed cycles in a row: the back-off attempt (not kopf's retry count, which also counts the
    #: requeues of a healthy create and would inflate back-off).
    failures: int = 0
    #: the build this process is polling, if any.
    build: Build | None = None
    #: AWS resources this object holds (see `Memory.hold`).
    held: set[HoldKey] = field(default_factory=set)
    #: createPending.since of an intent recorded here and not yet followed by a create call: no
    #: create can have reached AWS under it, so the look before creating would find nothing.
    fresh_intent: str | None = None
    #: createPending.since of an intent whose last create this process sent and saw fail: nothing
    #: after the failed call was sent (a replay may make the create's follow-up calls itself).
    failed_create: str | None = None
    #: where this object is counted in the resources gauges (kind, conditions' status and reason).
    counted: Counted | None = None
    #: Ready and watched by its parent's List sweep (list mode; sweep.py), or None.
    watched: Watched | None = None
    #: this process's first cycle of the object (None: none yet).
    met: Met | None = None
    #: when (monotonic) the drift timer last ran a cycle of this object: its next check is due one
    #: drift interval later (controls.py; None: not yet, so the first tick checks).
    drift_checked: float | None = None
    #: the drift-interval annotation value a Warning event was posted about (posted once per value).
    drift_warned: str | None = None


class Memory:
    """Per-object memory of this process, by uid."""

    def __init__(self) -> None:
        self._objects: dict[str, ObjectMemory] = {}
        #: who holds which AWS resource: derived from each object's `held`, kept for the lookup.
        self._holders: dict[HoldKey, str] = {}
        #: the indexes of the objects' watch events, by name (configmaps.index_name, namespaces.index_name).
        self._indexes: dict[str, Index] = {}
        #: guards the maps (BuildClock is called from worker threads' callers too).
        self._lock = threading.Lock()

    def of(self, uid: str) -> ObjectMemory:
        """The object's memory, made on first use: the one place an entry is created."""
        with self._lock:
            found = self._objects.get(uid)
            if found is None:
                found = self._objects[uid] = ObjectMemory()
            return found

    def peek(self, uid: str) -> ObjectMemory | None:
        """The object's memory if there is any (a lookup never creates one)."""
        return self._objects.get(uid)

    def forget(self, uid: str) -> ObjectMemory | None:
        """Drop everything kept here about the object: its entry, the resources it holds, its index
        entries. Returns the entry (None: it had none), so that `bridge.forget`, the one caller,
        can undo what lives outside (its sweep membership, the resources gauge)."""
        with self._lock:
            for index in self._indexes.values():
                index.discard(uid)
            gone = self._objects.pop(uid, None)
            if gone is not None:
                for key in gone.held:
                    if self._holders.get(key) == uid:
                        del self._holders[key]
            return gone

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._objects))

    # ----- holdings

    @staticmethod
    def _key(kind: str, ref: Mapping[str, str], where: tuple[str, str]) -> HoldKey:
        return kind, where, tuple(sorted(ref.items()))

    def hold(self, kind: str, ref: Mapping[str, str], uid: str, where: tuple[str, str]) -> None:
        """Record that `uid` holds this AWS resource (the first holder keeps it).

        An untagged resource found by its natural key after a recorded intent is taken as our own
        interrupted create (a library item has neither tags nor a client token). Two objects asking
        for the same natural key at once both find the one item the first created: without this
        record the second would take it too, and deleting either would delete the other's item."""
        key = self._key(kind, ref, where)
        entry = self.of(uid)
        with self._lock:
            self._holders.setdefault(key, uid)
            entry.held.add(key)

    def holder(self, kind: str, ref: Mapping[str, str], where: tuple[str, str]) -> str | None:
        return self._holders.get(self._key(kind, ref, where))

    def holdings(self) -> int:
        """How many AWS resources are recorded as held (for tests: nothing left behind)."""
        return len(self._holders)

    # ----- indexes

    def index(self, name: str) -> Index:
        """The index of this name, made on first use."""
        with self._lock:
            found = self._indexes.get(name)
            if found is None:
                found = self._indexes[name] = Index()
            return found

    def indexed(self) -> int:
        """How many (index, object) entries the indexes hold (for tests: nothing left behind)."""
        return sum(len(index) for index in self._indexes.values())


class Index:
    """Which objects name which key (a ConfigMap they refer to, the namespace they live in): key →
    their names, kept per object (by uid) from its watch events (handlers.py `index`), part of the
    object's memory (`Memory.index`; `Memory.forget` discards its entries).

    Ours rather than a kopf index: kopf holds every handler back until each listed object is indexed,
    and it tracks that with one toggle per object whose every change wakes every waiting object —
    quadratic in the objects at startup (53 s before the watches at 2,000 objects). An object not yet
    seen here has not had its first cycle either, and that cycle reads the current ConfigMap and
    namespace binding anyway."""

    def __init__(self) -> None:
        self._by_uid: dict[str, dict[Hashable, str]] = {}
        self._by_key: dict[Hashable, dict[str, str]] = {}

    def replace(self, uid: str, entries: Mapping[Any, str]) -> None:
        """The object's entries now (an empty mapping: none)."""
        old = self._by_uid.get(uid)
        if old == entries:
            return
        self.discard(uid)
        if entries:
            self._by_uid[uid] = dict(entries)
            for key, value in entries.items():
                self._by_key.setdefault(key, {})[uid] = value

    def discard(self, uid: str) -> None:
        """The object is gone (`Memory.forget`)."""
        for key in self._by_uid.pop(uid, {}):
            holders = self._by_key.get(key)
            if holders is not None:
                holders.pop(uid, None)
                if not holders:
                    del self._by_key[key]

    def get(self, key: Hashable) -> list[str]:
        """The names of the objects that name this key (sorted; none: an empty list)."""
        return sorted(set(self._by_key.get(key, {}).values()))

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_uid)
