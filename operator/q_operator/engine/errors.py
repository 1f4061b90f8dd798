"""The engine's own error values, and the one table that turns whatever a kind or botocore raised into
them.

Every failure ends as either a `TerminalError` (the input is wrong: stop until the generation
changes) or a `RetryableError` (try again after `delay` seconds). A build still running is not an
error at all: the adapter reports Phase.IN_PROGRESS and the cycle requeues to poll it. Errors are
classified by botocore's error *code*, never by HTTP status: AppFlow answers 400 for several
different errors. The reconcile cycle turns them into a Synced condition and an Outcome; only the
kopf bridge (bridge.py) turns an Outcome into kopf.TemporaryError / kopf.PermanentError.

A write (create, update, delete) that fails without a clear refusal from AWS — the connection reset,
the answer timed out, a 5xx — may have acted: it becomes an `OutcomeUnknown`, which the steps resolve
by reading (consistency.py), never by sending the same non-idempotent call again blindly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from q_operator.engine import conditions as c
from q_operator.kinds.base import AlreadyExists, ExternalFailure, InUse, KindError, NotFoundError
from q_operator.kinds.common import error_code

#: Longest back-off for errors that may clear by themselves (5xx, unknown errors).
MAX_BACKOFF = 300.0
#: Retry delay for errors a human has to fix outside the spec (permissions, quotas, missing
#: dependencies): slow, so a resource left broken for a day costs a few hundred calls, not millions.
SLOW_RETRY = 300.0


class ReconcileError(Exception):
    """A failure the engine reports on the resource: a Synced reason and a message for humans."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TerminalError(ReconcileError):
    """The input is wrong or the outcome permanent: stop until the generation (or an input) changes."""


class RetryableError(ReconcileError):
    """Try again after `delay` seconds."""

    def __init__(self, reason: str, message: str, delay: float) -> None:
        super().__init__(reason, message)
        self.delay = delay


class OutcomeUnknown(RetryableError):
    """A write whose answer never came (or came as a 5xx): AWS may or may not have acted on it. The
    next cycle reads before it writes again (consistency.py)."""


#: The verbs that change AWS: a failure of one of them that is not a clear refusal is ambiguous.
WRITE_STEPS = frozenset({"create", "update", "delete"})


@dataclass(frozen=True)
class _Rule:
    reason: str
    #: "throttle", "backoff", "slow", "terminal" or a fixed delay in seconds.
    policy: str | float
    #: what the user should read first.
    lead: str


