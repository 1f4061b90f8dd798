"""Injected trouble, decided per call before the service code runs: denial, throttling, faults.

Token buckets model AWS's per-operation rate limits: each bucket refills at RATE tokens per second
and holds at most max(1, RATE), so a burst of RATE calls passes and the rest get ThrottlingException
(429) with the wait until the next token (qapps sends it as `Retry-After`).
"""

from __future__ import annotations

import math
import random

from q_operator.emulate.aws.config import Settings, op_keys
from q_operator.emulate.aws.errors import ApiError


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
    """The service's ThrottlingException; qapps carries the wait in `Retry-After`."""
    return ApiError(
        "ThrottlingException",
        "Rate exceeded",
        retryAfterSeconds=max(1, math.ceil(wait)),
        serviceCode=service,
        quotaCode="emulator-rate-limit",
    )


class Faults:
    """Decides, per call, whether trouble answers instead of the service."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._buckets: dict[tuple[str, str, str, float], TokenBucket] = {}
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._buckets.clear()

    def seed(self, value: int) -> None:
        """Make the random faults (fail_rate, throttle_percent) repeatable."""
        self._rng.seed(value)

    def check(self, service: str, operation: str, region: str, now: float) -> ApiError | None:
        """Trouble for this call, if any; rate limits are per region, as AWS's are."""
        s = self.settings
        keys = op_keys(service, operation)
        if any(k in s.access_denied for k in keys):
            return ApiError(
                "AccessDeniedException",
                f"User is not authorized to perform: {service}:{operation} (emulator access_denied)",
            )
        for rule in s.inject:
            if rule.operation in keys and (rule.count is None or rule.count > 0):
                if rule.count is not None:
                    rule.count -= 1
                s.inject = [r for r in s.inject if r.count is None or r.count > 0]
                message = rule.message or f"Injected {rule.error} (emulator inject rule)"
                extra = {"retryAfterSeconds": 1, **rule.fields}
                return ApiError(rule.error, message, **extra)
        rate_key = next((k for k in keys if k in s.throttle), None)
        if rate_key is not None:
            rate = s.throttle[rate_key]
            bucket_key = (region, service, operation, rate)
            bucket = self._buckets.get(bucket_key)
            if bucket is None:
                bucket = self._buckets[bucket_key] = TokenBucket(rate, now)
            wait = bucket.take(now)
            if wait > 0:
                return throttled(service, wait)
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
