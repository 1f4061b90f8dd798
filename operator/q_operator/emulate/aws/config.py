"""The stand-in's knobs: set from CLI flags at start and changed at runtime by POST /_emulator/config.

Every key of the admin JSON is a field here with the same name; `apply()` checks types so a typo in
a test fails loudly instead of silently configuring nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

BUILD_KINDS = ("CREATE", "UPDATE", "DELETE")
LOST_ANSWER_KINDS = ("reset", "timeout")
"""How a lost answer is lost: the connection is reset, or the answer is held past the read timeout."""
ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})")
"""An IAM role ARN: its account and name (role names and paths hold no ':')."""
LAMBDA_FAILURES = {
    "authentication": "ConnectorAuthenticationException",
    "server": "ConnectorServerException",
}


@dataclass
class InjectRule:
    """Answer the next `count` calls of `operation` (None = every call) with a modelled error."""

    operation: str
    error: str
    count: int | None = 1
    message: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoseRule:
    """Lose the answer of the next `count` writes of `operation` that act (None = every one), by `kind`:
    a certain lost answer of a chosen kind, where `lost_answer_rate` leaves both to chance."""

    operation: str
    kind: str = "reset"
    count: int | None = 1


@dataclass
class Quotas:
    """Service quotas whose excess answers ServiceQuotaExceededException."""

    plugins_per_application: int = 25
    """AWS's published default quota (Amazon Q Business: 25 plugins per application)."""
    library_items_per_instance: int = 1000
    connectors_per_region: int = 100


