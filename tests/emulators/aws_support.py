"""Shared pieces of the AWS stand-in tests: one server per test module, boto3 clients against it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape

from q_operator.emulate.aws.services.registry import SERVICES
from q_operator.emulate.aws.testing import AwsHandle, running_aws

ACCOUNT = "123456789012"
LAMBDA_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:connector"
BUILD_SECONDS = 0.2

OPERATIONS = {service.name: list(service.handlers) for service in SERVICES}
"""Every operation the stand-in serves, per service (from its registry)."""

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SAMPLES = {
    "[a-zA-Z0-9][a-zA-Z0-9-]{35}": UUID,
    "[a-zA-Z0-9][a-zA-Z0-9_-]*": "plugin-1",
    r"arn:[a-z0-9-\.]{1,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[^/].{0,1023}": (
        "arn:aws:iam::123456789012:role/r"
    ),
    r"(https?|ftp|file)://([^\s]*)": "https://example.com/api",
    r"arn:[a-z0-9-\.]{1,63}:sso::\d{12}:application/(sso)?ins-[a-zA-Z0-9-.]{16}/apl-[a-zA-Z0-9]{16}": (
        "arn:aws:sso::123456789012:application/ssoins-1234567890abcdef/apl-1234567890abcdef"
    ),
    r"[a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9]": "my-bucket",
    "[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}": UUID,
    r"[\da-f]{8}-[\da-f]{4}-[45][\da-f]{3}-[89ABab][\da-f]{3}-[\da-f]{12}": UUID,
    "[a-zA-Z0-9_]+( [a-zA-Z0-9_]+)*": "Sales team",
    "#([A-Fa-f0-9]{3}|[A-Fa-f0-9]{6})": "#a1b2c3",
    r"[a-zA-Z0-9][\w!@#.-]+": "label-1",
    r"[\s\w/!@#+=.-]*": "a description",
    "arn:aws:.*:.*:[0-9]+:.*": "arn:aws:lambda:us-east-1:123456789012:function:f",
    "[ -~]+": "token-1",
    r"\S+": "token",
    "^(?!aws:)[a-zA-Z+-=._:/]+$": "team",
    r"[\s\w+-=\.:/@]*": "blue",
    # sts
    "[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u0085\\u00A0-\\uD7FF\\uE000-\\uFFFD\\u10000-\\u10FFFF]+": (
        "arn:aws:iam::123456789012:role/r"
    ),
    r"[\w+=,.@-]*": "session-1",
    "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+": '{"Version":"2012-10-17"}',
    r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+": "team",
    r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*": "blue",
    r"[\w+=,.@:\/-]*": "external-1",
    r"[\w+=/:,.@-]*": "arn:aws:iam::123456789012:mfa/user",
    r"[\d]*": "123456",
}
"""One valid value per pattern the operations use: `valid` fails on a pattern missing here, and a
new service whose model has a pattern not seen yet adds its sample."""


def valid(shape: Shape) -> Any:
    """A valid value for a shape: every member set (unions: the first), lists and maps of one."""
    if isinstance(shape, StructureShape):
        members = list(shape.members.items())
        if shape.is_tagged_union:
            members = members[:1]
        return {name: valid(member) for name, member in members}
    if isinstance(shape, ListShape):
        return [] if shape.metadata.get("max") == 0 else [valid(shape.member)]
    if isinstance(shape, MapShape):
        return {valid(shape.key): valid(shape.value)}
    meta = shape.metadata
    if isinstance(shape, StringShape) and shape.enum:
        return shape.enum[0]
    if shape.type_name == "string":
        if "pattern" in meta:
            assert meta["pattern"] in SAMPLES, f"add a valid sample for pattern {meta['pattern']!r}"
            return SAMPLES[meta["pattern"]]
        return "x" * max(meta.get("min", 1), 1)
    if shape.type_name in ("integer", "long"):
        return meta.get("min", 1) or 1
    if shape.type_name == "boolean":
        return True
    raise AssertionError(f"no valid value for {shape.type_name}")


def valid_input(service: str, operation: str) -> dict[str, Any]:
    """A request every member of which is set and valid (unions: their first member)."""
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    request: dict[str, Any] = valid(shape) if shape is not None else {}
    request.pop("nextToken", None)  # tokens are opaque: only the server's own are valid
    return request


def wire_error_code(service: str, error: str) -> str:
    """The code a client sees for a modelled error shape (query services use the shape's `code`)."""
    model = botocore.session.get_session().get_service_model(service)
    if model.protocol == "query" and error in model.shape_names:
        return str(model.shape_for(error).metadata.get("error", {}).get("code", error))
    return error


def validation_code(service: str) -> str:
    """ValidationException, or ValidationError for a query service (STS)."""
    model = botocore.session.get_session().get_service_model(service)
    return "ValidationError" if model.protocol == "query" else "ValidationException"


@pytest.fixture(scope="module")
def aws_server() -> Iterator[AwsHandle]:
    with running_aws(build_seconds=BUILD_SECONDS) as handle:
        yield handle


@pytest.fixture()
def aws(aws_server: AwsHandle) -> Iterator[AwsHandle]:
    """A clean stand-in for each test (resources, log and config reset to the start)."""
    aws_server.reset()
    yield aws_server


def make_client(url: str, service: str, *, validate: bool = True, region: str = "us-east-1") -> Any:
    """A plain boto3 client with throwaway credentials and no retries (tests see 429s directly)."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
        ),
    )


@pytest.fixture()
def client(aws: AwsHandle) -> Callable[..., Any]:
    def make(service: str, **kwargs: Any) -> Any:
        return make_client(aws.url, service, **kwargs)

    return make


def new_id() -> str:
    return str(uuid.uuid4())


def error_code(exc: Any) -> str:
    return str(exc.response["Error"]["Code"])
