"""The AWS edge: every HTTP call goes through the rate limiter, a throttle slows that operation, the
verb runs in a worker thread, and errors reach the engine unchanged (classified there). A tiny HTTP
server on loopback plays qbusiness, found through AWS_ENDPOINT_URL as botocore does."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from q_operator.engine import metrics
from q_operator.engine.aws import AwsSession
from q_operator.engine.ratelimit import RateLimiter
from tests.unit.engine_fakes import thing_kind

APP = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PLUGIN = "0123abcd-0123-4567-89ab-0123456789ab"
KEY = ("qbusiness", "us-east-1", "GetPlugin")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeQBusiness(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of `replies`."""

    replies: list[tuple[int, dict[str, str], dict[str, Any]]] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, headers, body = self.replies.pop(0) if self.replies else (200, {}, {"pluginId": PLUGIN})
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"content-type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsSession, Clock]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeQBusiness)
    FakeQBusiness.replies, FakeQBusiness.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    clock = Clock()
    aws = AwsSession(RateLimiter(max_rate=4, burst=1, clock=clock, sleep=clock.sleep), concurrency=2)
    try:
        yield aws, clock
    finally:
        aws.close()
        server.shutdown()
        server.server_close()


def get_plugin(adapter: Any) -> Any:
    return adapter.get_plugin(applicationId=APP, pluginId=PLUGIN)


def kind() -> Any:
    info = thing_kind()
    return type(info)(**{**info.__dict__, "service": "qbusiness", "adapter_factory": lambda client: client})


def call(aws: AwsSession) -> Any:
    logger = logging.LoggerAdapter(logging.getLogger("test"), {"obj_kind": "Thing"})
    return asyncio.run(aws.call(kind(), "us-east-1", "observe", get_plugin, logger))


def test_calls_wait_for_the_limiter_and_a_throttle_halves_the_rate(session: tuple[AwsSession, Clock]) -> None:
    aws, clock = session
    throttle = {"x-amzn-errortype": "ThrottlingException", "retry-after": "3"}
    FakeQBusiness.replies = [
        (200, {}, {"pluginId": PLUGIN}),
        (200, {}, {"pluginId": PLUGIN}),
        (429, throttle, {"__type": "ThrottlingException", "message": "slow down"}),
    ]
    before = metrics.AWS_THROTTLES.labels("qbusiness", "GetPlugin")._value.get()
    assert call(aws)["pluginId"] == PLUGIN
    assert call(aws)["pluginId"] == PLUGIN
    assert clock.now == pytest.approx(0.25)  # burst 1, rate 4/s: the second call waited 1/4 s
    with pytest.raises(ClientError) as caught:
        call(aws)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert len(FakeQBusiness.seen) == 3  # no hidden botocore retry of the throttled call
    assert aws.limiter.rate(KEY) == 2
    assert metrics.AWS_THROTTLES.labels("qbusiness", "GetPlugin")._value.get() == before + 1
    waited_from = clock.now
    FakeQBusiness.replies = [(200, {}, {"pluginId": PLUGIN})]
    call(aws)
    assert clock.now - waited_from >= 3  # Retry-After paused the operation


def test_clients_are_cached_per_service_and_region(session: tuple[AwsSession, Clock]) -> None:
    aws, _ = session
    assert aws.client("qbusiness", "us-east-1") is aws.client("qbusiness", "us-east-1")
    assert aws.client("qbusiness", "eu-west-1") is not aws.client("qbusiness", "us-east-1")
    config = aws.client("qbusiness", "us-east-1").meta.config
    assert config.retries["total_max_attempts"] == 1  # the engine owns retries