#: botocore error code → how to treat it: the codes AWS services share (throttling, faults, invalid
#: input, permissions, credentials, quotas, missing resources, conflicts).
ERROR_TABLE: Mapping[str, _Rule] = {
    # throttling: back off honouring Retry-After (Q Apps sends retryAfterSeconds), with jitter.
    "ThrottlingException": _Rule(c.THROTTLED, "throttle", "AWS throttled the request"),
    "Throttling": _Rule(c.THROTTLED, "throttle", "AWS throttled the request"),
    "TooManyRequestsException": _Rule(c.THROTTLED, "throttle", "AWS throttled the request"),
    "RequestLimitExceeded": _Rule(c.THROTTLED, "throttle", "AWS throttled the request"),
    "SlowDown": _Rule(c.THROTTLED, "throttle", "AWS throttled the request"),
    # AWS-side faults: exponential back-off with jitter.
    "InternalServerException": _Rule(c.AWS_SERVER_ERROR, "backoff", "AWS had an internal error"),
    "InternalFailure": _Rule(c.AWS_SERVER_ERROR, "backoff", "AWS had an internal error"),
    "InternalServerError": _Rule(c.AWS_SERVER_ERROR, "backoff", "AWS had an internal error"),
    "ServiceUnavailable": _Rule(c.AWS_SERVER_ERROR, "backoff", "the AWS service is unavailable"),
    "ServiceUnavailableException": _Rule(c.AWS_SERVER_ERROR, "backoff", "the AWS service is unavailable"),
    # invalid input: nothing changes until the spec does.
    "ValidationException": _Rule(c.AWS_VALIDATION, "terminal", "AWS rejected the request as invalid"),
    "ContentTooLargeException": _Rule(c.AWS_VALIDATION, "terminal", "AWS rejected the request as too large"),
    "UnsupportedOperationException": _Rule(c.AWS_VALIDATION, "terminal", "AWS does not support this"),
    # permissions get fixed: retry slowly, never in a hot loop.
    "AccessDeniedException": _Rule(c.ACCESS_DENIED, "slow", "the operator's AWS identity may not do this"),
    "AccessDenied": _Rule(c.ACCESS_DENIED, "slow", "the operator's AWS identity may not do this"),
    "UnauthorizedException": _Rule(c.ACCESS_DENIED, "slow", "the operator's AWS identity may not do this"),
    "UnrecognizedClientException": _Rule(c.CREDENTIALS_INVALID, 60.0, "AWS did not accept the credentials"),
    "InvalidClientTokenId": _Rule(c.CREDENTIALS_INVALID, 60.0, "AWS did not accept the credentials"),
    "InvalidSignatureException": _Rule(c.CREDENTIALS_INVALID, 60.0, "AWS did not accept the credentials"),
    "SignatureDoesNotMatch": _Rule(c.CREDENTIALS_INVALID, 60.0, "AWS did not accept the credentials"),
    "ExpiredTokenException": _Rule(c.CREDENTIALS_INVALID, 60.0, "the AWS credentials have expired"),
    "ExpiredToken": _Rule(c.CREDENTIALS_INVALID, 60.0, "the AWS credentials have expired"),
    # quotas get raised: slow retry.
    "ServiceQuotaExceededException": _Rule(c.QUOTA_EXCEEDED, "slow", "an AWS service quota is exhausted"),
    "LimitExceededException": _Rule(c.QUOTA_EXCEEDED, "slow", "an AWS service quota is exhausted"),
    # something the spec refers to is missing (the managed resource itself is Phase.ABSENT instead).
    "ResourceNotFoundException": _Rule(
        c.DEPENDENCY_NOT_FOUND, "slow", "something the spec refers to does not exist in AWS"
    ),
    # a concurrent change on the AWS side: try again shortly.
    "ConflictException": _Rule(c.CONFLICT, 15.0, "AWS reported a conflicting change"),
}
# A code only one service answers with, and that means something this table cannot know (a failure of
# something the user owns, as a connector's Lambda), is turned into a kind error (ExternalFailure,
# NotFoundError, ...) by that kind's adapter: the table holds only codes that mean the same anywhere.


def backoff_delay(attempt: int, rng: random.Random, base: float = 1.0, cap: float = MAX_BACKOFF) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, never above `cap`."""
    ceiling: float = min(cap, base * float(2 ** min(max(attempt, 0), 16)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def throttle_delay(retry_after: float | None, attempt: int, rng: random.Random) -> float:
    """Honour Retry-After when AWS gave one (never retry sooner), plus up to 50% jitter so a
    thousand throttled resources do not come back in the same second."""
    if retry_after is not None and retry_after > 0:
        return retry_after + rng.uniform(0, max(1.0, retry_after / 2))
    return backoff_delay(attempt + 1, rng, base=1.0, cap=60.0)


def retry_after_of(error: ClientError) -> float | None:
    """Seconds AWS asked us to wait: Q Apps' `retryAfterSeconds`, or the Retry-After header."""
    response: Mapping[str, Any] = error.response
    value = response.get("retryAfterSeconds")
    if value is None:
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def aws_message(error: ClientError) -> str:
    """AWS's words, plus the fields a ValidationException names."""
    err = error.response.get("Error", {})
    message = str(err.get("Message") or error.response.get("message") or "")
    fields = error.response.get("fields")
    if isinstance(fields, list) and fields:
        named = "; ".join(f"{f.get('name')}: {f.get('message')}" for f in fields if isinstance(f, Mapping))
        message = f"{message} ({named})" if message else named
    return message


def may_have_acted(error: BaseException) -> bool:
    """Whether a write that raised `error` may still have changed AWS.

    No only for a clear refusal: a 4xx answer (a throttle included: AWS rejected the call unexecuted),
    a kind error made from one, or a request botocore never sent (invalid parameters, no region, no
    credentials). Everything else may have acted: the connection reset or the answer timed out after
    the request went out (ConnectionClosedError, ReadTimeoutError), a 5xx (AWS may fail after acting),
    and errors we cannot place. EndpointConnectionError and ConnectTimeoutError come before anything is
    sent in today's botocore, but nothing here relies on that: reading first costs little.
    """
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        rule = ERROR_TABLE.get(error_code(error))
        if rule is not None:
            return rule.reason == c.AWS_SERVER_ERROR
        return status >= 500 or status == 0
    if isinstance(error, KindError):
        return False  # made by the adapter from an answer AWS gave
    return not isinstance(error, ParamValidationError | NoRegionError | NoCredentialsError)


