"""Who is calling: the stand-in's small IAM. Credentials map to an account and a principal.

Signatures are not checked. The access key id of the SigV4 `Authorization` header names the
caller: a key AssumeRole issued (sent with its `X-Amz-Security-Token`) is that role's session in the
role's account until it expires; any other key without a session token is a base principal of the
default account, as before STS existed here. A session token the stand-in did not issue, or one
sent with another key, is refused as AWS refuses it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass

from q_operator.emulate.aws.errors import ApiError

ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})")
"""An IAM role ARN: its account and name (role names and paths hold no ':')."""

_KEY_CHARS = string.ascii_uppercase + string.digits
EXPIRED_KEPT_SECONDS = 24 * 3600.0
"""Expired sessions are remembered this long (answering ExpiredToken), then forgotten."""


@dataclass(frozen=True)
class Identity:
    """A caller: its account, principal ARN and, for a role session, the role and session name."""

    account: str
    arn: str
    access_key: str
    user_id: str
    """Stable across a role's sessions of the same name (`AROA...:session`), else the access key."""
    role_arn: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class Session:
    """Credentials AssumeRole issued."""

    identity: Identity
    secret: str
    token: str
    expires: float


class CredentialsRefused(ApiError):
    """AWS refused the credentials themselves (before any service code); `identity` if still known."""

    def __init__(self, code: str, message: str, identity: Identity | None = None) -> None:
        super().__init__(code, message, http_status=403, common=True)
        self.identity = identity


INVALID_TOKEN = "The security token included in the request is invalid."


def _role_id(role_arn: str) -> str:
    """A stable role id (`AROA` + 17 characters), as IAM gives each role one."""
    digest = hashlib.sha256(role_arn.encode()).digest()
    return "AROA" + "".join(_KEY_CHARS[b % len(_KEY_CHARS)] for b in digest[:17])


def base_identity(access_key: str, account: str) -> Identity:
    """The stand-in's own credentials (any key without a session token): an IAM user of the account."""
    return Identity(account, f"arn:aws:iam::{account}:user/{access_key}", access_key, access_key)


class Sessions:
    """Issued credentials by access key id."""

    def __init__(self) -> None:
        self._by_key: dict[str, Session] = {}
        self._base: dict[tuple[str, str], Identity] = {}

    def clear(self) -> None:
        self._by_key.clear()
        self._base.clear()

    def __len__(self) -> int:
        return len(self._by_key)

    def issue(self, role_arn: str, session_name: str, lifetime: float, now: float) -> Session:
        """New credentials for a role session; the role ARN must be a valid role ARN."""
        found = ROLE_ARN.fullmatch(role_arn)
        if found is None:
            raise ValueError(f"not a role ARN: {role_arn}")
        account, role_name = found.group(1), found.group(2)
        self._forget_expired(now)
        access_key = "ASIA" + "".join(secrets.choice(_KEY_CHARS) for _ in range(16))
        identity = Identity(
            account=account,
            arn=f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
            access_key=access_key,
            user_id=f"{_role_id(role_arn)}:{session_name}",
            role_arn=role_arn,
            session=session_name,
        )
        session = Session(
            identity=identity,
            secret=secrets.token_urlsafe(30)[:40],
            token="FwoGZXIvYXdzE" + secrets.token_urlsafe(180),
            expires=now + lifetime,
        )
        self._by_key[access_key] = session
        return session

    def _forget_expired(self, now: float) -> None:
        stale = [k for k, s in self._by_key.items() if s.expires + EXPIRED_KEPT_SECONDS < now]
        for key in stale:
            del self._by_key[key]

    def resolve(self, access_key: str, token: str | None, now: float, default_account: str) -> Identity:
        """The caller of a request, or the ApiError AWS answers for its credentials."""
        session = self._by_key.get(access_key)
        if session is None:
            if token is not None:
                raise CredentialsRefused("UnrecognizedClientException", INVALID_TOKEN)
            found = self._base.get((access_key, default_account))
            if found is None:
                found = self._base[(access_key, default_account)] = base_identity(access_key, default_account)
            return found
        if token != session.token:
            raise CredentialsRefused("UnrecognizedClientException", INVALID_TOKEN)
        if now >= session.expires:
            raise CredentialsRefused(
                "ExpiredTokenException",
                "The security token included in the request is expired",
                session.identity,
            )
        return session.identity
