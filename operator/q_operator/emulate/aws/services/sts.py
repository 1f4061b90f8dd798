"""STS: AssumeRole into the roles the stand-in is told are assumable, and GetCallerIdentity.

A role is assumable when `assumable_roles` names it; its trust policy may require an ExternalId
(`ARN:EXTERNAL_ID` on the command line). Anything else is AccessDenied with STS's wording; an
ExternalId sent to a role that requires none is ignored, as IAM ignores an unused condition key.
Credentials live `credential_lifetime` seconds, or DurationSeconds when that is shorter. Sessions
are kept by the stand-in's identity layer (`identity.Sessions`), which resolves every later call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from q_operator.emulate.aws.call import Call, Params, Service
from q_operator.emulate.aws.config import Flag, Knobs, positive, sequence
from q_operator.emulate.aws.errors import ApiError
from q_operator.emulate.aws.identity import ROLE_ARN


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


def parse_assumable_roles(value: Any) -> dict[str, str | None]:
    """A list of `ARN[:EXTERNAL_ID]` strings (one string is one role), or {ARN: ExternalId or null}."""
    if isinstance(value, dict):
        out: dict[str, str | None] = {}
        for key, external in value.items():
            arn, _ = assumable_role(str(key))
            out[arn] = None if external is None else assumable_role(f"{arn}:{external}")[1]
        return out
    items = [value] if isinstance(value, str) else sequence(value)
    return dict(assumable_role(str(item)) for item in items)


@dataclass
class StsKnobs(Knobs):
    """STS's settings: the roles AssumeRole may assume, and how long its credentials live."""

    assumable_roles: dict[str, str | None] = field(default_factory=dict)
    """Role ARN -> the ExternalId its trust policy requires (None: none required). Others: AccessDenied."""
    credential_lifetime: float = 3600.0
    """Seconds AssumeRole's credentials live (a shorter DurationSeconds wins)."""

    PARSE = {"assumable_roles": parse_assumable_roles, "credential_lifetime": positive}
    FLAGS = (
        Flag(
            "--assumable-role",
            "assumable_roles",
            "a role STS AssumeRole may assume (requiring that ExternalId, if given); repeatable",
            metavar="ARN[:EXTERNAL_ID]",
            repeatable=True,
        ),
        Flag(
            "--credential-lifetime",
            "credential_lifetime",
            "how long AssumeRole's credentials live (a shorter DurationSeconds wins)",
            type=float,
            metavar="SECONDS",
        ),
    )


SCall = Call[None, StsKnobs]


def _denied(call: SCall, role_arn: str) -> ApiError:
    return ApiError(
        "AccessDeniedException",
        f"User: {call.caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
    )


def assume_role(call: SCall, params: Params) -> Params:
    role_arn = str(params["RoleArn"])
    call.log["assumedRole"] = role_arn
    roles = call.knobs.assumable_roles
    if role_arn not in roles:
        raise _denied(call, role_arn)
    required = roles[role_arn]
    if required is not None and params.get("ExternalId") != required:
        raise _denied(call, role_arn)
    lifetime = call.knobs.credential_lifetime
    if params.get("DurationSeconds") is not None:
        lifetime = min(lifetime, float(params["DurationSeconds"]))
    session = call.sessions.issue(role_arn, str(params["RoleSessionName"]), lifetime, call.now)
    identity = session.identity
    output: Params = {
        "Credentials": {
            "AccessKeyId": identity.access_key,
            "SecretAccessKey": session.secret,
            "SessionToken": session.token,
            "Expiration": session.expires,
        },
        "AssumedRoleUser": {"AssumedRoleId": identity.user_id, "Arn": identity.arn},
    }
    if params.get("SourceIdentity") is not None:
        output["SourceIdentity"] = params["SourceIdentity"]
    return output


def get_caller_identity(call: SCall, params: Params) -> Params:
    return {"UserId": call.identity.user_id, "Account": call.account, "Arn": call.caller_arn}


SERVICE = Service[None, StsKnobs](
    name="sts",
    backend=lambda: None,
    knobs=StsKnobs,
    blanket_faults=False,
    handlers={
        "AssumeRole": assume_role,
        "GetCallerIdentity": get_caller_identity,
    },
)
