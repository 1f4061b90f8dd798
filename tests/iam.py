"""Prove the IAM policies (docs/iam-*.json) against what the operator really called on the AWS stand-in.

The integrator fetches the AWS stand-in's log (`GET /_emulator/requests`: service, operation, ...)
after the end-to-end suite and feeds it here:

    report = check_iam(requests, load_policy())
    assert not report.missing, report.missing   # every call the operator made is allowed
    assert not report.unused, report.unused     # every allowed action was called

IAM action names are compared case-insensitively, as IAM does (IAM spells some actions otherwise
than the API: an `Unregister...` operation may be `UnRegister...` in IAM). Wildcards (`svc:Get*`) are
honoured. Actions that
no AWS API call shows, but that AWS checks on the caller as part of one (iam:PassRole when a plugin
names a role), count as used when their parent operation was called. Both the services and those
implied actions come from the kind registry.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q_operator.registry import KINDS

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: The operator's own policy, and the one a tenant role needs: the same actions without sts:AssumeRole.
POLICY = DOCS / "iam-policy.json"
TENANT_POLICY = DOCS / "iam-tenant-policy.json"

#: The stand-in logs a service by its botocore name; IAM's prefix is the one the kind's actions carry.
_SERVICE_PREFIX = {kind.service: kind.iam_actions[0].split(":", 1)[0] for kind in KINDS}

#: Actions AWS authorizes on the caller as part of another call (no request of their own shows):
#: iam:PassRole when a kind's request hands a role to its service.
IMPLIED: Mapping[str, frozenset[str]] = {
    action.lower(): frozenset({"iam:passrole"})
    for kind in KINDS
    if kind.pass_role is not None
    for action in kind.pass_role.actions
}


#: Actions IAM never denies, so no policy needs them: the operator asks STS who it is (its own account).
NO_PERMISSION_NEEDED = frozenset({"sts:getcalleridentity"})


def load_policy(path: Path = TENANT_POLICY) -> dict[str, Any]:
    """A policy document; by default the tenant one, exactly what the operator's own calls need (the
    operator's policy is that plus sts:AssumeRole, as tests/unit/test_permissions_generated.py holds)."""
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
    """The IAM action one logged call needs, lower-cased (e.g. "svc:creatething")."""
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
    """Compare a request log with a policy, both ways. Calls made as a tenant role are the tenant
    policy's business: split the log by its `role` field (see tests/e2e/test_permissions.py)."""
    allowed = allowed_actions(policy)
    needed: set[str] = set()
    for request in requests:
        if not request.get("operation"):
            continue
        action = request_action(request)
        if action in NO_PERMISSION_NEEDED:
            continue
        needed.add(action)
        needed |= IMPLIED.get(action, frozenset())
    missing = {want for want in needed if not any(fnmatch.fnmatchcase(want, p) for p in allowed)}
    unused = {p for p in allowed if not any(fnmatch.fnmatchcase(want, p) for want in needed)}
    return IamReport(missing=frozenset(missing), unused=frozenset(unused), used=frozenset(needed))
