"""Shared pieces of the AWS stand-in tests: one server per test module, boto3 clients against it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config

from q_operator.emulate.aws.services.registry import SERVICES
from q_operator.emulate.aws.testing import AwsHandle, running_aws

ACCOUNT = "123456789012"
LAMBDA_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:connector"
BUILD_SECONDS = 0.2

OPERATIONS = {service.name: list(service.handlers) for service in SERVICES}
"""Every operation the stand-in serves, per service (from its registry)."""


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
