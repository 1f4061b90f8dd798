"""Reliability rows for eventual consistency and lost answers (issue 21): the AWS stand-in's reads trail
its writes by up to 5 s (`read_lag`), a fifth of its writes act and lose their answer
(`lost_answer_rate`), both at once with 30 % of all calls throttled on top; with kill -9 at the create's
worst moments. Where answers are lost, the first two creates, updates and deletes of every kind lose
theirs for certain, one each way (`lose_answers`): the connection reset, and the answer held past the
read timeout. Each row also counts the writes the desired state did not call for (writes.py): it must
be 0, like the duplicates, orphans and stuck objects; and the calls spent waiting out lagging reads,
against an allowance derived from the poll schedule, the bound and the lag (waiting.py).

The operator runs with its default consistency bound, 30 s (the sandbox's own default is 1 s, the truth
about a stand-in without read lag, so these rows set it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from q_operator.emulate.aws.config import LOST_ANSWER_KINDS
from q_operator.engine import consistency as engine_consistency
from q_operator.engine.contract import Timing
from q_operator.sandbox import condition
from tests.kinds import changed, manifest
from tests.reliability.harness import KINDS, Result, Run, latency, ref_field
from tests.reliability.waiting import Waiting, spent
from tests.reliability.writes import CHANGE_OP, CREATES, DELETES, SERVICES, Needed, Op, tally

if TYPE_CHECKING:
    from tests.reliability.scenarios import Size

#: The bound the operator assumes in these rows: its default (engine/contract.py Timing.consistency).
BOUND = "30"
READ_LAG = 5.0
LOST_RATE = 0.2
#: A lost answer of the `timeout` kind is held this long; the operator gives up on it after its read
#: timeout (5 s here instead of 30 s, so a row takes minutes, not a quarter of an hour).
LOST_HOLD = 8.0
OPERATOR_ENV = {"Q_OPERATOR_CONSISTENCY_SECONDS": BOUND, "Q_OPERATOR_AWS_READ_TIMEOUT": "5"}
LAG_ARGS = ("--read-lag", str(READ_LAG))
LOST_ARGS = ("--lost-answer-rate", str(LOST_RATE), "--lost-answer-hold", str(LOST_HOLD))
#: The operator's timing in these rows (no poll setting is changed, the bound is): waiting.py derives
#: what waiting out lagging reads may cost from it.
TIMING = Timing(consistency=float(BOUND))
#: The engine's margin on the bound (status times are whole seconds).
SLACK = engine_consistency.SLACK.total_seconds()
#: Which way the first two writes of each step lose their answer, per kind: both ways at every step.
FORCED = {"create": LOST_ANSWER_KINDS, "update": LOST_ANSWER_KINDS[::-1], "delete": LOST_ANSWER_KINDS}


def _create_entry(run: Run, kind: str, since: int) -> Mapping[str, Any] | None:
    """The first successful create of `kind` in the request log after position `since`."""
    service, operation = CREATES[kind]
    for entry in run.requests()[since:]:
        if (entry.get("service"), entry.get("operation")) == (service, operation) and not entry.get("error"):
            return entry
    return None


def _invisible(entry: Mapping[str, Any]) -> bool:
    """Whether the resource a logged write made is still hidden from reads now."""
    return time.time() < float(entry.get("time", 0)) + float(entry.get("visibleAfter", 0))


def _kill_in_window(run: Run, obj: dict[str, Any], window: str) -> bool:
    """Apply `obj` and kill -9 the operator at one of the create's worst moments; whether the kill landed
    there. `sent`: after AWS acted on the create, before its answer came (answers delayed 1.5 s).
    `answered`: at once after AWS answered it. `recorded`: once its ID is in status, while reads still
    cannot see it. The operator is started again at once."""
    kind = str(obj["kind"])
    since = len(run.requests())
    hit = False
    if window == "sent":
        with latency(run, 1500):
            run.apply(obj)
            try:
                run.wait("the create", lambda: _create_entry(run, kind, since), timeout=30, interval=0.02)
                hit = True
            except Exception:
                hit = False
            run.kill_operator()
    else:
        run.apply(obj)
        if window == "answered":
            entry = run.wait("the create", lambda: _create_entry(run, kind, since), timeout=30, interval=0.01)
        else:
            run.wait(
                "the ID in status",
                lambda: ((run.get(obj) or {}).get("status") or {}).get(ref_field(kind)),
                timeout=30,
                interval=0.02,
            )
            entry = _create_entry(run, kind, since)
        hit = entry is not None and _invisible(entry)
        run.kill_operator()
    run.start_operator()
    # Ready before the next window, so that window's create is the only one in flight.
    run.wait(f"{kind} {window} Ready", lambda: condition(run.get(obj) or {}, "Ready", "True"), timeout=120)
    return hit


WINDOWS = ("sent", "answered", "recorded")


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def _lose_for_certain(run: Run, step: str, ops: Mapping[str, Op]) -> None:
    """The first two writes of each kind's `ops` that act lose their answer, one each way (FORCED)."""
    rules = [
        {"operation": f"{service}:{operation}", "kind": way, "count": 1}
        for service, operation in ops.values()
        for way in FORCED[step]
    ]
    run.configure(lose_answers=rules)


