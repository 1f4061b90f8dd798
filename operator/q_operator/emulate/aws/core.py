"""The stand-in without HTTP: one `handle()` per request, from raw request parts to a wire answer.

Order per call, as AWS's front door does it: route (signing service + method + URI template),
faults (access denied, injected errors, throttling, 5xx), parse and validate from the model, then
idempotency and the service's handler. Every call lands in the request log with its status.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel

from q_operator.emulate.aws.call import Call, Params
from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.errors import ApiError, conflict
from q_operator.emulate.aws.faults import Faults
from q_operator.emulate.aws.model import Match, Router, service_model
from q_operator.emulate.aws.protocol import Wire, parse_input, serialize_error, serialize_output
from q_operator.emulate.aws.services import qbusiness
from q_operator.emulate.aws.services.registry import HANDLERS
from q_operator.emulate.aws.state import TOKEN_TTL_SECONDS, Remembered, Store, fingerprint
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


@functools.cache
def _token_member(op: OperationModel) -> str | None:
    shape = op.input_shape
    if shape is None:
        return None
    return next((n for n, m in shape.members.items() if m.metadata.get("idempotencyToken")), None)


def validation_error(violations: list[Violation]) -> ApiError:
    """The modelled ValidationException; qbusiness also gets `reason` and per-field `fields`."""
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
    caller: str


def _is_error(service: str, code: str) -> bool:
    model = service_model(service)
    return code in model.shape_names and bool(model.shape_for(code).metadata.get("exception"))


class Emulator:
    """State, settings and faults of one stand-in; `handle` is called on the server's loop only."""

    def __init__(self, settings: Settings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or Settings()
        self.router = Router()
        self.store = Store()
        self.faults = Faults(self.settings)
        self.clock = clock

    def reset(self) -> None:
        """Forget all resources, tokens and logged calls (settings stay)."""
        self.store.clear()
        self.faults.reset()

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply admin config; `seed` reseeds the random faults. Raises ValueError on a bad key.

        Injected errors must be error shapes of the service they name (or of any served service
        when the rule names a bare operation), so a misspelt error fails here, not in a test later.
        """
        changes = dict(changes)
        seed = changes.pop("seed", None)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError("config 'seed': must be an integer")
            self.faults.seed(seed)
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

    def handle(
        self,
        method: str,
        raw_path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Wire:
        """Answer one AWS request. `headers` must have lower-case names."""
        now = self.clock()
        caller, region, signing = credential_scope(headers.get("authorization"))
        region = region or DEFAULT_REGION
        match = self.router.match(signing, method, raw_path)
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
            known = signing if signing in self.router.services else "qbusiness"
            unknown = ApiError(
                "UnknownOperationException", f"No operation matches {method} {raw_path}", http_status=404
            )
            answer = serialize_error(service_model(known), unknown)
        else:
            incoming = Incoming(match, query, headers, body, now, region, caller)
            answer = self._answer(incoming, entry)
        entry["status"] = answer[0]
        if answer[0] >= 300:
            entry["error"] = answer[1]["x-amzn-ErrorType"]
        answer[1]["x-amzn-RequestId"] = entry["requestId"]
        return answer

    def _answer(self, incoming: Incoming, entry: dict[str, Any]) -> Wire:
        """The call's output, or its error, on the wire; a bug here still answers like AWS."""
        model = service_model(incoming.match.service)
        try:
            return serialize_output(incoming.match.operation, self._call(incoming, entry))
        except ApiError as err:
            return serialize_error(model, err)
        except Exception as exc:
            log.exception("emulator failure in %s", incoming.match.operation.name)
            return serialize_error(model, ApiError("InternalServerException", f"emulator bug: {exc}"))

    def _call(self, incoming: Incoming, entry: dict[str, Any]) -> Params:
        service, op, now = incoming.match.service, incoming.match.operation, incoming.now
        trouble = self.faults.check(service, op.name, incoming.region, now)
        if trouble is not None:
            raise trouble
        handler = HANDLERS[service].get(op.name)
        if handler is None:
            raise ApiError(
                "UnknownOperationException", f"{service}:{op.name} is not emulated", http_status=404
            )
        params = parse_input(op, incoming.match.labels, incoming.query, incoming.headers, incoming.body)
        token_member = _token_member(op)
        token = str(params[token_member]) if token_member and params.get(token_member) else None
        if token is not None:
            entry["clientToken"] = token
        if op.input_shape is not None:
            violations = validate(op.input_shape, params)
            if violations:
                raise validation_error(violations)
        account = self.settings.account_id
        scope = self.store.scope(account, incoming.region)
        call = Call(service, op.name, account, incoming.region, incoming.caller, now, scope, self.settings)
        if token is None or token_member is None:
            return handler(call, params)
        # Idempotency: the first answer to a token is the answer to every same-input retry of it.
        key = (service, op.name, token)
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

    def dump_state(self) -> dict[str, Any]:
        """Every resource of every account/region, as JSON (builds settled first)."""
        now = self.clock()
        out: dict[str, Any] = {}
        for (account, region), scope in self.store.scopes.items():
            qbusiness.settle(scope, now)
            out[f"{account}/{region}"] = {
                "plugins": [dataclasses.asdict(p) for p in scope.plugins.values()],
                "libraryItems": [dataclasses.asdict(i) for i in scope.items.values()],
                "categories": {
                    instance: [dataclasses.asdict(c) for c in categories.values()]
                    for instance, categories in scope.categories.items()
                },
                "connectors": [dataclasses.asdict(c) for c in scope.connectors.values()],
                "clientTokens": len(scope.tokens),
            }
        return out
