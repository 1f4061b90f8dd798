"""Injected trouble: denial, throttling and faults decided per call before the service code runs;
read-lag draws while it runs; lost answers (by rule, or drawn) after it ran.

Every random choice comes from a generator seeded by `seed` (one stream per purpose, so turning on
read lag does not move which calls fail).

Token buckets model AWS's per-operation rate limits (per account and region): each bucket refills
at RATE tokens per second and holds at most max(1, RATE), so a burst of RATE calls passes and the
rest get ThrottlingException (429) with the wait until the next token (a `Retry-After` header where
the service's model has one).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

from q_operator.emulate.aws.config import InjectRule, LoseRule, Settings, op_keys
from q_operator.emulate.aws.errors import ApiError

Rule = TypeVar("Rule", InjectRule, LoseRule)


def take(rules: list[Rule], keys: Sequence[str]) -> tuple[Rule | None, list[Rule]]:
    """The first rule naming one of the call's `keys`, with one of its uses taken, and the rules left
    (a used-up rule is gone)."""
    for rule in rules:
        if rule.operation in keys and (rule.count is None or rule.count > 0):
            if rule.count is not None:
                rule.count -= 1
            return rule, [r for r in rules if r.count is None or r.count > 0]
    return None, rules


class TokenBucket:
    """A classic token bucket; `take` answers 0 when a token was taken, else the wait in seconds."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        if self.rate <= 0:
            return 60.0
        return (1.0 - self.tokens) / self.rate


def throttled(service: str, wait: float) -> ApiError:
    """The service's ThrottlingException; the wait goes out as `Retry-After` where its model has one."""
    return ApiError(
        "ThrottlingException",
        "Rate exceeded",
        retryAfterSeconds=max(1, math.ceil(wait)),
        serviceCode=service,
        quotaCode="emulator-rate-limit",
    )


class Faults:
    """Decides, per call, whether trouble answers instead of the service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._buckets: dict[tuple[str, str, str, str, float], TokenBucket] = {}
        self._rng = random.Random()
        self._lag_rng = random.Random()
        self._lost_rng = random.Random()
        if settings.seed is not None:
            self.seed(settings.seed)

    def reset(self) -> None:
        self._buckets.clear()
        if self.settings.seed is not None:
            self.seed(self.settings.seed)

    def seed(self, value: int) -> None:
        """Make the random choices (fail_rate, throttle_percent, lag draws, lost answers) repeatable."""
        self._rng.seed(value)
        self._lag_rng.seed(f"{value}/read-lag")
        self._lost_rng.seed(f"{value}/lost-answer")

    def draw_lag(self) -> float:
        """Seconds until a write made now is visible to reads: uniform in [0, read_lag]."""
        lag = self.settings.read_lag
        return self._lag_rng.uniform(0.0, lag) if lag > 0 else 0.0

    def lost_answer(self, service: str, operation: str) -> str | None:
        """Whether a write that acted loses its answer, and how (`reset` or `timeout`): as the first
        `lose_answers` rule naming it says (one use of it), else by `lost_answer_rate`."""
        s = self.settings
        if s.lose_answers:
            rule, s.lose_answers = take(s.lose_answers, op_keys(service, operation))
            if rule is not None:
                return rule.kind
        if s.lost_answer_rate <= 0 or self._lost_rng.random() >= s.lost_answer_rate:
            return None
        return self._lost_rng.choice(s.lost_answer_kinds)

    def check(
        self,
        service: str,
        operation: str,
        region: str,
        now: float,
        blanket: bool = True,
        account: str = "",
    ) -> ApiError | None:
        """Trouble for this call, if any; rate limits are per account and region, as AWS's are.

        `blanket=False` (STS): only rules naming the operation reach it, not `*`, fail_rate or
        throttle_percent.
        """
        s = self.settings
        keys = op_keys(service, operation) if blanket else op_keys(service, operation)[:2]
        if any(k in s.access_denied for k in keys):
            return ApiError(
                "AccessDeniedException",
                f"User is not authorized to perform: {service}:{operation} (emulator access_denied)",
            )
        injected, s.inject = take(s.inject, keys)
        if injected is not None:
            message = injected.message or f"Injected {injected.error} (emulator inject rule)"
            return ApiError(injected.error, message, **{"retryAfterSeconds": 1, **injected.fields})
        rate_key = next((k for k in keys if k in s.throttle), None)
        if rate_key is not None:
            rate = s.throttle[rate_key]
            bucket_key = (account, region, service, operation, rate)
            bucket = self._buckets.get(bucket_key)
            if bucket is None:
                bucket = self._buckets[bucket_key] = TokenBucket(rate, now)
            wait = bucket.take(now)
            if wait > 0:
                return throttled(service, wait)
        if not blanket:
            return None
        if (
            s.throttle_percent > 0
            and now < s.throttle_until
            and self._rng.random() * 100 < s.throttle_percent
        ):
            return throttled(service, 1.0)
        if s.fail_rate > 0 and self._rng.random() < s.fail_rate:
            return ApiError(
                "InternalServerException", "Internal failure (emulator fail_rate)", retryAfterSeconds=1
            )
        return None
