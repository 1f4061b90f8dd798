"""Client-side rate limiting toward AWS: an adaptive token bucket per (service, region, operation,
account).

AWS limits each control-plane operation separately, per account and region, and one adapter verb may
make several calls (GetPlugin, then ListTagsForResource), so the bucket is taken per HTTP call, in
botocore's `before-call` hook inside the worker thread (engine/aws.py), and fed back from `after-call`.
Adaptive, AIMD: on a throttle the rate halves and the bucket pauses for Retry-After; each success
creeps the rate back up. A limiter that learns the rate beats retrying into 429s.

`TokenBucket` is pure (the caller passes the time), so the tests drive it with a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: (service, region, operation, account): AWS's quotas are per account and region. The account is ""
#: for the operator's own identity until it is known.
BucketKey = tuple[str, str, str, str]

#: seconds of accepted calls a throttle is measured against: what AWS let through just before it said no
MEASURE_SECONDS = 4.0
#: after a measured throttle, run at this share of the rate AWS let through
MEASURED_SHARE = 0.9
#: a second throttle this soon after the last decrease means the measurement was too high (AWS's own
#: burst inflates it while its bucket drains): halve as well
REPEAT_SECONDS = 5.0
#: then grow by this share of that rate per second of use: about one probe past the limit per 20 s
GROWTH_PER_SECOND = 0.01


@dataclass
class TokenBucket:
    """A token bucket whose rate adapts: halved on a throttle, raised a little on each success."""

    max_rate: float
    burst: float
    now: float
    min_rate: float = 0.2

    def __post_init__(self) -> None:
        self.rate = self.max_rate
        self.tokens = self.burst
        self.updated = self.now
        self.paused_until = self.now
        self.last_decrease = float("-inf")
        #: the rate AWS was measured to allow at the last throttle (None: not learned, or outgrown)
        self.ceiling: float | None = None
        self.accepted: deque[float] = deque()
        self.last_growth = self.now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, now: float) -> float:
        """Take a token; return how many seconds the caller must wait before using it."""
        self._refill(now)
        self.tokens -= 1.0
        debt_wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        # Tokens are counted from `updated` (the end of a pause, if any): callers who queue up during a
        # pause are spaced by the rate after it, not all let go the moment it ends.
        return max(0.0, self.updated - now) + debt_wait

    def try_take(self, now: float) -> float:
        """Take a token only if one is there now (0.0); else the seconds until one may be, taking none:
        a caller that waits and asks again is paced by the rate as it is then, not as it was."""
        self._refill(now)
        if self.paused_until > now:
            return self.paused_until - now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def throttled(self, now: float, retry_after: float | None) -> None:
        """AWS said slow down: drop to a little under the rate it let through in the last seconds when
        we were pressing against its limit (that is the limit), else halve; once per burst; pause."""
        if now - self.last_decrease >= max(1.0, 1.0 / self.rate):
            self._forget_before(now - MEASURE_SECONDS)
            span = min(MEASURE_SECONDS, now - self.accepted[0]) if self.accepted else MEASURE_SECONDS
            measured = len(self.accepted) / max(1.0, span)
            if measured >= self.rate / 2:
                lowered = min(self.rate, measured) * MEASURED_SHARE
                if now - self.last_decrease < REPEAT_SECONDS:
                    lowered = min(lowered, self.rate / 2)
                self.ceiling = measured
                self.rate = max(self.min_rate, lowered)
            else:
                self.ceiling = None
                self.rate = max(self.min_rate, self.rate / 2)
            self.last_decrease = now
            self.last_growth = now
        pause = retry_after if retry_after and retry_after > 0 else 1.0 / self.rate
        self.paused_until = max(self.paused_until, now + pause)
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.updated = max(self.updated, self.paused_until)  # no tokens accrue during the pause

    def succeeded(self, now: float) -> None:
        """Additive increase: about fifty successes bring a halved rate back to the maximum. Under a
        measured limit, growth is slow and by time in use, so probing past it costs a throttle only
        every few hundred calls; once well past it without a throttle, the limit has gone up."""
        self.accepted.append(now)
        self._forget_before(now - MEASURE_SECONDS)
        if self.ceiling is None:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 50)
            return
        elapsed = min(1.0, max(0.0, now - self.last_growth))
        self.last_growth = max(self.last_growth, now)
        self.rate = min(self.max_rate, self.rate + self.ceiling * GROWTH_PER_SECOND * elapsed)
        if self.rate > self.ceiling * 1.25:
            self.ceiling = None

    def _forget_before(self, start: float) -> None:
        while self.accepted and self.accepted[0] < start:
            self.accepted.popleft()


class RateLimiter:
    """Thread-safe buckets by key. `acquire` blocks the calling worker thread until its token is due."""

    def __init__(
        self,
        max_rate: float = 10.0,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_rate = max_rate
        self.burst = burst if burst is not None else max(1.0, max_rate)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[BucketKey, TokenBucket] = {}

    def bucket(self, key: BucketKey) -> TokenBucket:
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = TokenBucket(self.max_rate, self.burst, self.clock())
                # Slow start: one token, the burst fills over its first second. An operation whose
                # limit at AWS is lower than ours is not hit with a whole burst before we learn it.
                found.tokens = min(found.tokens, 1.0)
            return found

    def reserve(self, key: BucketKey) -> float:
        """Take a token without waiting; return how long the caller must wait before using it."""
        bucket = self.bucket(key)
        with self._lock:
            return bucket.reserve(self.clock())

    def try_take(self, key: BucketKey) -> float:
        """Take a token if one is there now (0.0), else the seconds until one may be (none taken)."""
        bucket = self.bucket(key)
        with self._lock:
            return bucket.try_take(self.clock())

    def acquire(self, key: BucketKey) -> float:
        """Wait for a token; return the seconds waited."""
        bucket = self.bucket(key)
        with self._lock:
            wait = bucket.reserve(self.clock())
        if wait > 0:
            self.sleep(wait)
        return wait

    def throttled(self, key: BucketKey, retry_after: float | None) -> None:
        bucket = self.bucket(key)
        with self._lock:
            bucket.throttled(self.clock(), retry_after)

    def succeeded(self, key: BucketKey) -> None:
        bucket = self.bucket(key)
        with self._lock:
            bucket.succeeded(self.clock())

    def rate(self, key: BucketKey) -> float:
        return self.bucket(key).rate
