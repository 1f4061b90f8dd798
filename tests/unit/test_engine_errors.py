"""The one error table: every class of failure ends as the right condition and decision."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from q_operator.engine import conditions as c
from q_operator.engine.errors import RetryableError, TerminalError, classify, throttle_delay
from q_operator.engine.reconcile import Decision
from q_operator.kinds.base import AlreadyExists, ExternalFailure, InUse, NotFoundError
from tests.unit.engine_fakes import world


def client_error(code: str, status: int = 400, message: str = "nope", **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": extra.pop("headers", {})},
        **extra,
    }
    return ClientError(response, "CreateThing")  # type: ignore[arg-type]


# name, error, reason, decision, (min delay, max delay), why
CASES = [
    (
        "throttle-with-retry-after",
        client_error("ThrottlingException", 429, retryAfterSeconds=7),
        c.THROTTLED,
        Decision.REQUEUE,
        (7, 10.5),
        "Q Apps sends retryAfterSeconds: wait at least that, jitter ≤ 50%",
    ),
    (
        "throttle-header",
        client_error("ThrottlingException", 429, headers={"retry-after": "4"}),
        c.THROTTLED,
        Decision.REQUEUE,
        (4, 6),
        "a Retry-After header is honoured the same way",
    ),
    (
        "throttle-bare",
        client_error("ThrottlingException", 429),
        c.THROTTLED,
        Decision.REQUEUE,
        (0.5, 60),
        "Q Business gives no hint: exponential back-off",
    ),
    (
        "server-error",
        client_error("InternalServerException", 500),
        c.AWS_SERVER_ERROR,
        Decision.REQUEUE,
        (0.5, 300),
        "5xx: back-off with jitter",
    ),
    (
        "validation",
        client_error("ValidationException", 400, fields=[{"name": "displayName", "message": "bad"}]),
        c.AWS_VALIDATION,
        Decision.STOP,
        (0, 0),
        "invalid at AWS: stop until the spec changes",
    ),
    (
        "access-denied",
        client_error("AccessDeniedException", 403),
        c.ACCESS_DENIED,
        Decision.REQUEUE,
        (300, 300),
        "permissions get fixed: slow retry, no hot loop",
    ),
    (
        "quota",
        client_error("ServiceQuotaExceededException", 402),
        c.QUOTA_EXCEEDED,
        Decision.REQUEUE,
        (300, 300),
        "quota: slow retry",
    ),
    (
        "dependency-missing",
        client_error("ResourceNotFoundException", 404),
        c.DEPENDENCY_NOT_FOUND,
        Decision.REQUEUE,
        (300, 300),
        "the application is missing: slow retry",
    ),
    (
        "conflict",
        client_error("ConflictException", 409),
        c.CONFLICT,
        Decision.REQUEUE,
        (15, 15),
        "a concurrent change: retry shortly",
    ),
    (
        "unknown-code",
        client_error("WeirdNewException", 400),
        c.AWS_ERROR,
        Decision.REQUEUE,
        (4, 300),
        "unknown: retry, starting slow; a 400 is not a validation error unless its code says so",
    ),
    (
        "unreachable",
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        c.AWS_UNREACHABLE,
        Decision.REQUEUE,
        (0.5, 300),
        "network: back-off",
    ),
    (
        "read-timeout",
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        c.AWS_UNREACHABLE,
        Decision.REQUEUE,
        (0.5, 300),
        "network: back-off",
    ),
    (
        "no-credentials",
        NoCredentialsError(),
        c.CREDENTIALS_INVALID,
        Decision.REQUEUE,
        (60, 60),
        "credentials appear later: retry each minute",
    ),
    (
        "param-validation",
        ParamValidationError(report="missing x"),
        c.AWS_VALIDATION,
        Decision.STOP,
        (0, 0),
        "botocore refused the request: stop",
    ),
    (
        "kind-already-exists",
        AlreadyExists("label taken"),
        c.ALREADY_EXISTS,
        Decision.REQUEUE,
        (4, 300),
        "taken, and find sees nothing to adopt: back-off with a condition",
    ),
    ("kind-in-use", InUse("used by flow f"), c.IN_USE, Decision.REQUEUE, (60, 60), "in use: slow retry"),
    (
        "kind-external-failure",
        ExternalFailure("lambda said 500"),
        c.EXTERNAL_FAILURE,
        Decision.REQUEUE,
        (4, 300),
        "the user's Lambda failed: back-off, AWS's words shown",
    ),
    (
        "kind-not-found",
        NotFoundError("applicationId", "no such application"),
        c.DEPENDENCY_NOT_FOUND,
        Decision.REQUEUE,
        (300, 300),
        "names the spec field; slow retry",
    ),
    (
        "bug",
        KeyError("oops"),
        c.INTERNAL_ERROR,
        Decision.REQUEUE,
        (2, 300),
        "an adapter bug never crashes the operator",
    ),
]


@pytest.mark.parametrize(
    ("error", "reason", "decision", "bounds"),
    [pytest.param(e, r, d, b, id=name) for name, e, r, d, b, _ in CASES],
)
def test_create_failure_ends_in_condition_and_decision(
    error: BaseException, reason: str, decision: Decision, bounds: tuple[float, float]
) -> None:
    """Each error from the table, raised by create, gives its Synced reason, a Warning and a decision."""
    w = world()
    asyncio.run(w.cycle())  # intent recorded
    w.cloud.fail["create"] = [error]
    out = asyncio.run(w.cycle())
    assert out.decision is decision
    synced = w.condition(c.SYNCED)
    assert synced["status"] == "False" and synced["reason"] == reason
    assert synced["message"].startswith("create failed")
    assert ("Warning", reason) in [(t, r) for t, r, _ in w.events]
    if decision is Decision.REQUEUE:
        assert bounds[0] <= out.delay <= bounds[1]
    assert "createPending" in w.status  # the marker stays until the create is known to have happened


def test_validation_message_names_the_fields_aws_named() -> None:
    """AWS's ValidationException field list reaches the condition."""
    error = classify(
        client_error("ValidationException", fields=[{"name": "displayName", "message": "bad"}]),
        "create",
        0,
        random.Random(1),
    )
    assert isinstance(error, TerminalError) and "displayName: bad" in error.message


