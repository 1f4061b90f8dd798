"""Looks by natural key (`find`) shared by the objects that ask at the same time.

A kind whose create has no client token (`KindInfo.find_before_create`: CreateLibraryItem) looks
before every first create, and its only way to look is to list the whole parent (ListLibraryItems has
no appId filter). A thousand creates asked at once would each page the same library: a thousand
List calls competing with the sweeps for the same quota, and the creates waiting behind them.

Here the looks of one kind, region and identity queue up, and one adapter call answers every look
queued when it starts (`Adapter.find_many` when the adapter has one: it lists each parent once;
otherwise `find` for each). A look asked while that call runs waits for the next one, so every
look is answered by a listing that *began after it was asked* — as conclusive as a look of its own,
which the crash window (steps/create.py) relies on. One failure (a throttle, a parent that does not
exist) is the answer of the looks it concerns, each classified as its own.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from q_operator.engine.contract import AwsCaller
from q_operator.engine.identity import Role
from q_operator.kinds.base import Adapter, Found, KindInfo, Owner

#: (kind, region, role): the looks one adapter call can answer
Key = tuple[str, str | None, Role | None]
Answer = Found | BaseException | None


@dataclass
class _Ask:
    spec: BaseModel
    owner: Owner
    answer: asyncio.Future[Found | None]


@dataclass
class _Queue:
    asks: list[_Ask] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


#: per event loop: the queued looks of each key
_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, _Queue]] = weakref.WeakKeyDictionary()


async def find(
    caller: AwsCaller,
    kind: KindInfo[Any, Any],
    region: str | None,
    role: Role | None,
    logger: logging.LoggerAdapter[logging.Logger],
    spec: BaseModel,
    owner: Owner,
) -> Found | None:
    """This spec's resource, looked for by a listing that began after this call; raises what the
    adapter raised for it."""
    loop = asyncio.get_running_loop()
    queue = _queues.setdefault(loop, {}).setdefault((kind.kind, region, role), _Queue())
    ask = _Ask(spec, owner, loop.create_future())
    queue.asks.append(ask)
    if queue.task is None or queue.task.done():
        queue.task = loop.create_task(_answer(queue, caller, kind, region, role, logger), name="looks")
    # Each look has its own future: one cancelled while waiting is skipped, the others get theirs.
    return await ask.answer


async def _answer(
    queue: _Queue,
    caller: AwsCaller,
    kind: KindInfo[Any, Any],
    region: str | None,
    role: Role | None,
    logger: logging.LoggerAdapter[logging.Logger],
) -> None:
    """Answer the queued looks, one adapter call per batch, until none are left."""
    while queue.asks:
        batch, queue.asks = queue.asks, []
        answers = await _ask(batch, caller, kind, region, role, logger)
        for ask, answer in zip(batch, answers, strict=True):
            if ask.answer.done():
                continue
            if isinstance(answer, BaseException):
                ask.answer.set_exception(answer)
            else:
                ask.answer.set_result(answer)


async def _ask(
    batch: Sequence[_Ask],
    caller: AwsCaller,
    kind: KindInfo[Any, Any],
    region: str | None,
    role: Role | None,
    logger: logging.LoggerAdapter[logging.Logger],
) -> Sequence[Answer]:
    """One adapter call for the batch; a failure of the whole call is the answer of every look."""
    specs = [ask.spec for ask in batch]
    owners = [ask.owner for ask in batch]
    try:
        return await caller.call(
            kind, region, "find", lambda adapter: find_each(adapter, specs, owners), logger, role=role
        )
    except Exception as error:  # throttled after the resends, the connection lost ...
        return [error] * len(batch)


def find_each(adapter: Adapter[Any], specs: Sequence[BaseModel], owners: Sequence[Owner]) -> list[Answer]:
    """Each spec's `find`, through the adapter's `find_many` when it has one (one listing per parent)."""
    many = getattr(adapter, "find_many", None)
    if many is not None:
        return list(many(specs, owners))
    answers: list[Answer] = []
    for spec, owner in zip(specs, owners, strict=True):
        try:
            answers.append(adapter.find(spec, owner))
        except Exception as error:
            answers.append(error)
    return answers
