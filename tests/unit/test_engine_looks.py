"""Looks by natural key asked at the same time share one adapter call (engine/looks.py), and every
look is answered by a call that began after it was asked: as conclusive as a look of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from q_operator.engine import looks
from q_operator.engine.identity import Role
from q_operator.kinds.base import Found, KindInfo, Owner
from tests.unit.engine_fakes import thing_kind

LOGGER = logging.LoggerAdapter(logging.getLogger("test"), {})
OWNER = Owner(uid="u", namespace="ns", name="n")


class Spec(BaseModel):
    name: str


class Library:
    """An adapter with `find_many` whose listing can be held open, recording what each call saw."""

    def __init__(self) -> None:
        self.items: set[str] = set()
        self.calls: list[list[str]] = []
        self.hold: asyncio.Event | None = None

    def find(self, spec: Spec, owner: Owner) -> Found | None:
        raise AssertionError("find_many is used when the adapter has one")

    def find_many(self, specs: Sequence[Spec], owners: Sequence[Owner]) -> list[Found | Exception | None]:
        self.calls.append([s.name for s in specs])
        return [
            ValueError(s.name)
            if s.name.startswith("bad")
            else Found({"thingId": s.name}, None, None)
            if s.name in self.items
            else None
            for s in specs
        ]


class Caller:
    """An AwsCaller running the verb at once, in the loop, after an optional hold (a call in flight)."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.started = 0

    async def call(
        self,
        kind: KindInfo[Any, Any],
        region: str | None,
        step: str,
        fn: Callable[[Any], Any],
        logger: logging.LoggerAdapter[logging.Logger],
        role: Role | None = None,
    ) -> Any:
        self.started += 1
        snapshot = set(self.library.items)  # the listing begins now ...
        if self.library.hold is not None:
            await self.library.hold.wait()
        live, self.library.items = self.library.items, snapshot
        try:
            return fn(self.library)  # ... and shows what existed when it began
        finally:
            self.library.items = live

    async def account(self, role: Role | None) -> str | None:
        return None


def _find(caller: Caller, name: str) -> asyncio.Task[Found | None]:
    return asyncio.ensure_future(
        looks.find(caller, thing_kind(True), "r", None, LOGGER, Spec(name=name), OWNER)
    )


def test_looks_asked_at_once_share_one_call_and_each_gets_its_own_answer() -> None:
    async def scenario() -> None:
        library = Library()
        library.items = {"a"}
        caller = Caller(library)
        tasks = [_find(caller, name) for name in ("a", "b", "bad")]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert library.calls == [["a", "b", "bad"]]
        assert isinstance(done[0], Found) and done[0].ref == {"thingId": "a"}
        assert done[1] is None
        assert isinstance(done[2], ValueError)

    asyncio.run(scenario())


def test_a_look_asked_during_a_call_waits_for_a_call_that_begins_after_it() -> None:
    """A create that reached AWS just before the look must not be missed by a listing begun earlier."""

    async def scenario() -> None:
        library = Library()
        library.hold = asyncio.Event()
        caller = Caller(library)
        first = _find(caller, "x")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert caller.started == 1  # the first listing is under way without "x"
        library.items.add("x")  # ... when "x" is created and looked for again
        second, third = _find(caller, "x"), _find(caller, "y")
        library.hold.set()
        assert await first is None
        found = await second
        assert found is not None and found.ref == {"thingId": "x"}
        assert await third is None
        assert library.calls == [["x"], ["x", "y"]]

    asyncio.run(scenario())


def test_a_failed_call_is_the_answer_of_every_look_in_it() -> None:
    async def scenario() -> None:
        library = Library()
        caller = Caller(library)

        async def refused(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("throttled")

        caller.call = refused  # type: ignore[method-assign]
        results = await asyncio.gather(_find(caller, "a"), _find(caller, "b"), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)

    asyncio.run(scenario())


@pytest.mark.parametrize("cancelled", [0, 1])
def test_a_look_cancelled_while_waiting_leaves_the_others_their_answer(cancelled: int) -> None:
    async def scenario() -> None:
        library = Library()
        library.hold = asyncio.Event()
        library.items = {"a", "b"}
        caller = Caller(library)
        tasks = [_find(caller, "a"), _find(caller, "b")]
        await asyncio.sleep(0)
        tasks[cancelled].cancel()
        library.hold.set()
        other = await tasks[1 - cancelled]
        assert other is not None
        with pytest.raises(asyncio.CancelledError):
            await tasks[cancelled]

    asyncio.run(scenario())
