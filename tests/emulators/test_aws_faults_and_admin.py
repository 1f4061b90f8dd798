"""Fault injection, the admin API, the wire format's edges, and the CLI of the AWS stand-in."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.config import Knobs, Settings
from q_operator.emulate.aws.core import served
from q_operator.emulate.aws.server import parse_args
from q_operator.emulate.aws.services.registry import SERVICES
from q_operator.emulate.aws.testing import AwsHandle
from q_operator.sandbox import wait_for
from tests.emulators.aws_support import (
    OPERATIONS,
    error_code,
    make_client,
    new_id,
    valid_input,
    wire_error_code,
)


def modelled_errors() -> list[tuple[str, str, str, int, list[str]]]:
    """(service, an operation raising it, error, status, required members) per error shape in use."""
    out: dict[tuple[str, str], tuple[str, str, str, int, list[str]]] = {}
    for service, operations in OPERATIONS.items():
        model = botocore.session.get_session().get_service_model(service)
        for operation in operations:
            for shape in model.operation_model(operation).error_shapes:
                status = shape.metadata["error"]["httpStatusCode"]
                out.setdefault(
                    (service, shape.name), (service, operation, shape.name, status, shape.required_members)
                )
    return sorted(out.values())


ERRORS = modelled_errors()


@pytest.mark.parametrize(
    "service,operation,error,status,required", ERRORS, ids=[f"{e[0]}.{e[2]}" for e in ERRORS]
)
def test_every_modelled_error_reaches_boto3_with_its_code_status_and_members(
    aws: AwsHandle, client: Callable[..., Any], service: str, operation: str, error: str, status: int,
    required: list[str],
) -> None:  # fmt: skip
    aws.configure(inject=[{"operation": f"{service}:{operation}", "error": error}])
    call = getattr(client(service), botocore.xform_name(operation))
    with pytest.raises(ClientError) as raised:
        call(**valid_input(service, operation))
    response = raised.value.response
    assert error_code(raised.value) == wire_error_code(service, error)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Message"]
    for member in required:
        assert member in response or member == "message", member


def test_a_star_rate_limits_each_operation_and_refills(aws: AwsHandle, client: Callable[..., Any]) -> None:
    aws.configure(throttle={"*": 5})
    qb = client("qbusiness")
    app = new_id()
    codes = []
    for _ in range(8):
        try:
            qb.list_plugins(applicationId=app)
            codes.append(200)
        except ClientError as exc:
            codes.append(exc.response["ResponseMetadata"]["HTTPStatusCode"])
    assert codes.count(429) >= 2 and codes[:5] == [200] * 5
    # another operation has its own bucket:
    with pytest.raises(ClientError) as raised:
        qb.get_plugin(applicationId=app, pluginId=new_id())
    assert error_code(raised.value) == "ResourceNotFoundException"

    def passes() -> bool:
        try:
            qb.list_plugins(applicationId=app)
        except ClientError:
            return False
        return True

    wait_for("calls to pass again", passes, timeout=3, interval=0.02)


def test_time_boxed_throttling_throttles_then_stops(aws: AwsHandle, client: Callable[..., Any]) -> None:
    aws.configure(throttle_percent=100, throttle_for_seconds=0.5)
    af = client("appflow")
    with pytest.raises(ClientError) as raised:
        af.list_connectors()
    assert error_code(raised.value) == "ThrottlingException"

    def passes() -> bool:
        try:
            af.list_connectors()
        except ClientError:
            return False
        return True

    wait_for("calls to pass again", passes, timeout=3, interval=0.02)


def test_latency_is_added_to_every_answer(aws: AwsHandle, client: Callable[..., Any]) -> None:
    aws.configure(latency_ms=150)
    af = client("appflow")
    started = time.monotonic()
    af.list_connectors()
    assert time.monotonic() - started >= 0.15


def test_the_request_log_lists_every_call_with_status_and_client_token(
    aws: AwsHandle, client: Callable[..., Any]
) -> None:
    qb = client("qbusiness")
    app = new_id()
    qb.create_plugin(
        applicationId=app,
        displayName="p",
        type="JIRA",
        authConfiguration={"noAuthConfiguration": {}},
        clientToken="token-7",
    )
    with pytest.raises(ClientError):
        qb.get_plugin(applicationId=app, pluginId=new_id())
    calls = aws.requests()
    assert [(c["service"], c["operation"], c["status"]) for c in calls] == [
        ("qbusiness", "CreatePlugin", 200),
        ("qbusiness", "GetPlugin", 404),
    ]
    assert calls[0]["clientToken"] == "token-7"
    assert calls[0]["region"] == "us-east-1"
    assert isinstance(calls[0]["time"], float)
    aws.clear_requests()
    assert aws.requests() == []


def test_state_dump_and_reset(aws: AwsHandle, client: Callable[..., Any]) -> None:
    client("appflow").register_connector(
        connectorLabel="c1",
        connectorProvisioningConfig={"lambda": {"lambdaArn": "arn:aws:lambda:x:1:function:f"}},
    )
    aws.configure(fail_rate=0.5)
    state = aws.state()
    assert [c["label"] for c in state["123456789012/us-east-1"]["connectors"]] == ["c1"]
    aws.reset()
    assert aws.state() == {} and aws.requests() == []
    assert aws.configure()["fail_rate"] == 0.0


def test_bad_admin_config_is_refused_with_400(aws: AwsHandle) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        aws.configure(no_such_knob=1)
    assert raised.value.code == 400


def raw_call(
    url: str, method: str, path: str, body: bytes, service: str = "qbusiness"
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + path, data=body, method=method)
    request.add_header(
        "Authorization", f"AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/{service}/aws4_request"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_malformed_json_and_wrong_types_cannot_be_parsed(aws: AwsHandle) -> None:
    path = f"/applications/{new_id()}/plugins"
    status, body = raw_call(aws.url, "POST", path, b"{not json")
    assert (status, body["reason"]) == (400, "CANNOT_PARSE")
    wrong = json.dumps({"displayName": 5, "type": "JIRA", "authConfiguration": {"noAuthConfiguration": {}}})
    status, body = raw_call(aws.url, "POST", path, wrong.encode())
    assert (status, body["reason"]) == (400, "CANNOT_PARSE")
    assert "Value at 'displayName'" in body["message"]


def test_an_operation_that_is_not_emulated_is_unknown(aws: AwsHandle, client: Callable[..., Any]) -> None:
    with pytest.raises(ClientError) as raised:
        client("qbusiness").list_applications()
    assert error_code(raised.value) == "UnknownOperationException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_aws_endpoint_url_in_the_environment_is_enough(
    aws: AwsHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore 1.44 reads AWS_DEFAULT_REGION, not AWS_REGION.
    for name, value in {"AWS_ENDPOINT_URL": aws.url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for service in SERVICES:
        session = boto3.session.Session()
        assert session.client(service.name).meta.endpoint_url == aws.url
    assert boto3.session.Session().client("appflow").list_connectors()["connectors"] == []


def test_cli_flags_become_settings() -> None:
    settings, port = parse_args(
        ["--port", "0", "--build-seconds", "0.2", "--throttle", "CreatePlugin=5", "--throttle", "*=50",
         "--fail-rate", "0.1", "--latency-ms", "20", "--known-applications", "a,b",
         "--account-id", "111122223333"]
    )  # fmt: skip
    assert port == 0
    shown = settings.to_json()
    assert shown["build_seconds"] == 0.2
    assert settings.throttle == {"CreatePlugin": 5.0, "*": 50.0}
    assert (settings.fail_rate, settings.latency_ms) == (0.1, 20.0)
    assert shown["known_applications"] == ["a", "b"] and shown["known_instances"] is None
    assert settings.account_id == "111122223333"


STANDIN_DOC = Path(__file__).resolve().parents[2] / "docs" / "aws-standin.md"


def _documented() -> tuple[set[str], set[str]]:
    """The flags and config keys the settings table of docs/aws-standin.md names."""
    text = STANDIN_DOC.read_text()
    table = text[text.index("## Settings") : text.index("## Admin API")]
    flags, keys = set(), set()
    for row in (line for line in table.splitlines() if line.startswith("| ")):
        flag_cell, key_cell = row.split(" | ")[:2]
        flags |= set(re.findall(r"`(--[a-z-]+)", flag_cell))
        keys |= {key.split(".")[0] for key in re.findall(r"`([a-z_.]+)`", key_cell)}
    return flags, keys


def test_every_documented_flag_and_config_key_is_served(capsys: pytest.CaptureFixture[str]) -> None:
    """Moving a service's knobs into its module keeps every flag and key the docs promise."""
    flags, keys = _documented()
    assert "--plugins-per-application" in flags and "broken_lambdas" in keys  # the table was read
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    served_flags = set(re.findall(r"(--[a-z-]+)", capsys.readouterr().out)) - {"--help", "--port"}
    assert flags == served_flags
    shown = parse_args([])[0].to_json()
    assert keys - {"throttle_for_seconds"} <= set(shown)  # a duration, shown as throttle_until
    assert set(shown["quotas"]) == {
        "plugins_per_application",
        "library_items_per_instance",
        "connectors_per_region",
    }