def test_not_found_names_the_spec_field() -> None:
    error = classify(NotFoundError("applicationId", "no app"), "create", 0, random.Random(1))
    assert isinstance(error, RetryableError) and "spec.applicationId" in error.message


def test_throttle_delay_never_undercuts_retry_after() -> None:
    """Across many draws: Retry-After ≤ delay ≤ 1.5 x Retry-After (+1 s floor on the jitter)."""
    rng = random.Random(3)
    for after in (1, 2, 7, 30):
        for _ in range(200):
            assert after <= throttle_delay(after, 0, rng) <= after + max(1.0, after / 2)


def test_internal_error_backoff_never_undercuts_retry_after() -> None:
    """Q Apps' InternalServerException carries Retry-After: the back-off waits at least that long."""
    rng = random.Random(4)
    for _ in range(50):
        error = classify(client_error("InternalServerException", 500, retryAfterSeconds=3), "x", 0, rng)
        assert isinstance(error, RetryableError) and error.reason == c.AWS_SERVER_ERROR and error.delay >= 3


def test_backoff_grows_with_attempts_and_is_capped() -> None:
    rng = random.Random(5)
    first = [classify(client_error("InternalServerException", 500), "x", 0, rng) for _ in range(50)]
    late = [classify(client_error("InternalServerException", 500), "x", 12, rng) for _ in range(50)]
    assert max(e.delay for e in first if isinstance(e, RetryableError)) <= 2
    assert all(150 <= e.delay <= 300 for e in late if isinstance(e, RetryableError))


def test_a_throttle_is_told_by_its_code_not_its_status() -> None:
    rng = random.Random(5)
    assert classify(client_error("ThrottlingException", 400), "x", 0, rng).reason == c.THROTTLED
    assert classify(client_error("ValidationException", 429), "x", 0, rng).reason == c.AWS_VALIDATION


def test_terminal_error_during_deletion_keeps_the_finalizer() -> None:
    """A terminal error while deleting becomes a slow retry: releasing would orphan the resource."""
    w = world()
    asyncio.run(w.converge())
    w.deleting = True
    w.cloud.fail["delete"] = [client_error("ValidationException")]
    out = asyncio.run(w.cycle())
    assert out.decision is Decision.REQUEUE and out.delay == 300
