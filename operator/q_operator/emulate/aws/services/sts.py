"""STS: AssumeRole into the roles the stand-in is told are assumable, and GetCallerIdentity.

A role is assumable when `assumable_roles` names it; its trust policy may require an ExternalId
(`ARN:EXTERNAL_ID` on the command line). Anything else is AccessDenied with STS's wording; an
ExternalId sent to a role that requires none is ignored, as IAM ignores an unused condition key.
Credentials live `credential_lifetime` seconds, or DurationSeconds when that is shorter. Sessions
are kept by the stand-in's identity layer (`identity.Sessions`), which resolves every later call.
"""

from __future__ import annotations

from q_operator.emulate.aws.call import Call, Params, Service
from q_operator.emulate.aws.errors import ApiError

SCall = Call[None]


def _denied(call: SCall, role_arn: str) -> ApiError:
    return ApiError(
        "AccessDeniedException",
        f"User: {call.caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
    )


def assume_role(call: SCall, params: Params) -> Params:
    role_arn = str(params["RoleArn"])
    call.log["assumedRole"] = role_arn
    roles = call.settings.assumable_roles
    if role_arn not in roles:
        raise _denied(call, role_arn)
    required = roles[role_arn]
    if required is not None and params.get("ExternalId") != required:
        raise _denied(call, role_arn)
    lifetime = call.settings.credential_lifetime
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


SERVICE = Service[None](
    name="sts",
    backend=lambda: None,
    blanket_faults=False,
    handlers={
        "AssumeRole": assume_role,
        "GetCallerIdentity": get_caller_identity,
    },
)
