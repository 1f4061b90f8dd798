"""Watches: newline-delimited `{type, object}` events from a resourceVersion, with no loss or repeats.

The history is read and the subscription made without an `await` in between (everything runs on one
event loop), so an event is either in the history read or in the queue, never in both or neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from q_operator.emulate.kube import tables
from q_operator.emulate.kube.api import Api
from q_operator.emulate.kube.errors import ApiError, bad_resource_version
from q_operator.emulate.kube.resources import ResourceType
from q_operator.emulate.kube.store import ADDED, DELETED, MODIFIED, Event

JSON = dict[str, Any]


@dataclass(frozen=True)
class WatchParams:
    """What a watch request asked for."""

    namespace: str | None
    match: Callable[[JSON], bool]
    resource_version: str
    timeout: float | None
    bookmarks: bool
    as_table: bool
    bookmark_seconds: float


def seen_as(event: Event, namespace: str | None, match: Callable[[JSON], bool]) -> tuple[str, JSON] | None:
    """The event this watch sees: selectors turn MODIFIED into ADDED/DELETED at their edges."""
    obj = event.obj
    if namespace is not None and obj["metadata"].get("namespace") != namespace:
        return None
    now_matches = match(obj)
    if event.type == MODIFIED and event.old is not None:
        was = match(event.old)
        if was and now_matches:
            return (MODIFIED, obj)
        if now_matches:
            return (ADDED, obj)
        if was:
            return (DELETED, obj)
        return None
    if event.type == DELETED:
        was = match(event.old) if event.old is not None else now_matches
        return (DELETED, obj) if (was or now_matches) else None
    return (event.type, obj) if now_matches else None


def _line(api: Api, rt: ResourceType, kind: str, obj: JSON, as_table: bool, columns: bool = True) -> bytes:
    shown = api.present(rt, obj)
    if as_table:
        shown = tables.table(rt, [shown], shown["metadata"]["resourceVersion"], "Metadata")
        if not columns:
            shown["columnDefinitions"] = None  # only a watch's first Table carries the columns
    return json.dumps({"type": kind, "object": shown}, separators=(",", ":")).encode() + b"\n"


def _bookmark(rt: ResourceType, rv: int) -> bytes:
    obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(rv)}}
    return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"


def _expired(rv: str, oldest: int) -> bytes:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {rv} ({oldest})",
        "reason": "Expired",
        "code": 410,
    }
    return json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"


async def stream_watch(
    request: web.Request, api: Api, rt: ResourceType, params: WatchParams
) -> web.StreamResponse:
    """Serve one watch until its timeout, the client leaving, or the server stopping."""
    store = api.store
    expired = False
    initial: list[tuple[str, JSON]] = []
    if params.resource_version in ("", "0"):
        initial = [(ADDED, obj) for obj in store.items(rt.key, params.namespace) if params.match(obj)]
    else:
        try:
            since = int(params.resource_version)
        except ValueError:
            # The watch cache fails to parse it deep inside: a reasonless 500, as a real server answers.
            raise ApiError(500, "", bad_resource_version(params.resource_version)) from None
        events = store.events_since(rt.key, since)
        if events is None:
            expired = True
        else:
            for event in events:
                change = seen_as(event, params.namespace, params.match)
                if change is not None:
                    initial.append(change)
    watcher = store.subscribe(rt.key)  # no await since reading the history: nothing lost, nothing twice
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if expired:
            await response.write(_expired(params.resource_version, store.compacted + 1))
            return response
        first = True
        for kind, obj in initial:
            await response.write(_line(api, rt, kind, obj, params.as_table, first))
            first = False
        deadline = None if params.timeout is None else time.monotonic() + params.timeout
        while True:
            wait = params.bookmark_seconds if params.bookmarks else None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = remaining if wait is None else min(wait, remaining)
            try:
                queued = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if params.bookmarks and (deadline is None or time.monotonic() < deadline):
                    # The queue is empty: every event up to the current resourceVersion was sent.
                    await response.write(_bookmark(rt, store.rv))
                continue
            # Drain what is queued into one write: fewer syscalls when events come in bursts.
            lines = []
            while queued is not None:
                change = seen_as(queued, params.namespace, params.match)
                if change is not None and params.as_table:
                    lines.append(_line(api, rt, change[0], change[1], True, first))
                    first = False
                elif change is not None:
                    cache_key = (change[0], rt.api_version)
                    line = queued.lines.get(cache_key)
                    if line is None:
                        line = queued.lines[cache_key] = _line(api, rt, change[0], change[1], False)
                    lines.append(line)
                if watcher.queue.empty():
                    break
                queued = watcher.queue.get_nowait()
            if lines:
                await response.write(b"".join(lines))
            if queued is None:
                break
    except ConnectionResetError:
        pass  # the client went away; a cancelled handler (handler_cancellation) just propagates
    finally:
        store.unsubscribe(watcher)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
