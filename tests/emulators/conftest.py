"""Fixtures of the stand-in tests, shared by every test module in this folder."""

from tests.emulators.aws_support import aws, aws_server, client  # noqa: F401