def lost_ways(log: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per kind, how many of its writes lost their answer, by way (`reset`, `timeout`)."""
    return {
        kind: Counter(str(e["lost"]) for e in log if e.get("lost") and e.get("service") == SERVICES[kind])
        for kind in KINDS
    }


def _play(
    run: Run,
    size: Size,
    name: str,
    prefix: str,
    faults: str,
    kills: bool,
    setup: Callable[[Run], None],
    lag: float,
    lost: bool,
    throttle: float = 0.0,
) -> Result:
    from tests.reliability.scenarios import calls_bound, minimum_calls, objects  # (they list these rows)

    since = time.monotonic()
    setup(run)

    def phase() -> None:
        """Throttle `throttle` % of all calls while a phase's writes go out (a throttle that lasts the
        whole row only measures the client-side limiter's floor: AIMD cannot tell random 429s from a
        rate limit, so it settles at its minimum rate)."""
        if throttle:
            run.configure(throttle_percent=throttle, throttle_for_seconds=size.throttle_seconds)

    def step(which: str, ops: Mapping[str, Op]) -> None:
        """A phase whose writes are `ops`; where answers are lost, the first two of each kind for certain."""
        phase()
        if lost:
            _lose_for_certain(run, which, ops)

    ns = run.namespace(prefix)
    needed = Needed()
    every: list[dict[str, Any]] = []
    #: when each object was seen Ready: its resource was created (as the engine records it) no later.
    ready_at: dict[tuple[str, str], float] = {}
    hits = 0
    if kills:
        for kind in KINDS:
            for window in WINDOWS:
                phase()
                obj = manifest(kind, f"w-{window}", ns)
                hits += _kill_in_window(run, obj, window)
                ready_at[_key(obj)] = time.time()
                needed.add(kind, created=1)
                every.append(obj)
    bulk = objects(run, ns, "c", size.per_kind)
    step("create", CREATES)
    run.apply_all(bulk)
    run.settle("the creates", size.timeout)
    ready_at.update(dict.fromkeys(map(_key, bulk), time.time()))
    step("update", CHANGE_OP)
    run.apply_all([changed(o) for o in bulk])
    run.settle("the changes", size.timeout)
    doomed = [*bulk[::2], *every]
    step("delete", DELETES)
    deleted_at = time.time()
    run.delete(doomed)
    run.mark()
    for obj in bulk:
        needed.add(str(obj["kind"]), created=1, changed=1)
    for obj in doomed:
        needed.add(str(obj["kind"]), deleted=1)
    row = run.result(name, "", size.timeout)
    every += bulk
    log = run.requests()
    counted = tally(log, needed, KINDS)
    row.unneeded_writes = counted.unneeded
    row.resources = len(every)
    ways = lost_ways(log)
    by_way = sum(ways.values(), Counter[str]())
    lost_count = by_way.total()
    lagged = sum(1 for entry in log if entry.get("lagged"))
    throttled = sum(1 for entry in log if entry.get("error") == "ThrottlingException")
    aimed = len(KINDS) * len(WINDOWS)
    row.faults = faults.format(
        kills=run.kills,
        hits=hits,
        aimed=aimed,
        lost=lost_count,
        reset=by_way["reset"],
        timeout=by_way["timeout"],
        lagged=lagged,
        throttled=throttled,
    )
    # What waiting out lagging reads may cost (waiting.py shows the arithmetic): a create of every
    # object, an update of the bulk ones, and each delete with the time left, when it was asked for,
    # until the bound has passed since the object's resource was created.
    waiting = Waiting(TIMING, lag)
    for obj in every:
        waiting.create(str(obj["kind"]))
    for obj in bulk:
        waiting.update(str(obj["kind"]))
    for obj in doomed:
        waiting.delete(str(obj["kind"]), ready_at[_key(obj)] + TIMING.consistency + SLACK - deleted_at)
    allowance = waiting.total.allowance()
    waited = spent(log, len(doomed))
    minimum = minimum_calls(every) * 2  # created and changed (or deleted) once each
    calls_bound(row, run, minimum, 3, every, since)
    said, generic = row.bound.rsplit(" = ", 1)
    limit = int(generic) + allowance
    row.bound = f"{said} + waiting out lagging reads({allowance}) = {limit}; waiting calls ≤ {allowance}"
    row.bound_held = row.aws_calls <= limit and waited.total <= allowance
    row.notes.append(f"writes: {counted.summary()}")
    row.notes.append(
        f"waiting calls: {waited.total} ({waited.lagged} reads lagged behind a write, {waited.doubted} "
        f"NotFound before the bound let a deletion be believed) of {allowance} allowed: {waiting.summary()}"
    )
    row.notes.append(
        f"{lost_count} answers lost ({by_way['reset']} reset, {by_way['timeout']} held past the read "
        f"timeout), {lagged} reads lagged, {throttled} calls throttled"
    )
    if lost:
        row.notes.append(
            "answers lost by kind: "
            + ", ".join(f"{k} {ways[k]['reset']} reset + {ways[k]['timeout']} timeout" for k in KINDS)
        )
        for kind in KINDS:
            missing = [way for way in LOST_ANSWER_KINDS if not ways[kind][way]]
            if missing:
                row.problems.append(f"no {kind} write lost its answer by {' or '.join(missing)}")
    if kills:
        row.notes.append(f"{hits} of {len(KINDS) * len(WINDOWS)} kills landed in their window")
        if hits < len(KINDS) * len(WINDOWS) - len(KINDS):  # `recorded` can miss when the lag drew ~0 s
            row.problems.append(f"only {hits} kills landed in their window")
    if counted.unneeded:
        row.problems.append(f"unneeded writes: {counted.summary()}")
    if counted.missing:
        row.problems.append(f"needed writes never sent: {counted.summary()}")
    if not lost_count and lost:
        row.problems.append("no answer was lost: the row proved nothing about lost answers")
    return row


def _seed(run: Run, **config: Any) -> None:
    """Seed the stand-in's draws from the run's own generator (`--seed` repeats them)."""
    run.configure(seed=run.rng.randrange(1_000_000), **config)


def read_lag(run: Run, size: Size) -> Result:
    """Reads trail writes by up to 5 s; per kind, kill -9 just after a create is sent, just after it is
    answered and once its ID is recorded but reads cannot see it yet; then objects created, changed and
    half of them deleted, with the window objects."""
    return _play(
        run,
        size,
        "read lag 5 s + kill -9",
        "lag",
        "reads lag ≤ 5 s ({lagged} lagged); {kills} kill -9 ({hits}/{aimed} in the create's windows)",
        kills=True,
        setup=lambda r: _seed(r),
        lag=READ_LAG,
        lost=False,
    )


def lost_answers(run: Run, size: Size) -> Result:
    """A fifth of all writes act and lose their answer (reset, or held past the read timeout), and the
    first two creates, updates and deletes of each kind, one each way."""
    return _play(
        run,
        size,
        "lost answers 20%",
        "lost",
        "20% of writes + 2 per kind and step lose their answer ({lost}: {reset} reset, {timeout} timeout)",
        kills=False,
        setup=lambda r: _seed(r),
        lag=0.0,
        lost=True,
    )


def lagged_lost_throttled(run: Run, size: Size) -> Result:
    """Both at once, with 30 % of all calls throttled while each phase's writes go out (each kill
    window, the creates, the changes, the deletes), and the kill -9 windows."""
    return _play(
        run,
        size,
        "read lag + lost answers + 30% throttled",
        "llt",
        "lag ≤ 5 s ({lagged} lagged), {lost} answers lost ({reset} reset, {timeout} timeout), "
        "{throttled} throttled, {kills} kill -9 ({hits}/{aimed} in window)",
        kills=True,
        setup=lambda r: _seed(r),
        lag=READ_LAG,
        lost=True,
        throttle=30.0,
    )
