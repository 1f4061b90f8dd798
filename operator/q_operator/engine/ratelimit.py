"""Client-side rate limiting toward AWS: an adaptive token bucket per (service, region, operation,
account).

AWS limits each control-plane operation separately, per account and region, and one adapter verb may
make several calls (GetPlugin, then ListTagsForResource), so the bucket is taken per HTTP call, in
botocore's `before-call` hook inside the worker thread (engine/aws.py), and fed back from `after-call`.

The rate is learned in both directions, as AWS's own adaptive retry mode does, and starts at
`Q_OPERATOR_AWS_RATE`: no ceiling unless one is set (`Q_OPERATOR_AWS_RATE_MAX`, to leave quota to
others in the account). Three rules:

- **Decrease** on a throttle (once per burst of throttles): to `BETA` of the rate AWS allows, never
  above the rate in use; and a pause for Retry-After. The rate AWS allows is measured from its
  answers: its bucket holds about a second's worth (`BURST_SECONDS`) and is empty when it says no,
  so the limit is the least rate whose bucket would have let through every call it accepted. Calls
  that went on its burst are not taken for its rate: one throttle finds the limit, not two.
- **Return, then probe**, CUBIC-like: from the decrease the rate climbs back to the limit within a
  few seconds (`RETURN_CALLS`), flattening as it nears it, then probes past it slowly at first and
  faster the longer no throttle comes. The probe is counted in calls rather than seconds
  (`RECOVERY_CALLS`), which makes the share of throttled calls the same at 1/s as at 100/s: one
  probe every few hundred calls.
- **Start slow, grow fast** where no limit is known yet: while calls wait, the rate grows e²-fold
  (x7.4) every second (`SLOW_START_STEP` per call) up to twice what AWS accepted in the last second
  (TCP's slow start doubles each round trip), so a quota of 100/s is found within two seconds of the
  default 10/s: 100 creates at a quota of 50/s go in the 2 s the quota allows; a limit outgrown
  twice over without a throttle is forgotten the same way. Until a limit is known the bucket holds
  no more than a second of the start rate: a rate tested only against AWS's burst does not go out
  all at once after a stall.

The rate grows only while callers wait for it (the bucket is empty): an operator that sends 2 calls a
second never learns to send 200 at once.

`TokenBucket` is pure (the caller passes the time), so the tests drive it with a fake clock and a
simulated AWS bucket (tests/unit/test_engine_ratelimit.py).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: (service, region, operation, account): AWS's quotas are per account and region. The account is ""
#: for the operator's own identity until it is known.
BucketKey = tuple[str, str, str, str]

#: after a throttle, run at this share of the rate AWS let through (multiplicative decrease)
BETA = 0.9
#: calls that wait for their token (the limiter is what holds them back) it takes to climb from
#: BETA x the last limit back to it: the limit is measured, so the way back costs no throttle...
RETURN_CALLS = 40.0
#: ...or this many seconds' worth at the last limit, if more
RETURN_SECONDS = 3.0
#: waiting calls past the return it takes to probe to twice the last limit...
RECOVERY_CALLS = 250.0
#: ...or this many seconds' worth at the last limit, if more: at high rates several calls are in
#: flight when a throttle comes back, so each probe costs several throttled calls
RECOVERY_SECONDS = 10.0
#: how steeply the probe past the last limit grows: rate = limit x (1 + PROBE x (n / K)^3)
PROBE = 1.0
#: where no limit is known yet, each waiting call adds this to the rate (calls/s): at r calls a second
#: that is 2r a second, so the rate grows e²-fold (x7.4) every second...
SLOW_START_STEP = 2.0
#: ...but never past this multiple of what AWS accepted over the last second (or of the start rate),
#: so the first overshoot past an unknown limit stays small (the calls in flight when it comes)
SLOW_START_CAP = 2.0
#: the rate never goes below this many calls a second, however long AWS throttles everything
MIN_RATE = 0.5
#: a limit outgrown this many times over without a throttle is forgotten: grow as from the start
FORGET_FACTOR = 2.0
#: AWS's buckets hold about a second's worth on top of the rate (the stand-in's do; a larger burst
#: shows as a second throttle soon after, measured from the first)
BURST_SECONDS = 1.0
#: a token short by less than this is a token: rounding must not send a caller who waited to wait again
EPSILON = 1e-9
#: seconds of accepted calls a throttle is measured against: long against the burst, so calls that
#: went at AWS's rate all along (its bucket never full) are measured within 1/20 of it
MEASURE_SECONDS = 20.0
#: a call that waited this recently means the callers press against the rate: only then may it grow
PRESSING_SECONDS = 1.0


@dataclass
class TokenBucket:
    """A token bucket whose rate adapts: down on a throttle, up while the callers wait for it."""

    #: where the rate starts (Q_OPERATOR_AWS_RATE)
    start_rate: float
    #: tokens held at most; None: one second's worth at the current rate
    burst: float | None
    now: float
    #: the rate never goes above this (Q_OPERATOR_AWS_RATE_MAX); None: no ceiling
    ceiling: float | None = None
    #: the floor (AWS's adaptive retry mode's too): a throttling storm never stalls an operation
    min_rate: float = MIN_RATE

    def __post_init__(self) -> None:
        self.rate = self._capped(self.start_rate)
        #: the rate AWS was measured to allow at the last throttle (None: none yet, or outgrown)
        self.limit: float | None = None
        self.tokens = self.capacity
        self.updated = self.now
        self.paused_until = self.now
        self.last_decrease = float("-inf")
        #: calls that waited for their token since the last decrease (CUBIC's clock)
        self.waited_calls = 0.0
        self.pressed_at = float("-inf")
        self.accepted: deque[float] = deque()

    @property
    def capacity(self) -> float:
        if self.burst is not None:
            return self.burst
        # One second's worth, but of no more than AWS is known to allow: a rate that slow start has
        # raised past anything tested yet must not let a whole second of it go at once (after a stall).
        known = self.limit if self.limit is not None else self.start_rate
        return max(1.0, min(self.rate, known))

    def _capped(self, rate: float) -> float:
        rate = max(self.min_rate, rate)
        return min(rate, self.ceiling) if self.ceiling is not None else rate

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, now: float) -> float:
        """Take a token; return how many seconds the caller must wait before using it."""
        self._refill(now)
        if self.tokens < 1.0:
            self.pressed_at = now
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
            self.pressed_at = now
            return self.paused_until - now
        if self.tokens >= 1.0 - EPSILON:  # (a waiter woken when the token is due gets it)
            self.tokens -= 1.0
            return 0.0
        self.pressed_at = now
        return (1.0 - self.tokens) / self.rate

    def measured(self, now: float, since: float = float("-inf")) -> float | None:
        """The rate AWS allows, from the calls it accepted over the last seconds and its answer now
        that its bucket is empty; None: nothing accepted. `since`: when it was last empty (the last
        throttle), if within the window.

        AWS's bucket holds `BURST_SECONDS` of its rate. Had it been full at s (or empty at `since`),
        it would have let through at most rate x (now - s + burst) since then: the rate is the least
        one under which every call it accepted fits, and at which the next one, now, does not."""
        start = max(now - MEASURE_SECONDS, since)
        self._forget_before(now - MEASURE_SECONDS)
        calls = [t for t in self.accepted if t >= start]
        if not calls:
            return None
        best = len(calls) / max(1.0, now - since) if since >= start else 0.0
        for i, at in enumerate(calls):
            best = max(best, (len(calls) - i) / (now - at + BURST_SECONDS))
        return best

    def throttled(self, now: float, retry_after: float | None) -> None:
        """AWS said slow down: to BETA of the rate it allows (`measured`; never above the rate in use),
        once per burst of throttles; pause for Retry-After (else one token's time)."""
        if now - self.last_decrease >= max(1.0, 1.0 / self.rate):
            let_through = self.measured(now, self.last_decrease)
            if let_through:
                self.limit = min(self.rate, let_through)
                self.rate = self._capped(BETA * self.limit)
            else:
                # AWS accepted nothing since the last decrease: no rate was measured, so no limit is
                # learned (an outage or a throttling storm says nothing about the quota). Halve, and
                # once calls pass again grow back as from the start, within seconds, not minutes.
                self.limit = None
                self.rate = self._capped(self.rate / 2)
            self.waited_calls = 0.0
            self.last_decrease = now
        pause = retry_after if retry_after and retry_after > 0 else 1.0 / self.rate
        self.paused_until = max(self.paused_until, now + pause)
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.updated = max(self.updated, self.paused_until)  # no tokens accrue during the pause

    def succeeded(self, now: float) -> None:
        """A call went through. While callers wait for tokens the rate grows: CUBIC-like back to the
        last limit and past it; without a known limit, e²-fold every second."""
        self.accepted.append(now)
        self._forget_before(now - MEASURE_SECONDS)
        if now - self.pressed_at > PRESSING_SECONDS + 2.0 / self.rate:
            return  # the callers do not need more: no growth nobody has tested
        self._refill(now)
        if self.limit is None:
            last_second = len(self.accepted) - bisect.bisect_left(self.accepted, now - 1.0)
            cap = SLOW_START_CAP * max(self.start_rate, last_second)
            self.rate = self._capped(max(self.rate, min(self.rate + SLOW_START_STEP, cap)))
            return
        self.waited_calls += 1.0
        back = max(RETURN_CALLS, RETURN_SECONDS * self.limit)
        if self.waited_calls <= back:
            target = self.limit * (1.0 - (1.0 - BETA) * (1.0 - self.waited_calls / back) ** 3)
        else:
            n = (self.waited_calls - back) / max(RECOVERY_CALLS, RECOVERY_SECONDS * self.limit)
            target = self.limit * (1.0 + PROBE * n**3)
        self.rate = self._capped(max(self.rate, target))
        if self.rate > FORGET_FACTOR * self.limit:
            self.limit = None  # the limit went up a long way: find it as from the start

    def _forget_before(self, start: float) -> None:
        while self.accepted and self.accepted[0] < start:
            self.accepted.popleft()


class RateLimiter:
    """Thread-safe buckets by key. `acquire` blocks the calling worker thread until its token is due."""

    def __init__(
        self,
        rate: float = 10.0,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        ceiling: float | None = None,
    ) -> None:
        self.start_rate = rate
        self.burst = burst
        self.ceiling = ceiling
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[BucketKey, TokenBucket] = {}

    def bucket(self, key: BucketKey) -> TokenBucket:
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = TokenBucket(
                    self.start_rate, self.burst, self.clock(), ceiling=self.ceiling
                )
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
        """Wait for a token; return the seconds waited. The bucket is asked again after each wait,
        never for a token ahead: calls queued in threads when a throttle lowers the rate go at the
        lowered rate, not at the one they queued under (a sent call cannot be taken back)."""
        bucket = self.bucket(key)
        started = self.clock()
        while True:
            with self._lock:
                wait = bucket.try_take(self.clock())
            if wait <= 0:
                return self.clock() - started
            self.sleep(wait)

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
