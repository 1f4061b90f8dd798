"""The stand-in without HTTP: one `handle()` per request, from raw request parts to a wire answer.

Order per call, as AWS's front door does it: route (signing service, then URI template or query
Action), identify the caller (access key and session token -> account, or ExpiredToken), faults
(access denied, injected errors, throttling, 5xx), parse and validate from the model, then
idempotency and the service's handler against the caller's account and region. A write that acted
may then lose its answer. Every call lands in the request log with its status, account and role.
Nothing here names a service: they come from `services/registry.py`.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from botocore.model import OperationModel, ServiceModel

from q_operator.emulate.aws import query
from q_operator.emulate.aws.call import Call, Handler, Params, Service
from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.errors import ApiError, conflict
from q_operator.emulate.aws.faults import Faults
from q_operator.emulate.aws.identity import CredentialsRefused, Identity, Sessions
from q_operator.emulate.aws.model import Match, Router, service_model
from q_operator.emulate.aws.protocol import WireFormat, protocol_for
from q_operator.emulate.aws.services.registry import BY_NAME, SERVICES
from q_operator.emulate.aws.state import TOKEN_TTL_SECONDS, Remembered, Store, View, fingerprint
from q_operator.emulate.aws.validate import Violation, summarize, validate

log = logging.getLogger(__name__)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
DEFAULT_REGION = "us-east-1"


def credential_scope(authorization: str | None) -> tuple[str, str | None, str | None]:
    """(access key id, region, signing service) from a SigV4 Authorization header."""
    found = _CREDENTIAL.search(authorization or "")
    if found is None:
        return "anonymous", None, None
    return found.group(1), found.group(2), found.group(3)


def _token_member(op: OperationModel) -> str | None:
    shape = op.input_shape
    if shape is None:
        return None
    return next((n for n, m in shape.members.items() if m.metadata.get("idempotencyToken")), None)


@dataclass(frozen=True)
class Endpoint:
    """Everything fixed about one operation of one service, looked up once per process."""

    service: Service[Any, Any]
    model: ServiceModel
    operation: OperationModel
    wire: WireFormat
    handler: Handler[Any, Any] | None
    token_member: str | None
    loses_answers: bool
    """A write of a service that blanket faults reach: its answer may be lost."""


@functools.cache
def endpoint(service: str, operation: str) -> Endpoint:
    served = BY_NAME[service]
    model = service_model(service)
    op = model.operation_model(operation)
    return Endpoint(
        service=served,
        model=model,
        operation=op,
        wire=protocol_for(model),
        handler=served.handlers.get(operation),
        token_member=_token_member(op),
        loses_answers=served.blanket_faults and served.is_write(operation),
    )


def validation_error(violations: list[Violation]) -> ApiError:
    """The modelled ValidationException, with `reason` and per-field `fields` where the model has them."""
    reason = "CANNOT_PARSE" if any(v.type_error for v in violations) else "FIELD_VALIDATION_FAILED"
    fields = [{"name": v.path, "message": v.rule} for v in violations]
    return ApiError("ValidationException", summarize(violations), reason=reason, fields=fields)


@dataclass(frozen=True)
class Incoming:
    """A routed AWS request and who sent it from where."""

    match: Match
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    now: float
    region: str
    access_key: str
    request_id: str


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, and whether the wire must lose it (`reset` / `timeout`) after the call acted."""

    status: int
    headers: dict[str, str]
    body: bytes
    lost: str | None = None


def _is_error(service: str, code: str) -> bool:
    model = service_model(service)
    if model.protocol == "query" and code in query.COMMON_ERRORS:
        return True
    return code in model.shape_names and bool(model.shape_for(code).metadata.get("exception"))


def _log_identity(entry: dict[str, Any], identity: Identity) -> None:
    entry["account"] = identity.account
    entry["principal"] = identity.arn
    if identity.role_arn is not None:
        entry["role"] = identity.role_arn
        entry["session"] = identity.session


def served(settings: Settings | None = None) -> Settings:
    """`settings` (or the defaults) with the knobs of every served service it lacks, at their defaults."""
    out = settings or Settings()
    for service in SERVICES:
        if service.name not in out.services:
            out.add(service.name, service.knobs())
    return out


