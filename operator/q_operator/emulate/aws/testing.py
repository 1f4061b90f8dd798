"""In-process stand-in for tests: `running_aws()` serves on a background thread and yields a handle.

    with running_aws(build_seconds=0.2) as aws:
        client = aws.client("qbusiness")  # or boto3.client("qbusiness", endpoint_url=aws.url, ...)
        aws.configure(fail_next_builds=1)
        assert aws.requests()[-1]["status"] == 200

The handle talks to the admin API over HTTP, so it is safe from any thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.core import Emulator
from q_operator.emulate.aws.server import start


class AwsHandle:
    """A running stand-in: its URL and its admin API."""

    def __init__(self, url: str, emulator: Emulator) -> None:
        self.url = url
        self.emulator = emulator
        """Direct access, for reading in tests only: it lives on the server thread."""

    def client(
        self,
        service: str,
        region: str = "us-east-1",
        credentials: Mapping[str, Any] | None = None,
        **config: Any,
    ) -> Any:
        """A boto3 client for this stand-in, no retries: the base credentials (`test`, the default
        account), or `credentials` as AssumeRole answered them (AccessKeyId, SecretAccessKey,
        SessionToken). `config` goes to botocore's `Config` (e.g. `parameter_validation=False`).
        """
        import boto3
        from botocore.config import Config

        keys = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
            **keys,
        )

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def configure(self, **changes: Any) -> dict[str, Any]:
        """POST /_emulator/config with these keys; returns the whole config."""
        result: dict[str, Any] = self._admin("POST", "config", changes)
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._admin("GET", "requests")
        return result

    def clear_requests(self) -> None:
        self._admin("DELETE", "requests")

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "state")
        return result

    def reset(self) -> None:
        self._admin("POST", "reset")


@contextmanager
def running_aws(settings: Settings | None = None, **changes: Any) -> Iterator[AwsHandle]:
    """Serve a fresh stand-in on 127.0.0.1 (free port) for the `with` block, then stop it.

    `changes` are admin config keys applied at start, e.g. `build_seconds=0.2`.
    """
    emulator = Emulator(settings or Settings())
    if changes:
        emulator.configure(changes)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    bound: list[int] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            runner, port = await start(emulator, 0)
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            raise
        bound.append(port)
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), daemon=True, name="aws-stand-in"
    )
    thread.start()
    ready.wait(timeout=30)
    if failure or not bound:
        thread.join(timeout=5)
        raise RuntimeError(f"AWS stand-in did not start: {failure}")
    try:
        yield AwsHandle(f"http://127.0.0.1:{bound[0]}", emulator)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
