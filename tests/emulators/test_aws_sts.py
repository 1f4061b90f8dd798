"""STS through boto3: AssumeRole into configured roles only, ExternalId, expiry, who-am-I, the query
wire format (XML answers and errors) and what the request log records about identities."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.server import parse_args
from q_operator.emulate.aws.testing import AwsHandle
from q_operator.sandbox import wait_for
from tests.emulators.aws_support import ACCOUNT, error_code

ROLE_A = "arn:aws:iam::111122223333:role/team-a"
ROLE_B = "arn:aws:iam::444455556666:role/tenants/team-b"
NO_AUTH = {"noAuthConfiguration": {}}


def assume(aws: AwsHandle, role: str = ROLE_A, session: str = "ns-a", **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = aws.client("sts").assume_role(RoleArn=role, RoleSessionName=session, **extra)
    return answer


def refusal(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (
        error_code(raised.value),
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_an_assumable_role_gives_credentials_of_its_account(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A])
    answer = assume(aws)
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and len(credentials["AccessKeyId"]) == 20
    assert credentials["SecretAccessKey"] and credentials["SessionToken"]
    lifetime = credentials["Expiration"] - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=59) < lifetime <= dt.timedelta(hours=1)
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111122223333:assumed-role/team-a/ns-a"
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":ns-a")
    me = aws.client("sts", credentials=credentials).get_caller_identity()
    assert (me["Account"], me["Arn"]) == ("111122223333", answer["AssumedRoleUser"]["Arn"])


def test_base_credentials_are_the_default_account(aws: AwsHandle) -> None:
    me = aws.client("sts").get_caller_identity()
    assert (me["Account"], me["Arn"], me["UserId"]) == (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/test", "test")


def test_a_role_not_configured_is_access_denied_in_sts_words(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A])
    code, status, message = refusal(lambda: assume(aws, ROLE_B))
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/test is not authorized to perform: sts:AssumeRole "
        f"on resource: {ROLE_B}"
    )


def test_a_role_requiring_an_external_id_wants_exactly_it(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[f"{ROLE_B}:tenant:b-42"])  # an ExternalId may hold colons
    assert aws.configure()["assumable_roles"] == {ROLE_B: "tenant:b-42"}
    assert refusal(lambda: assume(aws, ROLE_B))[:2] == ("AccessDenied", 403)
    assert refusal(lambda: assume(aws, ROLE_B, ExternalId="tenant:b-43"))[:2] == ("AccessDenied", 403)
    answer = assume(aws, ROLE_B, ExternalId="tenant:b-42")
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::444455556666:assumed-role/team-b/ns-a"


def test_an_external_id_sent_to_a_role_that_requires_none_is_ignored(aws: AwsHandle) -> None:
    aws.configure(assumable_roles={ROLE_A: None})
    assert assume(aws, ExternalId="whatever")["Credentials"]["AccessKeyId"]


@pytest.mark.parametrize("service", ["qbusiness", "qapps", "appflow"])
def test_expired_credentials_get_expired_token_exception(aws: AwsHandle, service: str) -> None:
    aws.configure(assumable_roles=[ROLE_A], credential_lifetime=0.5)
    credentials = assume(aws)["Credentials"]
    client = aws.client(service, credentials=credentials)
    calls = {
        "qbusiness": lambda: client.list_plugins(applicationId=str(uuid.uuid4())),
        "qapps": lambda: client.list_library_items(instanceId="i-1"),
        "appflow": lambda: client.list_connectors(),
    }
    call = calls[service]
    call()  # fresh credentials work

    def expired() -> bool:
        try:
            call()
        except ClientError as exc:
            return error_code(exc) == "ExpiredTokenException"
        return False

    wait_for("the credentials to expire", expired, timeout=10)
    code, status, message = refusal(call)
    assert (code, status, message) == (
        "ExpiredTokenException",
        403,
        "The security token included in the request is expired",
    )
    last = aws.requests()[-1]
    assert (last["account"], last["role"], last["session"]) == ("111122223333", ROLE_A, "ns-a")
    assert last["error"] == "ExpiredTokenException"


def test_expired_credentials_in_sts_are_expired_token(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A], credential_lifetime=0.3)
    sts = aws.client("sts", credentials=assume(aws)["Credentials"])

    def expired() -> bool:
        try:
            sts.get_caller_identity()
        except ClientError as exc:
            return error_code(exc) == "ExpiredToken"
        return False

    wait_for("the credentials to expire", expired, timeout=10)
    assert refusal(sts.get_caller_identity)[:2] == ("ExpiredToken", 403)


def test_a_shorter_duration_seconds_wins_over_the_lifetime(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A], credential_lifetime=7200)
    expiration = assume(aws, DurationSeconds=900)["Credentials"]["Expiration"]
    assert expiration - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=900)


def test_a_session_token_the_stand_in_did_not_issue_is_invalid(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A])
    credentials = dict(assume(aws)["Credentials"])
    forged = aws.client("appflow", credentials={**credentials, "SessionToken": "forged"})
    assert refusal(forged.list_connectors)[:2] == ("UnrecognizedClientException", 403)
    unknown = aws.client("appflow", credentials={**credentials, "AccessKeyId": "ASIAUNKNOWN000000000"})
    assert refusal(unknown.list_connectors)[:2] == ("UnrecognizedClientException", 403)
    sts = aws.client("sts", credentials={**credentials, "SessionToken": "forged"})
    assert refusal(sts.get_caller_identity)[:2] == ("InvalidClientTokenId", 403)


def test_query_members_are_parsed_and_checked_from_the_model(aws: AwsHandle) -> None:
    """Lists of structures (`Tags.member.1.Key`) reach the validator, which answers ValidationError."""
    aws.configure(assumable_roles=[ROLE_A])
    sts = aws.client("sts", parameter_validation=False)
    sts.assume_role(
        RoleArn=ROLE_A,
        RoleSessionName="ns-a",
        Tags=[{"Key": "team", "Value": "a"}, {"Key": "équipe", "Value": "日本"}],
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
        TransitiveTagKeys=[],
    )
    with pytest.raises(ClientError) as raised:
        sts.assume_role(RoleArn=ROLE_A, RoleSessionName="ns a", Tags=[{"Key": "a*b", "Value": "v"}])
    response = raised.value.response
    assert (error_code(raised.value), response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ValidationError",
        400,
    )
    assert response["Error"]["Message"].startswith("2 validation errors detected: Value at 'RoleSessionName'")
    assert "Value at 'Tags.1.member.Key' failed to satisfy constraint" in response["Error"]["Message"]


def test_the_request_log_records_account_role_and_session(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A])
    credentials = assume(aws, session="team-a-ns")["Credentials"]
    aws.client("appflow", credentials=credentials).list_connectors()
    aws.client("appflow").list_connectors()
    sts_call, tenant_call, base_call = aws.requests()
    assert (sts_call["operation"], sts_call["account"], sts_call["assumedRole"]) == (
        "AssumeRole",
        ACCOUNT,
        ROLE_A,
    )
    assert "role" not in sts_call
    assert (tenant_call["account"], tenant_call["role"], tenant_call["session"]) == (
        "111122223333",
        ROLE_A,
        "team-a-ns",
    )
    assert tenant_call["principal"] == "arn:aws:sts::111122223333:assumed-role/team-a/team-a-ns"
    assert (base_call["account"], base_call["principal"]) == (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/test")
    assert "role" not in base_call


def test_blanket_faults_leave_sts_alone_but_named_ones_reach_it(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A], fail_rate=1.0, throttle={"*": 0})
    assume(aws)
    aws.configure(fail_rate=0.0, throttle={"sts:AssumeRole": 0})
    assume(aws)  # a bucket holds one call even at rate 0
    assert refusal(lambda: assume(aws))[:2] == ("Throttling", 400)


def test_reset_forgets_issued_credentials(aws: AwsHandle) -> None:
    aws.configure(assumable_roles=[ROLE_A])
    credentials = assume(aws)["Credentials"]
    aws.reset()
    client = aws.client("appflow", credentials=credentials)
    assert refusal(client.list_connectors)[:2] == ("UnrecognizedClientException", 403)


def test_cli_flags_for_roles_and_lifetime() -> None:
    settings, _ = parse_args(
        ["--assumable-role", ROLE_A, "--assumable-role", f"{ROLE_B}:ext-1", "--credential-lifetime", "20"]
    )
    assert settings.to_json()["assumable_roles"] == {ROLE_A: None, ROLE_B: "ext-1"}
    assert settings.to_json()["credential_lifetime"] == 20.0


def test_a_malformed_role_in_config_is_refused(aws: AwsHandle) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as raised:
        aws.configure(assumable_roles=["arn:aws:iam::1234:role/short-account"])
    assert raised.value.code == 400
