"""Prove docs/iam-policy.json against what the operator really called on the AWS stand-in.

The integrator fetches the AWS stand-in's log (`GET /_emulator/requests`: service, operation, ...)
after the end-to-end suite and feeds it here:

    report = check_iam(requests, load_policy())
    assert not report.missing, report.missing   # every call the operator made is allowed
    assert not report.unused, report.unused     # every allowed action was called

IAM action names are compared case-insensitively, as IAM does (AppFlow's UnregisterConnector is
spelled `appflow:UnRegisterConnector` in IAM). Wildcards (`qbusiness:Get*`) are honoured. Actions that
no AWS API call shows, but that AWS checks on the caller as part of one (iam:PassRole when a plugin
names a role), count as used when their parent operation was called.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICY = Path(__file__).resolve().parent.parent / "docs" / "iam-policy.json"

#: The stand-in may log a service by its botocore name, endpoint prefix or signing name.
_SERVICE_PREFIX = {
    "qbusiness": "qbusiness",
    "qapps": "qapps",
    "appflow": "appflow",
}

#: Actions AWS authorizes on the caller as part of another call (no request of their own shows).
#: CreatePlugin/UpdatePlugin take a roleArn in authConfiguration that Q Business assumes.
IMPLIED: Mapping[str, frozenset[str]] = {
    "qbusiness:createplugin": frozenset({"iam:passrole"}),
    "qbusiness:updateplugin": frozenset({"iam:passrole"}),
}


def load_policy(path: Path = POLICY) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(path.read_text())
    return policy


def allowed_actions(policy: Mapping[str, Any]) -> set[str]:
    """The Action patterns of every Allow statement, lower-cased."""
    statements = policy.get("Statement") or []
    if isinstance(statements, Mapping):
        statements = [statements]
    actions: set[str] = set()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        action = statement.get("Action") or []
        for pattern in [action] if isinstance(action, str) else action:
            actions.add(str(pattern).lower())
    return actions


def request_action(request: Mapping[str, Any]) -> str:
    """The IAM action one logged call needs, lower-cased (e.g. "qbusiness:createplugin")."""
    service = str(request.get("service") or "").lower()
    prefix = _SERVICE_PREFIX.get(service, service)
    return f"{prefix}:{request.get('operation')}".lower()


@dataclass(frozen=True)
class IamReport:
    """What the AWS request log says about the policy."""

    #: actions the operator needed that the policy does not allow: AccessDenied on real AWS.
    missing: frozenset[str]
    #: policy action patterns that no call used: remove them, or justify them.
    unused: frozenset[str]
    #: actions the operator needed (including implied ones).
    used: frozenset[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unused


def check_iam(requests: Iterable[Mapping[str, Any]], policy: Mapping[str, Any]) -> IamReport:
    """Compare a request log with a policy, both ways."""
    allowed = allowed_actions(policy)
    needed: set[str] = set()
    for request in requests:
        if not request.get("operation"):
            continue
        action = request_action(request)
        needed.add(action)
        needed |= IMPLIED.get(action, frozenset())
    missing = {want for want in needed if not any(fnmatch.fnmatchcase(want, p) for p in allowed)}
    unused = {p for p in allowed if not any(fnmatch.fnmatchcase(want, p) for want in needed)}
    return IamReport(missing=frozenset(missing), unused=frozenset(unused), used=frozenset(needed))
