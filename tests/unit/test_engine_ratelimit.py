"""The adaptive token bucket, on a fake clock: bursts, steady rate, halving on throttle, Retry-After
pauses, and recovery on success."""

from __future__ import annotations

from q_operator.engine.ratelimit import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_goes_at_once_then_calls_are_spaced_by_the_rate() -> None:
    """A full bucket lets `burst` calls through; after that one call per 1/rate seconds."""
    bucket = TokenBucket(max_rate=10, burst=5, now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(8)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert [round(w, 3) for w in waits[5:]] == [0.1, 0.2, 0.3]


def test_throttle_halves_the_rate_and_pauses_for_retry_after() -> None:
    """AIMD decrease: half the rate, and no call before Retry-After has passed."""
    bucket = TokenBucket(max_rate=10, burst=10, now=0.0)
    bucket.throttled(0.0, retry_after=3.0)
    assert bucket.rate == 5
    assert bucket.reserve(0.0) >= 3.0
    # Tokens were drained and do not accrue during the pause: no burst right after it.
    free = sum(1 for _ in range(10) if bucket.reserve(3.5) == 0)
    assert free <= 2


def test_a_burst_of_throttles_halves_only_once() -> None:
    """Sixteen calls in flight all throttled at once must not collapse the rate to the floor."""
    bucket = TokenBucket(max_rate=10, burst=10, now=0.0)
    for _ in range(16):
        bucket.throttled(0.01, retry_after=None)
    assert bucket.rate == 5


def test_rate_never_falls_below_the_floor() -> None:
    bucket = TokenBucket(max_rate=10, burst=10, now=0.0, min_rate=0.2)
    for step in range(40):
        bucket.throttled(step * 10.0, retry_after=None)
    assert bucket.rate == 0.2


def test_successes_creep_the_rate_back_to_the_maximum() -> None:
    """AIMD increase: a halved rate recovers after enough successes, and never exceeds the max."""
    bucket = TokenBucket(max_rate=10, burst=10, now=0.0)
    bucket.throttled(0.0, retry_after=None)
    for _ in range(10):
        bucket.succeeded(1.0)
    assert 5 < bucket.rate < 10
    for _ in range(100):
        bucket.succeeded(2.0)
    assert bucket.rate == 10


def test_limiter_sleeps_the_caller_and_keys_buckets_apart() -> None:
    """acquire blocks only the throttled operation's bucket; other operations go at once."""
    clock = Clock()
    limiter = RateLimiter(max_rate=2, burst=1, clock=clock, sleep=clock.sleep)
    create = ("qbusiness", "us-east-1", "CreatePlugin")
    get = ("qbusiness", "us-east-1", "GetPlugin")
    assert limiter.acquire(create) == 0
    assert limiter.acquire(create) == 0.5
    limiter.throttled(create, 4.0)
    assert limiter.acquire(create) >= 4.0
    assert limiter.acquire(get) == 0
    assert limiter.rate(create) == 1 and limiter.rate(get) == 2


def test_calls_over_a_minute_stay_within_the_rate() -> None:
    """Sustained demand: the number of calls in 60 s is at most burst + rate * 60."""
    clock = Clock()
    limiter = RateLimiter(max_rate=5, burst=5, clock=clock, sleep=clock.sleep)
    start, calls = clock.now, 0
    while clock.now - start < 60:
        limiter.acquire(("appflow", "eu-west-1", "DescribeConnector"))
        calls += 1
    assert calls <= 5 + 5 * 60 + 1
