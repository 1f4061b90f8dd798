"""Fixtures shared by the unit tests that talk to the AWS stand-in over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from q_operator.emulate.aws.testing import AwsHandle, running_aws


@pytest.fixture(scope="module")
def server() -> Iterator[AwsHandle]:
    """One AWS stand-in per test module."""
    with running_aws() as handle:
        yield handle


@pytest.fixture
def aws(server: AwsHandle) -> AwsHandle:
    """The module's stand-in, emptied for each test."""
    server.reset()
    return server
