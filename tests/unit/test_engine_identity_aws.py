"""The AWS edge acting as a namespace's role (engine/aws.py), against the AWS stand-in in-process:
calls signed with the role's assumed credentials land in the role's account; a call answered
ExpiredToken is resent once with renewed credentials; a role that cannot be assumed fails before
any service call; limiter buckets are kept per account."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from q_operator.emulate.aws.testing import AwsHandle, running_aws
from q_operator.engine.aws import AwsSession
from q_operator.engine.identity import AssumeRoleFailed, Role, RoleCredentials
from tests.unit.engine_fakes import thing_kind

ROLE_A = Role("arn:aws:iam::111111111111:role/q-operator-tenant-a")
ROLE_B = Role("arn:aws:iam::222222222222:role/q-operator-tenant-b", "ext-b")
APP = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsHandle, AwsSession]]:
    roles = [ROLE_A.arn, f"{ROLE_B.arn}:ext-b"]
    with running_aws(assumable_roles=roles, credential_lifetime=2.0) as handle:
        monkeypatch.setenv("AWS_ENDPOINT_URL", handle.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        session = AwsSession(concurrency=2, session_name=lambda role: f"q-operator-ns-{role.account[:1]}")
        try:
            yield handle, session
        finally:
            session.close()


def kind() -> Any:
    info = thing_kind()
    return type(info)(**{**info.__dict__, "service": "qbusiness", "adapter_factory": lambda client: client})


def list_plugins(session: AwsSession, role: Role | None) -> Any:
    logger = logging.LoggerAdapter(logging.getLogger("test"), {"obj_kind": "Thing"})
    return asyncio.run(
        session.call(
            kind(), "us-east-1", "find", lambda c: c.list_plugins(applicationId=APP), logger, role=role
        )
    )


def calls(handle: AwsHandle, service: str) -> list[dict[str, Any]]:
    return [r for r in handle.requests() if r["service"] == service]


def test_a_roles_calls_land_in_its_account_as_its_session(aws: tuple[AwsHandle, AwsSession]) -> None:
    handle, session = aws
    list_plugins(session, ROLE_A)
    list_plugins(session, ROLE_B)
    list_plugins(session, None)
    seen = [(r["account"], r.get("role"), r.get("session")) for r in calls(handle, "qbusiness")]
    assert seen == [
        ("111111111111", ROLE_A.arn, "q-operator-ns-1"),
        ("222222222222", ROLE_B.arn, "q-operator-ns-2"),
        ("123456789012", None, None),
    ]
    assumed = calls(handle, "sts")
    assert [r.get("assumedRole") for r in assumed] == [ROLE_A.arn, ROLE_B.arn]
    assert all(r["account"] == "123456789012" for r in assumed)  # STS is called as the operator itself


def test_credentials_are_reused_until_due_then_renewed(aws: tuple[AwsHandle, AwsSession]) -> None:
    handle, session = aws
    list_plugins(session, ROLE_A)
    list_plugins(session, ROLE_A)
    assert len(calls(handle, "sts")) == 1
    time.sleep(1.5)  # past two thirds of the 2-second lifetime
    list_plugins(session, ROLE_A)
    assert len(calls(handle, "sts")) == 2
    assert all(r["status"] == 200 for r in calls(handle, "qbusiness"))


def test_expired_token_is_renewed_and_the_call_resent_once(aws: tuple[AwsHandle, AwsSession]) -> None:
    """AWS's clock says the credentials expired before ours does: the call is answered
    ExpiredTokenException, the credentials are renewed, the call is resent once and succeeds."""
    handle, session = aws
    session._credentials[ROLE_A] = RoleCredentials(ROLE_A, session._assume, clock=lambda: time.time() - 3600)
    list_plugins(session, ROLE_A)
    time.sleep(2.2)  # the stand-in now refuses them; this process's (late) clock does not know
    answer = list_plugins(session, ROLE_A)
    assert answer["plugins"] == []
    tail = [(r["operation"], r["status"], r.get("error")) for r in handle.requests()[-3:]]
    assert tail == [
        ("ListPlugins", 403, "ExpiredTokenException"),
        ("AssumeRole", 200, None),
        ("ListPlugins", 200, None),
    ]


def test_a_role_that_cannot_be_assumed_fails_before_any_service_call(
    aws: tuple[AwsHandle, AwsSession],
) -> None:
    handle, session = aws
    stranger = Role("arn:aws:iam::333333333333:role/q-operator-tenant-c")
    with pytest.raises(AssumeRoleFailed) as failed:
        list_plugins(session, stranger)
    assert stranger.arn in failed.value.message and "AccessDenied" in failed.value.message
    with pytest.raises(AssumeRoleFailed):
        list_plugins(session, stranger)
    assert calls(handle, "qbusiness") == [] and len(calls(handle, "sts")) == 1


def test_limiter_buckets_are_per_account(aws: tuple[AwsHandle, AwsSession]) -> None:
    _, session = aws
    list_plugins(session, ROLE_A)
    list_plugins(session, ROLE_B)
    keys = set(session.limiter._buckets)
    assert ("qbusiness", "us-east-1", "ListPlugins", "111111111111") in keys
    assert ("qbusiness", "us-east-1", "ListPlugins", "222222222222") in keys


def test_the_operators_own_account_is_learned_once(aws: tuple[AwsHandle, AwsSession]) -> None:
    handle, session = aws
    assert asyncio.run(session.account(None)) == "123456789012"
    assert asyncio.run(session.account(None)) == "123456789012"
    assert [r["operation"] for r in calls(handle, "sts")] == ["GetCallerIdentity"]


def test_the_operators_own_account_asked_at_once_is_one_answer_for_all(
    aws: tuple[AwsHandle, AwsSession],
) -> None:
    """Objects whose first cycles start together (a restart) all ask for the operator's own account
    while the first GetCallerIdentity is on its way: they wait for its answer, rather than take "not
    learned" for an answer (AccountUnknown, a 60 s wait, with no failure anywhere)."""
    handle, session = aws
    handle.configure(latency_ms=300)

    async def together() -> list[str | None]:
        return list(await asyncio.gather(*(session.account(None) for _ in range(2))))

    assert asyncio.run(together()) == ["123456789012", "123456789012"]
    assert [r["operation"] for r in calls(handle, "sts")] == ["GetCallerIdentity"]


def test_a_throttled_assume_role_says_throttled_not_refused(aws: tuple[AwsHandle, AwsSession]) -> None:
    """STS answered Throttling (its quota is the operator's own account's): the namespace's objects
    wait seconds, reason Throttled, not the minutes of a refusal."""
    handle, session = aws
    handle.configure(throttle={"sts:AssumeRole": 0.001})  # one call, then none for 1,000 s
    list_plugins(session, ROLE_B)  # the bucket's one token (the operator's own account's quota)
    with pytest.raises(AssumeRoleFailed) as throttled:
        list_plugins(session, ROLE_A)
    assert throttled.value.reason == "Throttled" and throttled.value.delay < 60, throttled.value
    assert "Throttling" in throttled.value.message
