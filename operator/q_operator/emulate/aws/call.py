"""What a service is to the stand-in (`Service`), and what its handlers get for one call (`Call`).

A service is one module that builds a `Service`: its signing name, its handler per operation, a
factory for its per-account-and-region backend (moto's per-service backends), how to dump that
backend, and its knobs (`config.Knobs`: its config keys, quotas and CLI flags). `services/registry.py`
lists them; nothing else in the stand-in names a service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from q_operator.emulate.aws.config import Knobs
from q_operator.emulate.aws.errors import ApiError
from q_operator.emulate.aws.identity import Identity, Sessions
from q_operator.emulate.aws.state import View
from q_operator.emulate.aws.wire import Params

__all__ = ["Call", "Handler", "Params", "Service"]

B = TypeVar("B")
K = TypeVar("K", bound=Knobs)

READ_PREFIXES = ("Get", "List", "Describe", "BatchGet")
"""Operations named so only read (no lost answers for them; every other one is a write)."""


@dataclass(slots=True)
class Call(Generic[B, K]):
    service: str
    operation: str
    identity: Identity
    region: str
    view: View
    backend: B
    """The service's state for the caller's account in this region."""
    knobs: K
    """The service's own settings (changed at runtime by the admin API: read them per call)."""
    sessions: Sessions
    log: dict[str, Any] = field(default_factory=dict)
    """Extra members for this call's request-log entry."""

    @property
    def account(self) -> str:
        return self.identity.account

    @property
    def now(self) -> float:
        return self.view.now

    @property
    def caller(self) -> str:
        """Stands in for the caller's user id (createdBy, who rated an item)."""
        return self.identity.user_id

    @property
    def caller_arn(self) -> str:
        return self.identity.arn

    def own_arn(self, arn: str) -> None:
        """An ARN naming another account's resource: AccessDenied, as IAM answers cross-account calls
        on resources that have no resource-based policy (none of the served ones has)."""
        parts = arn.split(":", 5)
        if len(parts) == 6 and parts[4] and parts[4] != self.account:
            raise ApiError(
                "AccessDeniedException",
                f"User: {self.caller_arn} is not authorized to perform: {self.service}:{self.operation} "
                f"on resource: {arn} because no resource-based policy allows the "
                f"{self.service}:{self.operation} action",
            )


Handler = Callable[[Call[B, K], Params], Params]


@dataclass(frozen=True)
class Service(Generic[B, K]):
    """One served AWS service, as the registry lists it."""

    name: str
    """Signing name (the credential scope's service); also botocore's service name."""
    handlers: Mapping[str, Handler[B, K]]
    backend: Callable[[], B]
    """A fresh backend for one account and region."""
    knobs: type[K]
    """Its settings, at their defaults when made with no argument (the core adds its keys and flags)."""
    dump: Callable[[B, float], dict[str, Any]] | None = None
    """The backend as JSON for GET /_emulator/state (keys merged into its account/region entry);
    None for a service that keeps no state per account and region (STS)."""
    blanket_faults: bool = True
    """Whether `*` rules, fail_rate, throttle_percent and lost answers reach it. STS: no, so faults
    aimed at the Q APIs do not also break getting credentials; name `sts:Op` to fault it."""

    @property
    def stateful(self) -> bool:
        return self.dump is not None

    def is_write(self, operation: str) -> bool:
        return not operation.startswith(READ_PREFIXES)
