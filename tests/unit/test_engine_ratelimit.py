"""The adaptive token bucket, on a fake clock: bursts, the decrease on a throttle, Retry-After pauses,
growth only under demand, and — against a simulated AWS token bucket — the rate it learns in both
directions from the default 10/s at quotas from 1/s to 100/s, with under 1 % of calls throttled."""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from dataclasses import dataclass

import pytest

from q_operator.engine.ratelimit import BETA, MIN_RATE, RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# ----- a simulated AWS quota and a client that always has calls to make


class AwsQuota:
    """AWS's side, as the stand-in has it: `rate` calls per second, a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(1.0, rate)
        self.at = 0.0

    def admit(self, now: float) -> bool:
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Run:
    calls: int = 0
    throttled: int = 0
    accepted: int = 0
    seconds: float = 0.0

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.calls

    def utilisation(self, quota: float) -> float:
        return self.accepted / (quota * self.seconds)


def simulate(
    quotas: list[tuple[float, float]],
    start_rate: float = 10.0,
    ceiling: float | None = None,
    demand: float | None = None,
    latency: float = 0.05,
    bucket: TokenBucket | None = None,
    rates: list[float] | None = None,
) -> tuple[Run, TokenBucket]:
    """Drive a bucket as the operator's worker threads do: calls go when `try_take` allows (a caller
    that waits asks again), each is answered `latency` later (so several are in flight at high rates),
    and the answer is fed back. `quotas` is [(until second, AWS quota)]; `demand` None is unlimited;
    `rates` collects the bucket's rate at the end of each quota's time."""
    bucket = bucket or TokenBucket(start_rate, None, 0.0, ceiling=ceiling)
    bucket.tokens = min(bucket.tokens, 1.0)  # a new bucket, as RateLimiter makes it
    run = Run()
    now, next_demand = 0.0, 0.0
    answers: list[tuple[float, bool]] = []
    aws = AwsQuota(quotas[0][1])
    for until, quota in quotas:
        aws.rate = quota
        while now < until:
            if demand is not None and now < next_demand:
                now = next_demand
            wait = bucket.try_take(now)
            upto = now + wait + (1e-6 if wait > 0 else 0.0)
            while answers and answers[0][0] <= upto:
                at, ok = heapq.heappop(answers)
                if ok:
                    bucket.succeeded(at)
                else:
                    bucket.throttled(at, None)
            if wait > 0:
                now = upto
                continue
            ok = aws.admit(now + latency / 2)
            run.calls += 1
            run.accepted += ok
            run.throttled += not ok
            heapq.heappush(answers, (now + latency, ok))
            if demand is not None:
                next_demand = now + 1.0 / demand
        run.seconds = until
        if rates is not None:
            rates.append(bucket.rate)
    return run, bucket


@pytest.mark.parametrize("quota", [1, 5, 20, 50, 100])
def test_from_the_default_the_rate_learns_any_quota_with_under_one_percent_throttled(quota: float) -> None:
    """Sustained demand for ten minutes (or 3,000 calls) against AWS's quota, starting from 10/s:
    the quota is used (at least 90 % of it, learning included) and under 1 % of calls are throttled."""
    seconds = max(600.0, 3000.0 / quota)
    run, bucket = simulate([(seconds, quota)])
    assert run.throttled_share < 0.01, f"{run.throttled} of {run.calls} throttled"
    assert run.utilisation(quota) >= 0.9
    assert 0.7 * quota <= bucket.rate <= 1.5 * quota


@pytest.mark.parametrize(
    ("quota", "calls", "within"), [(5, 100, 1.1), (50, 100, 1.1), (20, 1000, 1.1), (50, 1000, 1.15)]
)
def test_a_queue_of_calls_drains_within_a_little_of_what_the_quota_allows(
    quota: float, calls: int, within: float
) -> None:
    """The bench's case in small: N creates queued at once, from the default rate (at 50/s, 100 of
    them leave slow start no time: the rate must reach the quota within a second or so)."""
    run, _ = simulate([(calls / quota * within, quota)])
    assert run.accepted >= calls


def test_no_ceiling_unless_set_and_the_ceiling_is_kept() -> None:
    """At a quota of 100/s the default 10/s is only where the rate starts; a ceiling caps it."""
    _, free = simulate([(60.0, 100.0)])
    assert free.rate > 50
    run, capped = simulate([(60.0, 100.0)], ceiling=15.0)
    assert capped.rate <= 15.0
    assert run.throttled == 0


def test_the_rate_does_not_grow_past_what_the_callers_ask_for() -> None:
    """Two calls a second against a quota of 100/s: nothing learned that was never tested."""
    _, bucket = simulate([(120.0, 100.0)], demand=2.0)
    assert bucket.rate == 10.0


def test_a_raised_quota_is_found_and_a_lowered_one_followed() -> None:
    """20/s for two minutes, then 60/s, then 10/s: the rate follows both ways, few throttles."""
    rates: list[float] = []
    run, _ = simulate([(120.0, 20.0), (300.0, 60.0), (420.0, 10.0)], rates=rates)
    assert 15.0 <= rates[0] <= 25.0
    assert rates[1] >= 45.0
    assert 7.0 <= rates[2] <= 13.0
    assert run.throttled_share < 0.01


def converge(
    objects: int,
    quotas: dict[str, float],
    start_rate: float = 10.0,
    seed: int = 0,
    latency: tuple[float, float] = (0.05, 0.3),
) -> tuple[dict[str, int], dict[str, int], float]:
    """The bench's short run in small: `objects` creates queued at once; each created object is read
    (a Get, then a ListTags) one, three and five and a half seconds later, as the operator polls a
    build. One bucket per operation, each against its own AWS quota; a waiting call asks again
    (first come, first served per operation); answers come `latency` (from, to) seconds later; a
    throttled call is resent at once (paced by its bucket). Returns calls and throttles by
    operation, and when the last object's last read went through."""
    rnd = random.Random(seed)
    aws = {op: AwsQuota(rate) for op, rate in quotas.items()}
    buckets: dict[str, TokenBucket] = {}
    queues: dict[str, deque[int]] = {op: deque() for op in quotas}
    asking: dict[str, bool] = dict.fromkeys(quotas, False)
    calls: Counter[str] = Counter()
    throttled: Counter[str] = Counter()
    events: list[tuple[float, int, str, str, int, bool]] = []
    order = itertools.count()
    last = 0.0

    def at(when: float, what: str, op: str, obj: int = 0, ok: bool = True) -> None:
        heapq.heappush(events, (when, next(order), what, op, obj, ok))

    for obj in range(objects):
        at(rnd.uniform(0.0, 0.3), "want", "Create", obj)
    while events:
        now, _, what, op, obj, ok = heapq.heappop(events)
        if what == "want":
            queues[op].append(obj)
            if asking[op]:
                continue
        elif what == "answer":
            if op not in buckets:
                continue
            if not ok:
                buckets[op].throttled(now, None)
                queues[op].appendleft(obj)
            else:
                buckets[op].succeeded(now)
                last = max(last, now)
                if op == "Create":
                    for delay in (1.0, 3.0, 5.5):
                        at(now + delay, "want", "Get", obj)
                elif op == "Get":
                    at(now, "want", "ListTags", obj)
            if asking[op]:
                continue
        asking[op] = False
        if op not in buckets:
            buckets[op] = TokenBucket(start_rate, None, now)
            buckets[op].tokens = 1.0  # a new bucket, as RateLimiter makes it
        while queues[op]:
            wait = buckets[op].try_take(now)
            if wait > 0:
                asking[op] = True
                at(now + wait + 1e-6, "ask", op)
                break
            obj = queues[op].popleft()
            delay = rnd.uniform(*latency)
            accepted = aws[op].admit(now + delay / 2)
            calls[op] += 1
            throttled[op] += not accepted
            at(now + delay, "answer", op, obj, accepted)
    return dict(calls), dict(throttled), last