def test_the_flags_of_a_service_set_its_config_keys() -> None:
    settings, _ = parse_args(
        ["--plugins-per-application", "3", "--known-apps", "x, y", "--known-lambdas", "",
         "--fail-builds-matching", "doomed", "--assumable-role", "arn:aws:iam::111122223333:role/a"]
    )  # fmt: skip
    shown = settings.to_json()
    assert shown["quotas"] == {
        "plugins_per_application": 3,
        "library_items_per_instance": 1000,
        "connectors_per_region": 100,
    }
    assert (shown["known_apps"], shown["known_lambdas"], shown["known_instances"]) == (["x", "y"], [], None)
    assert shown["fail_builds_matching"] == "doomed"
    assert shown["assumable_roles"] == {"arn:aws:iam::111122223333:role/a": None}
    with pytest.raises(SystemExit):
        parse_args(["--assumable-role", "team-a"])


def test_a_service_may_not_take_a_key_another_one_has() -> None:
    """Each config key belongs to one place: the generic settings or one service's knobs."""
    settings = served()
    for service in SERVICES:
        with pytest.raises(ValueError, match="taken"):
            settings.add(f"copy-of-{service.name}", service.knobs())
    with pytest.raises(ValueError, match="taken"):
        Settings().add("greedy", _Greedy())


