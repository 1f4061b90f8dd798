"""What a service handler gets for one call: who, where, when, and the state it may change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.protocol import Params
from q_operator.emulate.aws.state import Scope

__all__ = ["Call", "Handler", "Params"]


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    account: str
    region: str
    caller: str
    """The access key id of the signature: stands in for the caller's identity."""
    now: float
    scope: Scope
    settings: Settings

    @property
    def caller_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:user/{self.caller}"


Handler = Callable[[Call, Params], Params]
