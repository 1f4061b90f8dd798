"""The engine's way to AWS: cached boto3 clients, adapter verbs run in worker threads, every HTTP
call of a verb behind the rate limiter, with a debug line and metrics around each.

STS calls (AssumeRole, GetCallerIdentity) bypass the limiter on purpose: they are few (one per role
per credential lifetime, at most one a minute for a refused role, one per role at a time; the
operator's own account asked once), counted against the operator's own account's STS quota, not
the tenants' service quotas, and the limiter's hooks would take an AssumeRole made before a verb's
first call for that verb's first operation.

botocore's own retries are off (total_max_attempts 1): the engine owns retries, as requeues with a
delay, so a 5xx or a timeout never turns into hidden resends (a create without a token must never be
sent twice blindly). The one exception is a throttled call: AWS rejected it without executing it, so
`_needs_retry` resends it, at most Q_OPERATOR_AWS_THROTTLE_RETRIES times and each time only when the
rate limiter (slowed down by the throttle) allows; after that the engine sees the throttle.
AWS_ENDPOINT_URL, AWS_REGION and the operator's own credentials are read by botocore itself.

Identities (engine/identity.py): a verb runs as the operator itself or as a namespace's role. A role's
clients sign with `RoleCredentials` (STS AssumeRole, made with the operator's own credentials, renewed
before they expire); a call answered ExpiredToken renews them and is resent once, re-signed — AWS
refused it before acting. Rate-limiter buckets are per account (AWS's quotas are), region and
operation. Nothing here logs request payloads, auth configuration or tokens: only service, operation,
region, outcome and the object's name.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialResolver
from botocore.exceptions import BotoCoreError, ClientError

from q_operator import __version__
from q_operator.engine import metrics
from q_operator.engine.conditions import THROTTLED
from q_operator.engine.errors import ERROR_TABLE, aws_message
from q_operator.engine.identity import ACCOUNT_UNKNOWN_RETRY, AssumeRoleFailed, Issued, Role, RoleCredentials
from q_operator.engine.ratelimit import BucketKey, RateLimiter
from q_operator.kinds.base import Adapter, KindInfo
from q_operator.kinds.common import error_code

T = TypeVar("T")

log = logging.getLogger("q_operator.aws")

#: The object on whose behalf the current worker thread calls AWS (for the per-call debug line).
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "q_operator_object", default=None
)


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def default_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


#: What AWS answers for credentials whose session has expired.
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
#: a verb's first token, taken before a worker thread is, is used only if a thread came within this
#: many seconds; a later call waits for a token of its own
PREPAID_SECONDS = 0.5
#: After a failed GetCallerIdentity, the operator's own account is asked again after this long (as
#: soon as an object whose account check waited for it tries again).
WHOAMI_RETRY = ACCOUNT_UNKNOWN_RETRY


class _Given:
    """A botocore credential provider that hands out one credentials object (a role's)."""

    METHOD = RoleCredentials.method
    CANONICAL_NAME = "q-operator"

    def __init__(self, credentials: RoleCredentials) -> None:
        self.credentials = credentials

    def load(self) -> RoleCredentials:
        return self.credentials


class AwsSession:
    """Implements reconcile's AwsCaller. One client per (service, region, identity), one adapter per
    (kind, region, identity); the identity is a namespace's Role, or None for the operator's own."""

    def __init__(
        self,
        limiter: RateLimiter | None = None,
        concurrency: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session_name: Callable[[Role], str] | None = None,
    ) -> None:
        self.sleep = sleep
        #: the RoleSessionName for a role (the namespaces bound to it: identity.Identities.session_name)
        self.session_name = session_name or (lambda role: "q-operator")
        # Threads, not calls in flight: a thread also waits out a throttled call's resend or the token
        # of a verb's second call. 16 starved a mix of three kinds under throttling (docs/performance.md).
        self.concurrency = concurrency or int(env_float("Q_OPERATOR_AWS_CONCURRENCY", 64))
        self.limiter = limiter or RateLimiter(
            env_float("Q_OPERATOR_AWS_RATE", 10.0),
            env_float("Q_OPERATOR_AWS_BURST", 0) or None,
            ceiling=env_float("Q_OPERATOR_AWS_RATE_MAX", 0) or None,
        )
        #: how many times one throttled HTTP call is resent (paced by the limiter) before the engine
        #: sees the throttle and requeues the object.
        self.throttle_retries = int(env_float("Q_OPERATOR_AWS_THROTTLE_RETRIES", 3))
        self.executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="aws")
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None, Role | None], Any] = {}
        #: one boto3 session per identity: a new session loads botocore's data files again (0.3 s, under
        #: the lock), a client from a loaded one takes a few milliseconds
        self._sessions: dict[Role | None, boto3.session.Session] = {}
        self._adapters: dict[tuple[str, str | None, Role | None], Adapter[Any]] = {}
        #: one credentials object per role (and external id), shared by its clients in every region
        self._credentials: dict[Role, RoleCredentials] = {}
        self._sts: Any = None
        #: the operator's own account (GetCallerIdentity, asked once), and when it was last asked
        self._own_account: str | None = None
        self._own_asked = float("-inf")
        #: (kind, step) → the operation a verb calls first, learned as verbs run.
        self._first_op: dict[tuple[str, str], str] = {}
        #: per (event loop, bucket): verbs waiting for their first token queue here in arrival order
        self._gates: dict[tuple[int, BucketKey], asyncio.Lock] = {}
        #: per event loop: one GetCallerIdentity at a time; who comes meanwhile waits for its answer.
        self._whoami_gates: dict[int, asyncio.Lock] = {}
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # no hidden retries
            connect_timeout=env_float("Q_OPERATOR_AWS_CONNECT_TIMEOUT", 5),
            read_timeout=env_float("Q_OPERATOR_AWS_READ_TIMEOUT", 30),
            max_pool_connections=self.concurrency,
            user_agent_extra=f"q-operator/{__version__}",  # so AWS-side logs can tell our calls apart
        )

    def client(self, service: str, region: str | None, role: Role | None = None) -> Any:
        """A boto3 client (created once, in a worker thread: boto3 sessions are not thread-safe),
        signing as `role` (None: as the operator itself)."""
        region = region or default_region()
        key = (service, region, role)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = self._session(role).client(service, region_name=region, config=self._config)
                events = found.meta.events
                service_id = found.meta.service_model.service_id.hyphenize()
                events.register(f"before-call.{service_id}", functools.partial(self._before_call, role=role))
                events.register(f"needs-retry.{service_id}", functools.partial(self._needs_retry, role=role))
                events.register(f"after-call.{service_id}", functools.partial(self._after_call, role=role))
                self._clients[key] = found
            return found

    def warm(self, services: Iterable[str]) -> None:
        """Make the operator's own clients for these services in the default region now (at startup,
        in a thread), so the first objects' first calls do not wait for botocore to load its models."""
        for service in services:
            try:
                self.client(service, None)
            except Exception as error:  # no region configured, say: made on first use instead
                log.info("AWS client for %s not made ahead: %s", service, error)

    def adapter(self, kind: KindInfo[Any, Any], region: str | None, role: Role | None = None) -> Adapter[Any]:
        key = (kind.kind, region or default_region(), role)
        with self._lock:
            found = self._adapters.get(key)
        if found is None:
            found = kind.adapter_factory(self.client(kind.service, region, role))
            with self._lock:
                self._adapters.setdefault(key, found)
        return found

    # ----- identities

    def credentials(self, role: Role) -> RoleCredentials:
        """The role's credentials, shared by all its clients (call with self._lock held or not)."""
        found = self._credentials.get(role)
        if found is None:
            found = self._credentials.setdefault(role, RoleCredentials(role, self._assume))
        return found

    def _session(self, role: Role | None) -> boto3.session.Session:
        """The identity's boto3 session, made once (call with self._lock held: sessions are not
        thread-safe); a role's signs with the role's credentials."""
        found = self._sessions.get(role)
        if found is None:
            if role is None:
                found = boto3.session.Session()
            else:
                core = botocore.session.Session()
                given = CredentialResolver([_Given(self.credentials(role))])
                core.register_component("credential_provider", given)
                found = boto3.session.Session(botocore_session=core)
            self._sessions[role] = found
        return found

    def _sts_client(self) -> Any:
        """STS with the operator's own credentials: it assumes the namespaces' roles."""
        with self._lock:
            if self._sts is None:
                region = default_region() or "us-east-1"
                self._sts = self._session(None).client("sts", region_name=region, config=self._config)
            return self._sts

    def _assume(self, role: Role) -> Issued:
        """STS AssumeRole, in a worker thread (botocore asks when it signs, or `call` before a verb)."""
        name = self.session_name(role)
        request: dict[str, Any] = {"RoleArn": role.arn, "RoleSessionName": name}
        if role.external_id:
            request["ExternalId"] = role.external_id
        try:
            answer = self._sts_client().assume_role(**request)
        except ClientError as error:
            metrics.AWS_CALLS.labels("sts", "AssumeRole", error_code(error) or "Unknown").inc()
            code = error_code(error)
            rule = ERROR_TABLE.get(code)
            throttled = rule is not None and rule.reason == THROTTLED
            raise AssumeRoleFailed(role, f"{code}: {aws_message(error)}", throttled=throttled) from error
        metrics.AWS_CALLS.labels("sts", "AssumeRole", "OK").inc()
        got = answer["Credentials"]
        log.info("assumed %s as session %s until %s", role.arn, name, got["Expiration"])
        return Issued(
            access_key=got["AccessKeyId"],
            secret_key=got["SecretAccessKey"],
            token=got["SessionToken"],
            issued=time.time(),
            expires=got["Expiration"].timestamp(),
        )

    def _whoami(self) -> str | None:
        """The operator's own account: GetCallerIdentity (needs no IAM permission), asked once."""
        with self._lock:
            if self._own_account is not None or time.monotonic() - self._own_asked < WHOAMI_RETRY:
                return self._own_account
            self._own_asked = time.monotonic()
        try:
            account = str(self._sts_client().get_caller_identity()["Account"])
        except (ClientError, BotoCoreError) as error:
            log.warning("could not learn the operator's own AWS account: %s", error)
            return None
        with self._lock:
            self._own_account = account
        return account

    async def account(self, role: Role | None) -> str | None:
        """The account an identity acts in, once it can act: a role is assumed here if due (raising
        AssumeRoleFailed), its account is its ARN's; the operator's own is asked of STS once."""
        loop = asyncio.get_running_loop()
        if role is not None:
            await loop.run_in_executor(self.executor, self.credentials(role).get_frozen_credentials)
            return role.account
        if self._own_account is not None:
            return self._own_account
        # Not learned yet: a caller coming while it is being asked would take "asked recently, not
        # learned" for a failure (objects restarting together all ask at once): it waits instead.
        async with self._whoami_gates.setdefault(id(loop), asyncio.Lock()):
            if self._own_account is not None:  # learned while this caller waited
                return self._own_account
            return await loop.run_in_executor(self.executor, self._whoami)

    def _label(self, role: Role | None) -> str:
        """The account part of a bucket key ("" for the operator's own until it is known)."""
        return role.account if role is not None else (self._own_account or "")

    async def call(
        self,
        kind: KindInfo[Any, Any],
        region: str | None,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        logger: logging.LoggerAdapter[logging.Logger],
        role: Role | None = None,
    ) -> T:
        """Run one adapter verb in a worker thread, as `role` (None: the operator itself); the
        object's identity rides along for the logs. A role is assumed (or its credentials renewed)
        before the verb's first call, so a role that cannot be assumed fails the verb before any call.

        The token for the verb's first HTTP call (learned from earlier runs of the same kind and step)
        is waited for here, asynchronously, before a worker thread is taken: a thousand creates
        queued behind a slow CreatePlugin limit must not hold every thread while the polls of
        already-created resources wait behind them."""
        fields: dict[str, Any] = dict(logger.extra or {})
        fields["obj_step"] = step
        fields["verb"] = (kind.kind, step)
        first = self._first_op.get((kind.kind, step))
        if first is not None:
            key = (kind.service, region or default_region() or "", first, self._label(role))
            wait = await self._take(key)
            if wait > 0:
                metrics.AWS_WAIT_SECONDS.labels(kind.service).inc(wait)
            fields["prepaid"] = key
            fields["prepaid_at"] = self.limiter.clock()

        def work() -> T:
            _current.set(fields)
            if role is not None:
                self.credentials(role).get_frozen_credentials()  # AssumeRole now if due (or its failure)
            return fn(self.adapter(kind, region, role))

        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            result = await loop.run_in_executor(self.executor, contextvars.copy_context().run, work)
        except Exception as error:
            code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
            logger.debug("aws %s failed after %.3fs: %s", step, time.monotonic() - started, code)
            raise
        logger.debug("aws %s ok in %.3fs", step, time.monotonic() - started)
        return result

    async def _take(self, key: BucketKey) -> float:
        """Wait for a token of `key` without holding a thread; return the seconds waited.

        Waiters queue on a lock (first come, first served) and only the first asks the bucket, again
        after each wait: a token is never promised ahead at a rate a throttle has since lowered, so a
        thousand queued creates slow down at once when AWS says so."""
        loop = asyncio.get_running_loop()
        gate = self._gates.setdefault((id(loop), key), asyncio.Lock())
        started = self.limiter.clock()
        async with gate:
            while (wait := self.limiter.try_take(key)) > 0:
                await self.sleep(wait)
        return self.limiter.clock() - started

    # ----- botocore hooks, in the worker thread, around each HTTP call

    def _key(self, model: Any, context: Mapping[str, Any], role: Role | None) -> BucketKey:
        return (
            str(model.service_model.service_name),
            str(context.get("client_region") or ""),
            str(model.name),
            self._label(role),
        )

    def _before_call(self, model: Any, context: dict[str, Any], role: Role | None = None, **_: Any) -> None:
        client_config = context.get("client_config")
        context["client_region"] = getattr(client_config, "region_name", None) or default_region() or ""
        key = self._key(model, context, role)
        verb = _current.get()
        if verb is not None and "first_seen" not in verb:
            verb["first_seen"] = True
            self._first_op[verb["verb"]] = key[2]
        fresh = verb is not None and self.limiter.clock() - verb.get("prepaid_at", 0.0) <= PREPAID_SECONDS
        if verb is not None and verb.get("prepaid") == key and fresh:
            verb["prepaid"] = None  # its token was taken before the thread was
            waited = 0.0
        else:
            # A token taken long before a thread came free is spent: the verbs that queued for
            # threads meanwhile would otherwise all send at once, far above the rate, when they do.
            if verb is not None:
                verb["prepaid"] = None
            waited = self.limiter.acquire(key)
        if waited:
            metrics.AWS_WAIT_SECONDS.labels(key[0]).inc(waited)
        context["q_operator_started"] = time.monotonic()

    def _needs_retry(
        self,
        response: Any,
        operation: Any,
        attempts: int,
        request_dict: Mapping[str, Any],
        caught_exception: Any = None,
        role: Role | None = None,
        **_: Any,
    ) -> float | None:
        """A throttled call was rejected, not executed, so sending it again is safe even for a create
        without a token. Slow the operation down (halve, pause for Retry-After), wait for the limiter,
        and resend — at most `throttle_retries` times — instead of failing the whole reconcile cycle.
        A role's call answered ExpiredToken was refused before it acted too: its credentials are
        renewed and it is resent once. Nothing else is retried here: 5xx and network errors go back
        to the engine."""
        if caught_exception is not None or not response:
            return None
        http_response, parsed = response
        code = _parsed_code(parsed)
        context = request_dict.get("context", {})
        if code in EXPIRED_CODES and role is not None and not context.get("q_operator_renewed"):
            log.info("credentials of %s expired early; renewing them and resending", role.arn)
            context["q_operator_renewed"] = True  # once per call: a second ExpiredToken is an error
            self.credentials(role).expire()
            return 0.0
        rule = ERROR_TABLE.get(code)
        if rule is None or rule.policy != "throttle":
            return None
        key = self._key(operation, request_dict.get("context", {}), role)
        metrics.AWS_THROTTLES.labels(key[0], key[2]).inc()
        self.limiter.throttled(key, _retry_after(http_response, parsed))
        if attempts > self.throttle_retries:
            return None
        waited = self.limiter.acquire(key)
        if waited:
            metrics.AWS_WAIT_SECONDS.labels(key[0]).inc(waited)
        log.debug(
            "aws call %s.%s throttled (attempt %d); resending after %.2fs", key[0], key[2], attempts, waited
        )
        return 0.0

    def _after_call(
        self,
        http_response: Any,
        parsed: Mapping[str, Any],
        model: Any,
        context: dict[str, Any],
        role: Role | None = None,
        **_: Any,
    ) -> None:
        key = self._key(model, context, role)
        service, region, operation, account = key
        elapsed = time.monotonic() - float(context.get("q_operator_started", time.monotonic()))
        code = _parsed_code(parsed)
        status = int(getattr(http_response, "status_code", 0) or 0)
        metrics.AWS_CALLS.labels(service, operation, code or "OK").inc()
        metrics.AWS_SECONDS.labels(service, operation).observe(elapsed)
        rule = ERROR_TABLE.get(code)
        if (rule is None or rule.policy != "throttle") and status < 500:
            self.limiter.succeeded(key)  # (throttles were fed back per attempt in _needs_retry)
        who = _current.get() or {}
        log.debug(
            "aws call %s.%s account=%s region=%s kind=%s namespace=%s name=%s step=%s status=%s code=%s "
            "%.3fs",
            service,
            operation,
            account or "self",
            region,
            who.get("obj_kind"),
            who.get("obj_namespace"),
            who.get("obj_name"),
            who.get("obj_step"),
            status,
            code or "OK",
            elapsed,
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _parsed_code(parsed: Any) -> str:
    """The error code of a parsed botocore answer ("" when it is no error)."""
    return str(parsed.get("Error", {}).get("Code", "")) if isinstance(parsed, Mapping) else ""


def _retry_after(http_response: Any, parsed: Mapping[str, Any]) -> float | None:
    value = parsed.get("retryAfterSeconds") if isinstance(parsed, Mapping) else None
    if value is None:
        headers = getattr(http_response, "headers", None) or {}
        value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