@dataclass
class _Greedy(Knobs):
    seed: int = 0
    PARSE = {"seed": int}


def test_the_cli_prints_ready_serves_boto3_and_exits_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "q_operator", "emulate", "aws", "--port", "0", "--account-id", "111122223333"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split(" ", 1)[1]
        arn = make_client(url, "appflow").register_connector(
            connectorLabel="c1",
            connectorProvisioningConfig={"lambda": {"lambdaArn": "arn:aws:lambda:x:1:function:f"}},
        )["connectorArn"]
        assert ":111122223333:" in arn
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_an_injected_error_must_be_modelled(aws: AwsHandle) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        aws.configure(inject=[{"operation": "qbusiness:GetPlugin", "error": "NoSuchErrorException"}])
    assert raised.value.code == 400


def test_a_seed_makes_random_faults_repeatable(aws: AwsHandle, client: Callable[..., Any]) -> None:
    af = client("appflow")

    def outcomes() -> list[int]:
        aws.configure(seed=7, fail_rate=0.5)
        aws.clear_requests()
        for _ in range(12):
            with contextlib.suppress(ClientError):
                af.list_connectors()
        return [c["status"] for c in aws.requests()]

    first = outcomes()
    assert 500 in first and 200 in first
    assert outcomes() == first
    assert {c.get("error") for c in aws.requests() if c["status"] == 500} == {"InternalServerException"}


def test_several_violations_are_reported_together(aws: AwsHandle, client: Callable[..., Any]) -> None:
    qb = client("qbusiness", validate=False)
    with pytest.raises(ClientError) as raised:
        qb.create_plugin(applicationId=new_id(), displayName="has space", type="NOPE", authConfiguration={})
    response = raised.value.response
    assert response["Error"]["Message"].startswith("3 validation errors detected: Value at 'displayName'")
    assert [f["name"] for f in response["fields"]] == ["displayName", "type", "authConfiguration"]


def test_reset_returns_to_the_settings_the_stand_in_started_with(aws: AwsHandle) -> None:
    aws.configure(build_seconds=9, latency_ms=5)
    aws.reset()
    config = aws.configure()
    assert (config["build_seconds"], config["latency_ms"]) == (0.2, 0.0)


def test_rate_limits_are_per_region(aws: AwsHandle, client: Callable[..., Any]) -> None:
    aws.configure(throttle={"ListConnectors": 1})
    east, west = client("appflow"), client("appflow", region="us-west-2")
    east.list_connectors()
    west.list_connectors()
    with pytest.raises(ClientError) as raised:
        east.list_connectors()
    assert error_code(raised.value) == "ThrottlingException"


def test_the_handle_makes_boto3_clients_for_the_stand_in(aws: AwsHandle) -> None:
    assert aws.client("appflow").list_connectors()["connectors"] == []
    assert aws.requests()[-1]["operation"] == "ListConnectors"
