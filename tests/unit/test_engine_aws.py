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
from q_operator.engine.ratelimit import SLOW_START_STEP, RateLimiter
from q_operator.registry import KINDS
from tests.unit.engine_fakes import thing_kind

APP = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PLUGIN = "0123abcd-0123-4567-89ab-0123456789ab"
KEY = ("qbusiness", "us-east-1", "GetPlugin", "")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
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
    limiter = RateLimiter(4, burst=1, clock=clock, sleep=clock.sleep)
    aws = AwsSession(limiter, concurrency=2, sleep=clock.async_sleep)
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


THROTTLE = (429, {"x-amzn-errortype": "ThrottlingException", "retry-after": "3"}, {"message": "slow down"})


def test_calls_wait_for_the_limiter(session: tuple[AwsSession, Clock]) -> None:
    """Burst 1 at 4/s: the second call waits a quarter of a second for its token."""
    aws, clock = session
    assert call(aws)["pluginId"] == PLUGIN
    assert call(aws)["pluginId"] == PLUGIN
    assert clock.now == pytest.approx(0.25)


def test_a_throttled_call_is_resent_after_retry_after_at_a_lower_rate(
    session: tuple[AwsSession, Clock],
) -> None:
    """A throttle was not executed: it is resent once the limiter allows, Retry-After honoured."""
    aws, clock = session
    FakeQBusiness.replies = [THROTTLE]
    before = metrics.AWS_THROTTLES.labels("qbusiness", "GetPlugin")._value.get()
    assert call(aws)["pluginId"] == PLUGIN
    assert len(FakeQBusiness.seen) == 2 and clock.now >= 3
    # halved (nothing measured, so no limit learned), then one success grows it as from the start
    assert 2.0 <= aws.limiter.rate(KEY) <= 2.0 + SLOW_START_STEP and aws.limiter.bucket(KEY).limit is None
    assert metrics.AWS_THROTTLES.labels("qbusiness", "GetPlugin")._value.get() == before + 1


def test_persistent_throttling_reaches_the_engine_after_a_bounded_number_of_sends(
    session: tuple[AwsSession, Clock],
) -> None:
    """After 1 + throttle_retries sends the engine gets the throttle (and requeues with jitter)."""
    aws, _ = session
    FakeQBusiness.replies = [THROTTLE] * 10
    with pytest.raises(ClientError) as caught:
        call(aws)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert len(FakeQBusiness.seen) == 1 + aws.throttle_retries
    assert aws.limiter.rate(KEY) < 1


def test_server_errors_are_not_resent_by_botocore(session: tuple[AwsSession, Clock]) -> None:
    """5xx goes back to the engine at once: a create without a token must never be sent twice."""
    aws, _ = session
    FakeQBusiness.replies = [(500, {"x-amzn-errortype": "InternalServerException"}, {"message": "boom"})]
    with pytest.raises(ClientError) as caught:
        call(aws)
    assert caught.value.response["Error"]["Code"] == "InternalServerException"
    assert len(FakeQBusiness.seen) == 1


def test_clients_are_cached_per_service_and_region(session: tuple[AwsSession, Clock]) -> None:
    aws, _ = session
    assert aws.client("qbusiness", "us-east-1") is aws.client("qbusiness", "us-east-1")
    assert aws.client("qbusiness", "eu-west-1") is not aws.client("qbusiness", "us-east-1")
    config = aws.client("qbusiness", "us-east-1").meta.config
    assert config.retries["total_max_attempts"] == 1  # the engine owns retries


def test_clients_of_one_identity_share_one_session_and_warm_makes_them_ahead(
    session: tuple[AwsSession, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A boto3 session loads botocore's data once; each further client of the identity is cheap.
    `warm` makes the operator's own clients at startup; without a region it leaves them for later."""
    aws, _ = session
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    services = [kind.service for kind in KINDS]
    aws.warm(services)
    assert {key[0] for key in aws._clients} >= set(services)
    assert aws.client("qbusiness", "us-east-1") is aws._clients[("qbusiness", "us-east-1", None)]
    aws.client(services[-1], "eu-west-1")
    assert list(aws._sessions) == [None], "one session for the operator's own identity"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    aws.warm(["qbusiness"])  # no region: nothing made, nothing raised
    assert ("qbusiness", None, None) not in aws._clients
