"""What waiting out lagging reads may cost issue 21's reliability rows (consistency.py), derived from what
drives it — the engine's poll schedule, the consistency bound B and the stand-in's read lag L — and what it
did cost, counted from the request log.

After a write the engine looks again on its poll schedule (engine/cycle.py `poll_delay`, used by
engine/consistency.py `wait` and by the delete step): each wait is `poll_factor` of the time since the
write, at least `poll_min` and at most `poll_max`. With the defaults (1 s, 0.5, 15 s) the looks come
1, 2, 3, 4.5, 6.75, 10.1, 15.2, 22.8, 34.2 … s after the write. The stand-in hides each write from reads
for a draw V uniform in [0, L]. A waiting look is one that finds the write not shown yet (the stand-in
marks it `lagged`), or one that finds a deleted resource gone while B has not passed since it was created
(the engine believes "gone" only then: until then the resource may only be too new to show). A look at a
resource that reads hide costs one call (a Get or Describe answering NotFound); one at a resource shown in
its old state costs the kind's `observe_calls` (the Get and its ListTagsForResource).

Per write, on average, with L = 5 s (the looks before 5 s are those at 1, 2, 3 and 4.5 s):

- update: a look while hidden has probability P(V > t) = 1 - t/L: 0.8 + 0.6 + 0.4 + 0.1 = 1.9 looks,
  each `observe_calls`;
- create: the same 1.9 looks, at NotFound (one call each); and where the create makes a second write
  (a connector's TagResource, writes.FOLLOW_UPS), looks while the resource shows and the later write does
  not, P(V1 <= t < max(V1, V2)) = t/L - (t/L)²: 0.16 + 0.24 + 0.24 + 0.09 = 0.73 looks, each
  `observe_calls`;
- delete: one look at once (0 s) and those at 1, 2, 3 and 4.5 s while the resource still shows:
  1 + 1.9 = 2.9 looks, each `observe_calls`; then, until B (and the engine's 1 s of slack) has passed
  since the resource was created — R seconds after the delete — every look on the schedule after the draw
  is a NotFound, one call: for R = 17 s the looks at 6.75, 10.1 and 15.2 s for certain, and those at
  1 to 4.5 s when the draw was shorter (0.2 + 0.4 + 0.6 + 0.9): 5.1 looks.

A row's allowance is the sum of these means over its writes plus three standard deviations of that sum
(the draws are independent, so the variances add). Means and variances are taken over an even grid of
the draws rather than in closed form, so a kind with another follow-up write needs no new arithmetic.
The actual looks come no sooner than these (the schedule counts from the Ready condition's last
transition, stored in whole seconds, and a write that waited for the rate limiter starts late in it), so
the row spends less than the mean when nothing is wrong, and a regression that doubles the looks spends
more than the allowance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from q_operator.engine.contract import Timing
from tests.kinds import TEST_KINDS, facts_of
from tests.reliability.writes import FOLLOW_UPS, SERVICES, is_write

#: Points per lag draw in the grid the means and variances are taken over.
GRID = 50
#: Standard deviations above the mean that the allowance lies.
SIGMAS = 3.0
#: Each kind's List: a drift sweep or a search for a create, not a look at one resource: not counted.
LISTS = frozenset(facts.list_op for facts in TEST_KINDS)
NOT_FOUND = "ResourceNotFoundException"


def look_times(timing: Timing, until: float) -> list[float]:
    """The engine's looks after a write, in seconds after it, that come before `until`."""
    times: list[float] = []
    at = 0.0
    while True:
        at += min(timing.poll_max, max(timing.poll_min, at * timing.poll_factor))
        if at >= until:
            return times
        times.append(at)


@dataclass(frozen=True)
class Spread:
    """Mean and variance of a count of calls; those of independent counts add up."""

    mean: float = 0.0
    variance: float = 0.0

    def __add__(self, other: Spread) -> Spread:
        return Spread(self.mean + other.mean, self.variance + other.variance)

    @property
    def deviation(self) -> float:
        return math.sqrt(self.variance)

    def allowance(self) -> int:
        return math.ceil(self.mean + SIGMAS * self.deviation)