@dataclass
class Settings:
    """Everything the admin API can change; defaults make a well-behaved, fast AWS."""

    account_id: str = "123456789012"
    build_seconds: float = 2.0
    throttle: dict[str, float] = field(default_factory=dict)
    """Token-bucket rates per operation key: `Op`, `service:Op` or `*` (a default for each op)."""
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    throttle_percent: float = 0.0
    """With `throttle_for_seconds`: throttle this share of calls (0-100) for a while."""
    throttle_until: float = 0.0
    fail_builds_matching: str | None = None
    """Plugin builds whose displayName matches this regex (search) end *_FAILED."""
    fail_next_builds: int = 0
    fail_build_kinds: list[str] = field(default_factory=lambda: list(BUILD_KINDS))
    inject: list[InjectRule] = field(default_factory=list)
    access_denied: list[str] = field(default_factory=list)
    """Operation keys (`Op`, `service:Op`, `*`) answered with AccessDeniedException."""
    known_applications: set[str] | None = None
    known_instances: set[str] | None = None
    known_apps: set[str] | None = None
    known_lambdas: set[str] | None = None
    connectors_in_use: set[str] = field(default_factory=set)
    broken_lambdas: dict[str, str] = field(default_factory=dict)
    """lambdaArn -> `authentication` | `server`: register/update with it fails like a broken Lambda."""
    quotas: Quotas = field(default_factory=Quotas)
    seed: int | None = None
    """Seeds every random choice (faults, lag draws, lost answers): a run is repeatable."""
    assumable_roles: dict[str, str | None] = field(default_factory=dict)
    """Role ARN -> the ExternalId its trust policy requires (None: none required). Others: AccessDenied."""
    credential_lifetime: float = 3600.0
    """Seconds AssumeRole's credentials live (a shorter DurationSeconds wins)."""
    read_lag: float = 0.0
    """Up to this many seconds before a write shows in Get/List/Describe (drawn per write)."""
    lost_answer_rate: float = 0.0
    """Share (0-1) of successful writes whose answer is lost after they acted."""
    lost_answer_kinds: list[str] = field(default_factory=lambda: list(LOST_ANSWER_KINDS))
    lost_answer_hold: float = 65.0
    """Seconds a `timeout` lost answer is held before the connection is reset (botocore reads for 60)."""
    lose_answers: list[LoseRule] = field(default_factory=list)
    """Writes whose answer is lost for certain, before `lost_answer_rate` is drawn (first match wins)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, set):
                value = sorted(value)
            elif isinstance(value, Quotas):
                value = vars(value).copy()
            elif f.name in ("inject", "lose_answers"):
                value = [vars(rule).copy() for rule in value]
            out[f.name] = value
        return out

    def apply(self, changes: dict[str, Any], now: float) -> None:
        """Apply a partial admin config; raises ValueError naming the bad key."""
        for key, value in changes.items():
            try:
                self._apply_one(key, value, now)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"config {key!r}: {exc}") from None

    def _apply_one(self, key: str, value: Any, now: float) -> None:
        if key in ("build_seconds", "fail_rate", "latency_ms", "throttle_percent"):
            setattr(self, key, _number(value))
        elif key == "throttle_for_seconds":
            self.throttle_until = now + _number(value)
        elif key == "throttle":
            self.throttle = {str(k): _number(v) for k, v in _mapping(value).items()}
        elif key == "fail_builds_matching":
            self.fail_builds_matching = None if value is None else str(value)
        elif key == "fail_next_builds":
            self.fail_next_builds = int(value)
        elif key == "fail_build_kinds":
            kinds = [str(k).upper() for k in _sequence(value)]
            if any(k not in BUILD_KINDS for k in kinds):
                raise ValueError(f"kinds must be among {BUILD_KINDS}")
            self.fail_build_kinds = kinds
        elif key == "inject":
            self.inject = [InjectRule(**_mapping(rule)) for rule in _sequence(value)]
        elif key == "access_denied":
            self.access_denied = [str(k) for k in _sequence(value)]
        elif key in ("known_applications", "known_instances", "known_apps", "known_lambdas"):
            setattr(self, key, None if value is None else {str(v) for v in _sequence(value)})
        elif key == "connectors_in_use":
            self.connectors_in_use = {str(v) for v in _sequence(value)}
        elif key == "broken_lambdas":
            broken = {str(k): str(v) for k, v in _mapping(value).items()}
            if any(v not in LAMBDA_FAILURES for v in broken.values()):
                raise ValueError(f"values must be among {sorted(LAMBDA_FAILURES)}")
            self.broken_lambdas = broken
        elif key == "quotas":
            for name, limit in _mapping(value).items():
                if not hasattr(self.quotas, name):
                    raise ValueError(f"unknown quota {name!r}")
                setattr(self.quotas, name, int(limit))
        elif key == "account_id":
            self.account_id = str(value)
        elif key == "seed":
            if isinstance(value, bool) or not isinstance(value, int | None):
                raise TypeError("must be an integer")
            self.seed = value
        elif key == "assumable_roles":
            self.assumable_roles = assumable_roles(value)
        elif key in ("credential_lifetime", "lost_answer_hold"):
            setattr(self, key, _positive(value))
        elif key == "read_lag":
            self.read_lag = _at_least_zero(value)
        elif key == "lost_answer_rate":
            rate = _number(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError("must be between 0 and 1")
            self.lost_answer_rate = rate
        elif key == "lost_answer_kinds":
            kinds = [str(k).lower() for k in _sequence(value)]
            if not kinds or any(k not in LOST_ANSWER_KINDS for k in kinds):
                raise ValueError(f"kinds must be among {LOST_ANSWER_KINDS}")
            self.lost_answer_kinds = kinds
        elif key == "lose_answers":
            rules = [LoseRule(**_mapping(rule)) for rule in _sequence(value)]
            if any(rule.kind not in LOST_ANSWER_KINDS for rule in rules):
                raise ValueError(f"kinds must be among {LOST_ANSWER_KINDS}")
            if any(rule.count is not None and rule.count < 1 for rule in rules):
                raise ValueError("count must be at least 1 (or null: every write)")
            self.lose_answers = rules
        else:
            raise ValueError("unknown key")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("must be a number")
    return float(value)


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _at_least_zero(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def assumable_role(text: str) -> tuple[str, str | None]:
    """`ARN` or `ARN:EXTERNAL_ID` -> (role ARN, required ExternalId or None).

    A role ARN has exactly five colons, so a sixth starts the ExternalId (which may hold colons).
    """
    parts = text.split(":", 6)
    arn = ":".join(parts[:6])
    if ROLE_ARN.fullmatch(arn) is None:
        raise ValueError(f"{arn!r} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")
    external = parts[6] if len(parts) == 7 else None
    if external is not None and not 2 <= len(external) <= 1224:
        raise ValueError(f"ExternalId of {arn} must have 2 to 1224 characters")
    return arn, external


def assumable_roles(value: Any) -> dict[str, str | None]:
    """A list of `ARN[:EXTERNAL_ID]` strings (one string is one role), or {ARN: ExternalId or null}."""
    if isinstance(value, dict):
        out: dict[str, str | None] = {}
        for key, external in value.items():
            arn, _ = assumable_role(str(key))
            out[arn] = None if external is None else assumable_role(f"{arn}:{external}")[1]
        return out
    items = [value] if isinstance(value, str) else _sequence(value)
    return dict(assumable_role(str(item)) for item in items)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("must be an object")
    return value


def _sequence(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if not isinstance(value, list):
        raise TypeError("must be a list")
    return value


def op_keys(service: str, operation: str) -> tuple[str, str, str]:
    """The keys an operation answers to in config, most specific first."""
    return f"{service}:{operation}", operation, "*"