def classify(error: BaseException, step: str, attempt: int, rng: random.Random) -> ReconcileError:
    """The one place that decides what an error means. `step` leads the message ("create failed: ...").

    A write step's failure that `may_have_acted` is an `OutcomeUnknown` of the same reason and delay."""
    if isinstance(error, ReconcileError):
        return error
    found = _classify(error, step, attempt, rng)
    if step in WRITE_STEPS and isinstance(found, RetryableError) and may_have_acted(error):
        return OutcomeUnknown(
            found.reason,
            f"{found.message} (the request may have reached AWS: reading before it is sent again)",
            found.delay,
        )
    return found


def _classify(error: BaseException, step: str, attempt: int, rng: random.Random) -> ReconcileError:
    if isinstance(error, ClientError):
        return _classify_client_error(error, step, attempt, rng)
    if isinstance(error, AlreadyExists):
        return RetryableError(c.ALREADY_EXISTS, f"{step} failed: {error}", SLOW_RETRY)
    if isinstance(error, InUse):
        return RetryableError(c.IN_USE, f"{step} failed: still in use: {error}", 60.0)
    if isinstance(error, ExternalFailure):
        return RetryableError(c.EXTERNAL_FAILURE, f"{step} failed: {error}", backoff_delay(attempt + 3, rng))
    if isinstance(error, NotFoundError):
        return RetryableError(
            c.DEPENDENCY_NOT_FOUND, f"{step} failed: spec.{error.field} not found in AWS: {error}", SLOW_RETRY
        )
    if isinstance(error, ParamValidationError):
        return TerminalError(c.AWS_VALIDATION, f"{step} failed: the request is invalid: {error}")
    if isinstance(error, NoRegionError):
        return RetryableError(
            c.REGION_MISSING, f"{step} failed: no AWS region: set spec.region or AWS_REGION", SLOW_RETRY
        )
    if isinstance(error, NoCredentialsError):
        return RetryableError(
            c.CREDENTIALS_INVALID, f"{step} failed: the operator has no AWS credentials", 60.0
        )
    if isinstance(
        error, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError
    ):
        return RetryableError(c.AWS_UNREACHABLE, f"{step} failed: {error}", backoff_delay(attempt + 1, rng))
    if isinstance(error, BotoCoreError):
        return RetryableError(c.AWS_ERROR, f"{step} failed: {error}", backoff_delay(attempt + 2, rng))
    return RetryableError(
        c.INTERNAL_ERROR, f"{step} failed: {type(error).__name__}: {error}", backoff_delay(attempt + 2, rng)
    )


def _classify_client_error(error: ClientError, step: str, attempt: int, rng: random.Random) -> ReconcileError:
    code = error_code(error)
    said = aws_message(error)
    rule = ERROR_TABLE.get(code)
    if rule is None:
        # An unknown code: retry with a growing delay rather than stop (it may be transient), but
        # start slow enough that a permanent one costs little.
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        delay = backoff_delay(attempt + (1 if status >= 500 else 4), rng)
        return RetryableError(c.AWS_ERROR, f"{step} failed: {code or 'unknown error'}: {said}", delay)
    message = f"{step} failed: {rule.lead}: {code}: {said}" if said else f"{step} failed: {rule.lead}: {code}"
    if rule.policy == "terminal":
        return TerminalError(rule.reason, message)
    if rule.policy == "throttle":
        return RetryableError(rule.reason, message, throttle_delay(retry_after_of(error), attempt, rng))
    if rule.policy == "backoff":
        # Q Apps' InternalServerException carries Retry-After too: never retry sooner than asked.
        delay = max(backoff_delay(attempt + 1, rng), retry_after_of(error) or 0.0)
        return RetryableError(rule.reason, message, delay)
    if rule.policy == "slow":
        return RetryableError(rule.reason, message, SLOW_RETRY)
    return RetryableError(rule.reason, message, float(rule.policy))
