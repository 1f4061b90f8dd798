"""Ready and Synced conditions, and every reason the engine writes, in one place.

`Ready` says the AWS resource exists, matches the spec and its build is done; `Synced` says the last
reconcile succeeded and, if it did not, why. Both are metav1.Condition dicts. `set_condition` keeps
`lastTransitionTime` when only the reason or message changed, so a poll never looks like a flip.
docs/troubleshooting.md explains every reason to users; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from q_operator.kinds import common

READY = "Ready"
SYNCED = "Synced"

ConditionStatus = Literal["True", "False", "Unknown"]

# --- Ready reasons: where the AWS resource is in its life.
AVAILABLE = "Available"
CREATING = "Creating"
UPDATING = "Updating"
REPLACING = "Replacing"
DELETING = "Deleting"
BUILD_FAILED = "BuildFailed"
UNAVAILABLE = "Unavailable"
#: (managementPolicy Observe) AWS differs from the spec, and the operator does not change it.
DIFFERS_FROM_SPEC = "DiffersFromSpec"

# --- Synced reasons: how the last reconcile went.
RECONCILE_SUCCESS = "ReconcileSuccess"
INVALID_SPEC = "InvalidSpec"
REFERENCE_NOT_FOUND = "ReferenceNotFound"
ADOPT_TARGET_NOT_FOUND = "AdoptTargetNotFound"
OWNED_BY_ANOTHER = "OwnedByAnother"
ALREADY_EXISTS = "AlreadyExists"
THROTTLED = "Throttled"
AWS_SERVER_ERROR = "AwsServerError"
AWS_UNREACHABLE = "AwsUnreachable"
ACCESS_DENIED = "AccessDenied"
CREDENTIALS_INVALID = "CredentialsInvalid"
QUOTA_EXCEEDED = "ServiceQuotaExceeded"
AWS_VALIDATION = "AwsValidationError"
DEPENDENCY_NOT_FOUND = "DependencyNotFound"
CONFLICT = "Conflict"
IN_USE = "InUse"
EXTERNAL_FAILURE = "ExternalFailure"
DELETE_FAILED = "DeleteFailed"
NOT_CONVERGING = "UpdateNotConverging"
REGION_MISSING = "RegionMissing"
AWS_ERROR = "AwsError"
INTERNAL_ERROR = "InternalError"
# (who acts in AWS for the object's namespace: engine/identity.py)
NO_AWS_IDENTITY = "NoAWSIdentity"
ASSUME_ROLE_FAILED = "AssumeRoleFailed"
ADOPTION_NOT_ALLOWED = "AdoptionNotAllowed"
ACCOUNT_MISMATCH = "AccountMismatch"
# (the user's controls over one object: engine/controls.py)
PAUSED = "Paused"
OBSERVE_ONLY = "ObserveOnly"  # Synced=True: the last look succeeded, and the operator only looks
ADOPT_ID_REQUIRED = "AdoptIdRequired"

# --- Event reasons (transitions only).
EV_CREATED = "Created"
EV_UPDATED = "Updated"
EV_DRIFT_CORRECTED = "DriftCorrected"
EV_RECREATED = "Recreated"
EV_REPLACING = "Replacing"
EV_REPLACED = "Replaced"
EV_DELETED = "Deleted"
EV_RETAINED = "Retained"
EV_ADOPTED = "Adopted"
EV_PAUSED = "Paused"
EV_OBSERVING = "Observing"
EV_RESUMED = "Resumed"
EV_DIFFERS = "DiffersFromSpec"
EV_INVALID_ANNOTATION = "InvalidAnnotation"

#: Synced reasons after which the engine waits for the spec (or its inputs) to change rather than
#: retrying: the drift timer leaves such an object alone while its generation is unchanged.
TERMINAL_REASONS = frozenset(
    {
        INVALID_SPEC,
        AWS_VALIDATION,
        OWNED_BY_ANOTHER,
        ALREADY_EXISTS,
        BUILD_FAILED,
        ADOPT_TARGET_NOT_FOUND,
        ADOPT_ID_REQUIRED,
    }
)

READY_REASONS = (
    AVAILABLE,
    CREATING,
    UPDATING,
    REPLACING,
    DELETING,
    BUILD_FAILED,
    UNAVAILABLE,
    DIFFERS_FROM_SPEC,
)
SYNCED_REASONS = (
    RECONCILE_SUCCESS,
    INVALID_SPEC,
    REFERENCE_NOT_FOUND,
    ADOPT_TARGET_NOT_FOUND,
    OWNED_BY_ANOTHER,
    ALREADY_EXISTS,
    THROTTLED,
    AWS_SERVER_ERROR,
    AWS_UNREACHABLE,
    ACCESS_DENIED,
    CREDENTIALS_INVALID,
    QUOTA_EXCEEDED,
    AWS_VALIDATION,
    DEPENDENCY_NOT_FOUND,
    CONFLICT,
    IN_USE,
    EXTERNAL_FAILURE,
    DELETE_FAILED,
    NOT_CONVERGING,
    REGION_MISSING,
    AWS_ERROR,
    INTERNAL_ERROR,
    BUILD_FAILED,
    NO_AWS_IDENTITY,
    ASSUME_ROLE_FAILED,
    ADOPTION_NOT_ALLOWED,
    ACCOUNT_MISMATCH,
    PAUSED,
    OBSERVE_ONLY,
    ADOPT_ID_REQUIRED,
)
#: Synced reasons that say how the user asked the operator to treat the object, not that a reconcile
#: failed: they count as no failure (no back-off) and are no error in the Argo CD health check.
CONTROL_REASONS = frozenset({PAUSED, OBSERVE_ONLY})


def rfc3339(moment: datetime) -> str:
    """Kubernetes' time format: UTC, seconds, a Z."""
    return common.rfc3339(moment, timespec="seconds")


def parse_rfc3339(text: str) -> datetime | None:
    """Parse what `rfc3339` wrote (and other ISO forms); None when unreadable."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def condition(
    type_: str, status: ConditionStatus, reason: str, message: str, generation: int, now: datetime
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": rfc3339(now),
        "observedGeneration": generation,
    }


def reconcile_error(reason: str, message: str, generation: int, now: datetime) -> dict[str, Any]:
    return condition(SYNCED, "False", reason, message, generation, now)


def find_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    for item in conditions:
        if item.get("type") == type_:
            return item
    return None


def set_condition(conditions: Sequence[Mapping[str, Any]], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Replace the condition of `new`'s type. lastTransitionTime moves only when the status flips."""
    result: list[dict[str, Any]] = []
    placed = False
    for item in conditions:
        if item.get("type") != new["type"]:
            result.append(dict(item))
            continue
        merged = dict(new)
        if item.get("status") == new["status"] and item.get("lastTransitionTime"):
            merged["lastTransitionTime"] = item["lastTransitionTime"]
        result.append(merged)
        placed = True
    if not placed:
        result.append(dict(new))
    return result