class Emulator:
    """State, settings and faults of one stand-in; `handle` is called on the server's loop only."""

    def __init__(self, settings: Settings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = served(settings)
        self.router = Router(s.name for s in SERVICES)
        self.store = Store()
        self.sessions = Sessions()
        self.faults = Faults(self.settings)
        self.clock = clock

    def reset(self) -> None:
        """Forget all resources, tokens, issued credentials and logged calls (settings stay)."""
        self.store.clear()
        self.sessions.clear()
        self.faults.reset()

    def restart(self, settings: Settings) -> None:
        """Back to a fresh start with these settings (the object the faults hold is kept)."""
        fresh = copy.deepcopy(settings)
        for f in fields(Settings):
            setattr(self.settings, f.name, getattr(fresh, f.name))
        self.reset()

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply admin config; `seed` reseeds the random choices. Raises ValueError on a bad key.

        Injected errors must be error shapes of the service they name (or of any served service
        when the rule names a bare operation), so a misspelt error fails here, not in a test later.
        """
        for rule in changes.get("inject") or []:
            if not isinstance(rule, dict):
                continue
            service, _, _ = str(rule.get("operation", "")).rpartition(":")
            services = [service] if service else list(self.router.services)
            if not any(_is_error(s, str(rule.get("error"))) for s in services if s in self.router.services):
                raise ValueError(
                    f"config 'inject': {rule.get('error')!r} is not a modelled error of {services}"
                )
        self.settings.apply(changes, self.clock())
        if changes.get("seed") is not None:
            self.faults.seed(int(changes["seed"]))

    def handle(
        self,
        method: str,
        raw_path: str,
        query_args: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Answer:
        """Answer one AWS request. `headers` must have lower-case names."""
        now = self.clock()
        access_key, region, signing = credential_scope(headers.get("authorization"))
        region = region or DEFAULT_REGION
        match = self.router.match(signing, method, raw_path, query_args, body)
        entry: dict[str, Any] = {
            "service": signing or (match.service if match else None),
            "operation": match.operation.name if match else None,
            "status": 0,
            "time": now,
            "region": region,
            "account": self.settings.account_id,
            "method": method,
            "path": raw_path,
            "requestId": str(uuid.uuid4()),
            # Tells the operator's calls (botocore with `q-operator/...`) from the tests' own.
            "userAgent": headers.get("user-agent", ""),
        }
        self.store.requests.append(entry)
        if match is None:
            known = signing if signing in BY_NAME else SERVICES[0].name
            unknown = ApiError(
                "UnknownOperationException", f"No operation matches {method} {raw_path}", http_status=404
            )
            model = service_model(known)
            wire = protocol_for(model).serialize_error(model, unknown, entry["requestId"])
            entry["error"] = protocol_for(model).error_code(model, unknown)
            answer = Answer(*wire)
        else:
            incoming = Incoming(match, query_args, headers, body, now, region, access_key, entry["requestId"])
            answer = self._answer(incoming, entry)
        entry["status"] = answer.status
        answer.headers["x-amzn-RequestId"] = entry["requestId"]
        return answer

    def _answer(self, incoming: Incoming, entry: dict[str, Any]) -> Answer:
        """The call's output, or its error, on the wire; a bug here still answers like AWS."""
        point = endpoint(incoming.match.service, incoming.match.operation.name)
        try:
            output = self._call(point, incoming, entry)
        except Exception as exc:
            if not isinstance(exc, ApiError):
                log.exception("emulator failure in %s", point.operation.name)
                exc = ApiError("InternalServerException", f"emulator bug: {exc}")
            entry["error"] = point.wire.error_code(point.model, exc)
            return Answer(*point.wire.serialize_error(point.model, exc, incoming.request_id))
        answer = Answer(*point.wire.serialize_output(point.operation, output, incoming.request_id))
        if point.loses_answers:
            lost = self.faults.lost_answer(point.service.name, point.operation.name)
            if lost is not None:
                entry["lost"] = lost
                answer = Answer(answer.status, answer.headers, answer.body, lost)
        return answer

    def _identity(self, incoming: Incoming, entry: dict[str, Any]) -> Identity:
        token = incoming.headers.get("x-amz-security-token")
        try:
            identity = self.sessions.resolve(
                incoming.access_key, token, incoming.now, self.settings.account_id
            )
        except CredentialsRefused as refused:
            if refused.identity is not None:
                _log_identity(entry, refused.identity)
            raise
        _log_identity(entry, identity)
        return identity

    def _call(self, point: Endpoint, incoming: Incoming, entry: dict[str, Any]) -> Params:
        service, op, now = point.service, point.operation, incoming.now
        identity = self._identity(incoming, entry)
        trouble = self.faults.check(
            service.name, op.name, incoming.region, now, service.blanket_faults, identity.account
        )
        if trouble is not None:
            raise trouble
        handler = point.handler
        if handler is None:
            raise ApiError(
                "UnknownOperationException", f"{service.name}:{op.name} is not emulated", http_status=404
            )
        params = point.wire.parse_input(
            op, incoming.match.labels, incoming.query, incoming.headers, incoming.body
        )
        token_member = point.token_member
        token = str(params[token_member]) if token_member and params.get(token_member) else None
        if token is not None:
            entry["clientToken"] = token
        if op.input_shape is not None:
            violations = validate(op.input_shape, params)
            if violations:
                raise validation_error(violations)
        view = View(now, self.faults.draw_lag)
        scope = None
        backend = None
        if service.stateful:
            scope = self.store.scope(identity.account, incoming.region)
            backend = scope.backends.get(service.name)
            if backend is None:
                backend = scope.backends[service.name] = service.backend()
        knobs = self.settings.services[service.name]
        call = Call(service.name, op.name, identity, incoming.region, view, backend, knobs, self.sessions)
        try:
            if token is None or token_member is None or scope is None:
                return handler(call, params)
            # Idempotency: the first answer to a token is the answer to every same-input retry of it.
            key = (service.name, op.name, token)
            digest = fingerprint(params, token_member)
            seen = scope.tokens.get(key)
            if seen is not None and seen.expires > now:
                if seen.fingerprint == digest:
                    return seen.output
                raise conflict(
                    token, "ClientToken", f"clientToken {token} was already used with different parameters"
                )
            output = handler(call, params)
            scope.tokens[key] = Remembered(digest, output, now + TOKEN_TTL_SECONDS)
            return output
        finally:
            entry.update(call.log)
            if view.lagged:
                entry["lagged"] = view.lagged
            if view.visible_after > 0:
                entry["visibleAfter"] = round(view.visible_after, 3)

    def dump_state(self) -> dict[str, Any]:
        """Every resource of every account/region, as JSON (builds settled first)."""
        now = self.clock()
        out: dict[str, Any] = {}
        for (account, region), scope in self.store.scopes.items():
            merged: dict[str, Any] = {}
            for service in SERVICES:
                if service.dump is None:
                    continue
                backend = scope.backends.get(service.name)
                if backend is None:
                    backend = scope.backends[service.name] = service.backend()
                merged.update(service.dump(backend, now))
            merged["clientTokens"] = len(scope.tokens)
            out[f"{account}/{region}"] = merged
        return out