def test_a_short_run_at_quotas_where_the_rate_starts_stays_under_one_percent_throttled() -> None:
    """100 creates and their reads, the creates' quota equal to where the rate starts (10/s), the
    reads' twice that, answers 50-300 ms late (a loaded machine), six runs: each operation finds its
    limit once, at the cost of a call or two, and the creates still go at the quota (each run done
    within 10 % of 10 s of creates plus the last reads)."""
    calls, throttled = 0, 0
    for seed in range(6):
        by_op, throttled_by_op, last = converge(
            100, {"Create": 10.0, "Get": 20.0, "ListTags": 20.0}, seed=seed
        )
        calls += sum(by_op.values())
        throttled += sum(throttled_by_op.values())
        assert last <= 1.1 * (100 / 10.0 + 5.5 + 0.3)
    assert throttled / calls < 0.01, f"{throttled} of {calls}"


# ----- the bucket's rules, one at a time


def test_burst_goes_at_once_then_calls_are_spaced_by_the_rate() -> None:
    """A full bucket lets `burst` calls through; after that one call per 1/rate seconds."""
    bucket = TokenBucket(10, 5, now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(8)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert [round(w, 3) for w in waits[5:]] == [0.1, 0.2, 0.3]


def _accepted(bucket: TokenBucket, start: float, seconds: float, rate: float) -> float:
    """AWS accepts `rate` calls per second from `start` for `seconds`; returns the end time."""
    now = start
    for _ in range(int(seconds * rate)):
        now += 1.0 / rate
        bucket.succeeded(now)
    return now


def test_a_throttle_drops_to_beta_of_what_aws_let_through_and_pauses_for_retry_after() -> None:
    """Multiplicative decrease from the measured limit (never above the rate in use). AWS's burst
    is not taken for its rate: calls sent at 20/s against a quota of 10/s all go through for a second
    (its bucket holds one second's worth), and the limit measured is 10/s, not 20."""
    bucket = TokenBucket(20, 20, now=0.0)
    aws = AwsQuota(10.0)
    now = 0.0
    while aws.admit(now):
        bucket.succeeded(now)
        now += 0.05
    assert now > 0.9  # AWS's burst let twice its rate through
    bucket.throttled(now, retry_after=3.0)
    assert bucket.limit == pytest.approx(10.0, rel=0.05)
    assert bucket.rate == pytest.approx(BETA * 10.0, rel=0.05)
    assert bucket.reserve(now) >= 3.0
    # Tokens were drained and do not accrue during the pause: no burst right after it.
    assert sum(1 for _ in range(20) if bucket.reserve(now + 3.5) == 0) <= 1 + 0.5 * bucket.rate


def test_a_throttle_while_calls_went_at_the_quota_is_not_taken_for_a_lower_one() -> None:
    """Calls at AWS's rate for the whole window (its bucket empty all along): the limit measured is
    within a twentieth of it (the window is long against the one second of burst)."""
    bucket = TokenBucket(10, None, now=0.0)
    now = _accepted(bucket, 0.0, 30.0, 10.0)
    bucket.throttled(now, retry_after=None)
    assert bucket.limit is not None and 9.5 <= bucket.limit <= 10.0


def test_a_burst_of_throttles_decreases_only_once() -> None:
    """Sixteen calls in flight all throttled at once must not collapse the rate to the floor."""
    bucket = TokenBucket(10, 10, now=0.0)
    for _ in range(16):
        bucket.throttled(0.01, retry_after=None)
    assert bucket.rate == pytest.approx(5.0)  # no call measured: halved, and no limit learned
    assert bucket.limit is None


def test_after_a_minute_of_aws_throttling_everything_the_rate_is_back_within_seconds() -> None:
    """An outage or a throttling storm (every call refused for a minute) says nothing about the quota:
    the rate halves to the floor, and once calls pass again it grows back as from the start — not
    over hundreds of calls at the floor's pace, which kept a whole operator waiting for minutes."""
    rates: list[float] = []
    start = 10.0
    simulate([(60.0, 0.0), (70.0, start)], demand=start, rates=rates)  # ten seconds after it ends
    assert rates[0] == MIN_RATE
    assert rates[1] >= 0.8 * start, rates


def test_a_second_throttle_soon_after_is_measured_from_the_first() -> None:
    """AWS's own burst inflates the first measurement; a repeat within seconds corrects it."""
    bucket = TokenBucket(20, 20, now=0.0)
    now = _accepted(bucket, 0.0, 1.0, 18.0)
    bucket.throttled(now, retry_after=1.0)
    now = _accepted(bucket, now + 1.0, 1.0, 9.0)
    bucket.throttled(now, retry_after=1.0)
    assert bucket.limit is not None and bucket.limit < 10.5


def test_rate_never_falls_below_the_floor() -> None:
    bucket = TokenBucket(10, 10, now=0.0, min_rate=0.2)
    for step in range(40):
        bucket.throttled(step * 10.0, retry_after=None)
    assert bucket.rate == 0.2


def test_callers_queued_during_a_pause_are_spaced_after_it_not_let_go_at_once() -> None:
    """A burst of resends after Retry-After would be throttled again: they leave one token apart."""
    bucket = TokenBucket(10, 10, now=0.0)
    bucket.throttled(0.0, retry_after=1.0)  # to 4/s (no calls measured: half of 10, times BETA)
    waits = [bucket.reserve(0.1) for _ in range(4)]
    assert waits[0] >= 0.9
    gap = round(1.0 / bucket.rate, 3)
    assert [round(b - a, 3) for a, b in itertools.pairwise(waits)] == [gap, gap, gap]


# ----- the limiter around the buckets


def test_limiter_sleeps_the_caller_and_keys_buckets_apart() -> None:
    """acquire blocks only the throttled operation's bucket; other operations go at once."""
    clock = Clock()
    limiter = RateLimiter(2, burst=1, clock=clock, sleep=clock.sleep)
    create = ("qbusiness", "us-east-1", "CreatePlugin")
    get = ("qbusiness", "us-east-1", "GetPlugin")
    assert limiter.acquire(create) == 0
    assert limiter.acquire(create) == 0.5
    limiter.throttled(create, 4.0)
    assert limiter.acquire(create) >= 4.0
    assert limiter.acquire(get) == 0
    assert limiter.rate(create) < 2 and limiter.rate(get) == 2


def test_a_new_bucket_starts_with_one_token_and_fills_over_a_second() -> None:
    """Slow start: no full burst at an operation whose AWS limit is not known yet."""
    now = [0.0]
    limiter = RateLimiter(20, burst=20, clock=lambda: now[0], sleep=lambda s: None)
    key = ("qbusiness", "us-east-1", "CreatePlugin")
    assert limiter.try_take(key) == 0.0
    assert limiter.try_take(key) > 0
    now[0] = 1.0
    assert sum(1 for _ in range(30) if limiter.try_take(key) == 0.0) == 20


def test_calls_over_a_minute_stay_within_the_rate_without_answers() -> None:
    """Calls that get no answer teach nothing: 60 s hold at most burst + rate x 60."""
    clock = Clock()
    limiter = RateLimiter(5, burst=5, clock=clock, sleep=clock.sleep)
    start, calls = clock.now, 0
    while clock.now - start < 60:
        limiter.acquire(("qbusiness", "eu-west-1", "GetPlugin"))
        calls += 1
    assert calls <= 5 + 5 * 60 + 1