def spread(cost: Callable[[tuple[float, ...]], float], draws: int, lag: float) -> Spread:
    """Mean and variance of `cost` over `draws` independent lag draws, each uniform in [0, lag]."""
    points = [lag * (i + 0.5) / GRID for i in range(GRID)] if lag > 0 else [0.0]
    values = [cost(drawn) for drawn in itertools.product(points, repeat=draws)]
    mean = sum(values) / len(values)
    return Spread(mean, sum((v - mean) ** 2 for v in values) / len(values))


class Waiting:
    """The waiting calls a row's writes may cost, added up write by write."""

    def __init__(self, timing: Timing, lag: float) -> None:
        self.timing = timing
        self.lag = lag
        self.total = Spread()
        self.writes = {"create": 0, "update": 0, "delete": 0}
        self._looks = look_times(timing, lag)

    def create(self, kind: str) -> None:
        """A create: NotFound while its resource is hidden, the old state while a follow-up write is."""
        observe = facts_of(kind).observe_calls

        def cost(drawn: tuple[float, ...]) -> float:
            made, done = drawn[0], max(drawn)
            return sum(1 if at < made else observe for at in self._looks if at < done)

        self._add("create", spread(cost, 1 + len(FOLLOW_UPS[kind]), self.lag))

    def update(self, kind: str) -> None:
        """An update: the old state while it is hidden."""
        observe = facts_of(kind).observe_calls
        self._add("update", spread(lambda d: observe * sum(at < d[0] for at in self._looks), 1, self.lag))

    def delete(self, kind: str, doubted: float) -> None:
        """A delete, `doubted` seconds before the bound has passed since its resource was created: the
        resource still shown while the delete is hidden, then NotFound until then."""
        observe = facts_of(kind).observe_calls
        looks = [0.0, *look_times(self.timing, max(self.lag, doubted))]

        def cost(drawn: tuple[float, ...]) -> float:
            shown = drawn[0]
            return sum(observe if at < shown else 1 for at in looks if at < max(shown, doubted))

        self._add("delete", spread(cost, 1, self.lag))

    def _add(self, write: str, cost: Spread) -> None:
        self.writes[write] += 1
        self.total += cost

    def summary(self) -> str:
        writes = ", ".join(f"{n} {w}s" for w, n in self.writes.items())
        return (
            f"mean {self.total.mean:.0f} + {SIGMAS:g} sd {SIGMAS * self.total.deviation:.0f} for {writes} "
            f"(lag {self.lag:g} s, bound {self.timing.consistency:g} s)"
        )


@dataclass(frozen=True)
class Spent:
    """Waiting calls in a request log."""

    lagged: int
    """Reads of one resource answered from before its latest write."""
    doubted: int
    """NotFound answers to reads of deleted resources, beyond the one per resource that let it go."""

    @property
    def total(self) -> int:
        return self.lagged + self.doubted


def spent(log: Iterable[Mapping[str, Any]], deleted: int) -> Spent:
    """The waiting calls in `log` (the operator's calls) of a row that deleted `deleted` resources.

    Every deleted resource is read NotFound once to be let go; any other NotFound of a resource not
    hidden by lag was a look while "gone" was not believed yet (nothing else in these rows deletes). Lists
    are left out: they serve many objects at once (drift sweeps, searches for a create)."""
    services = set(SERVICES.values())
    lagged = gone = 0
    for entry in log:
        operation = str(entry.get("operation"))
        if entry.get("service") not in services or is_write(operation) or operation in LISTS:
            continue
        if entry.get("lagged"):
            lagged += 1
        elif entry.get("error") == NOT_FOUND:
            gone += 1
    return Spent(lagged, max(0, gone - deleted))
