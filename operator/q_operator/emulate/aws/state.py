"""What the stand-in remembers: per account and region, each service's backend and the idempotency
tokens; and the call log. Resources live in `Table`s, which also model eventually consistent reads.

Everything is mutated only on the server's event loop, so no locks. Time-driven changes (a plugin
build ending) are not timers: a table's `settle` function applies them lazily whenever a resource
is read, which keeps the server cheap and deterministic.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

MAX_LOGGED_REQUESTS = 200_000
"""The call log keeps the newest this many calls, so long runs do not grow without bound."""

TOKEN_TTL_SECONDS = 8 * 3600.0
"""How long a clientToken is remembered (AppFlow documents 8 hours; used for every service)."""

V = TypeVar("V")


@dataclass
class View:
    """One call's window on the tables: its time, a lag draw per write, and what its reads lagged."""

    now: float
    draw_lag: Callable[[], float] = lambda: 0.0
    """Seconds until a write made now becomes visible to reads (0 when read lag is off)."""
    lagged: int = 0
    """Resources this call's reads answered from an older state than the latest write (or hid)."""
    visible_after: float = 0.0
    """Seconds until this call's writes are visible to every read."""


class Table(Generic[V]):
    """Resources of one type by id: the primary copy that writes act on, and what reads see.

    Writes (`create`, `edit`, `delete`) act on the primary at once, as AWS's primary does. With
    read lag, each write also records the resource's state from just before it (None: absent) and
    when the write becomes visible; `read`/`read_all` answer the state before the oldest write not
    visible yet, else the primary. Reads of one resource thus trail its writes by up to the lag
    and never go back in time (a later write never becomes visible before an earlier one).

    `settle(value, now)` applies time-driven change to a value in place and says whether it still
    exists; it runs on the primary and on old states alike. `group(value)` is the parent a List is
    scoped by (an application, an instance); listing and counting a group cost its size only.
    """

    PRUNE_EVERY = 1000

    def __init__(
        self,
        settle: Callable[[V, float], bool] | None = None,
        group: Callable[[V], Hashable] | None = None,
    ) -> None:
        self._settle = settle
        self._group_of = group or (lambda _value: None)
        self._primary: dict[str, V] = {}
        self._groups: dict[Hashable, dict[str, None]] = {}
        self._seq: dict[str, int] = {}
        self._next_seq = 0
        self._pending: dict[str, list[tuple[float, V | None]]] = {}
        """id -> [(when the write becomes visible, the state before it)], oldest first."""
        self._pending_groups: dict[Hashable, set[str]] = {}
        self._pending_group_of: dict[str, Hashable] = {}
        self._writes = 0

    # -- the primary: what writes and server-side checks (uniqueness, quotas) see ----------------

    def get(self, key: str, now: float) -> V | None:
        value = self._primary.get(key)
        if value is not None and self._settle is not None and not self._settle(value, now):
            self._drop(key)
            return None
        return value

    def values(self, now: float, group: Hashable = None, *, every: bool = False) -> list[V]:
        """Existing resources of a group (or `every` one), in creation order."""
        keys = list(self._primary) if every else list(self._groups.get(group, ()))
        return [v for v in (self.get(k, now) for k in keys) if v is not None]

    def count(self, now: float, group: Hashable = None) -> int:
        return len(self.values(now, group))

    def create(self, key: str, value: V, view: View) -> None:
        self._before_write(key, None, self._group_of(value), view)
        self._primary[key] = value
        self._groups.setdefault(self._group_of(value), {})[key] = None
        self._next_seq += 1
        self._seq[key] = self._next_seq

    def edit(self, key: str, view: View) -> V:
        """The primary value to change in place (KeyError if absent); its old state is kept for reads."""
        value = self.get(key, view.now)
        if value is None:
            raise KeyError(key)
        self._before_write(key, value, self._group_of(value), view)
        return value

    def delete(self, key: str, view: View) -> None:
        value = self.get(key, view.now)
        if value is None:
            return
        self._before_write(key, value, self._group_of(value), view)
        self._drop(key)

    def _drop(self, key: str) -> None:
        value = self._primary.pop(key)
        group = self._group_of(value)
        members = self._groups.get(group)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self._groups[group]
        if key not in self._pending:
            self._seq.pop(key, None)

    def _before_write(self, key: str, current: V | None, group: Hashable, view: View) -> None:
        pending = self._pending.get(key)
        delay = view.draw_lag()
        if delay <= 0 and pending is None:
            return
        visible = view.now + max(0.0, delay)
        if pending:
            visible = max(visible, pending[-1][0])
        else:
            pending = self._pending[key] = []
        view.visible_after = max(view.visible_after, visible - view.now)
        pending.append((visible, copy.deepcopy(current)))
        self._pending_groups.setdefault(group, set()).add(key)
        self._pending_group_of[key] = group
        self._writes += 1
        if self._writes % self.PRUNE_EVERY == 0:
            self._prune(view.now)

    # -- reads: Get, List, Describe ----------------------------------------------------------------

    def read(self, key: str, view: View) -> V | None:
        """The resource as a read sees it now (None: not found)."""
        pending = self._pending.get(key)
        if pending is not None:
            for visible, before in pending:
                if visible > view.now:
                    view.lagged += 1
                    if before is not None and self._settle is not None and not self._settle(before, view.now):
                        return None
                    return before
            self._forget_pending(key)
        return self.get(key, view.now)

    def read_all(self, view: View, group: Hashable = None) -> list[tuple[int, V]]:
        """Every resource of a group as reads see it now, with its position, in creation order."""
        keys = dict.fromkeys(self._groups.get(group, ()))
        for key in list(self._pending_groups.get(group, ())):
            keys[key] = None
        found = [(self._seq[k], v) for k in keys if (v := self.read(k, view)) is not None]
        found.sort(key=lambda pair: pair[0])
        return found

    def _forget_pending(self, key: str) -> None:
        del self._pending[key]
        group = self._pending_group_of.pop(key)
        keys = self._pending_groups[group]
        keys.discard(key)
        if not keys:
            del self._pending_groups[group]
        if key not in self._primary:
            self._seq.pop(key, None)

    def _prune(self, now: float) -> None:
        """Forget old states every write of which is visible (a read would do it, if one came)."""
        for key in [k for k, p in self._pending.items() if p[-1][0] <= now]:
            self._forget_pending(key)

    def pending(self) -> int:
        """Resources whose latest write is not visible to every read yet (or was not read since)."""
        return len(self._pending)


@dataclass
class Remembered:
    """An idempotent call's first answer: the input's fingerprint and the output it got."""

    fingerprint: str
    output: dict[str, Any]
    expires: float


@dataclass
class Scope:
    """Everything of one account in one region: each service's backend, made on first use."""

    backends: dict[str, Any] = field(default_factory=dict)
    tokens: dict[tuple[str, str, str], Remembered] = field(default_factory=dict)
    """(service, operation, clientToken) -> first answer."""


def fingerprint(params: dict[str, Any], token_member: str) -> str:
    """A stable digest of an input without its token: equal inputs, equal digests."""
    rest = {k: v for k, v in params.items() if k != token_member}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    """All scopes plus the request log."""

    def __init__(self) -> None:
        self.scopes: dict[tuple[str, str], Scope] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)

    def scope(self, account: str, region: str) -> Scope:
        key = (account, region)
        found = self.scopes.get(key)
        if found is None:
            found = self.scopes[key] = Scope()
        return found

    def clear(self) -> None:
        self.scopes.clear()
        self.requests.clear()
