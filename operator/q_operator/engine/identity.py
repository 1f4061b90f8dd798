"""Who acts in AWS for an object: the identity its namespace is bound to.

A cluster admin binds a namespace to an AWS identity with annotations on the Namespace, an object
that tenants (who may edit objects inside their namespace) cannot change:

    q-operator.dev/role-arn: arn:aws:iam::111122223333:role/q-operator-tenant-a   # the role to assume
    q-operator.dev/external-id: team-a-7f3e                                       # optional
    q-operator.dev/region: eu-west-1                                              # the default region
    q-operator.dev/adoption: allowed                                              # adopt-id works here

The operator assumes the role with STS AssumeRole (the session named after the namespace), keeps the
credentials per (role, external id), renews them before they expire, and makes every AWS call for the
namespace's objects with them (engine/aws.py; verbs.py chooses per object). Nothing on a custom
resource can choose an identity. A namespace without a binding uses the operator's own identity,
unless the operator runs with --require-namespace-role: then its objects get Synced=False, reason
NoAWSIdentity, and no AWS call. A binding that is malformed, or a Namespace that cannot be read,
fails closed the same way: it never falls back to the operator's own identity.

Pure of kopf and of Kubernetes clients: the Namespace watch (namespaces.py) feeds `Identities.update`;
a namespace not seen yet is read through an injected reader (`Identities.ensure`).
docs/install.md ("Many teams") tells the story for admins.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from q_operator.engine import conditions as c
from q_operator.engine.errors import SLOW_RETRY, ReconcileError, RetryableError

ROLE_ARN_ANNOTATION = "q-operator.dev/role-arn"
EXTERNAL_ID_ANNOTATION = "q-operator.dev/external-id"
REGION_ANNOTATION = "q-operator.dev/region"
ADOPTION_ANNOTATION = "q-operator.dev/adoption"
#: The one value of ADOPTION_ANNOTATION that allows adoption (anything else: not allowed).
ADOPTION_ALLOWED = "allowed"

#: An IAM role ARN (any partition); group 1 is its account. Role paths and names as IAM allows them.
ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
#: STS's rule for ExternalId.
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
#: The same rule as spec.region (kinds/base.py CommonSpec).
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
#: Any ARN: group 1 the service, group 2 the account (empty for some global resources).
ARN = re.compile(r"arn:aws(?:-[a-z]+)*:([a-z0-9-]+):[a-z0-9-]*:(\d{12})?:.+")

#: STS's rule for RoleSessionName: these characters, 2 to 64 of them.
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
SESSION_PREFIX = "q-operator-"
SESSION_NAME_MAX = 64

#: Credentials are renewed this share of their lifetime before they expire ...
RENEW_SHARE = 1 / 3
#: ... and at most this many seconds before (botocore's own advisory refresh for hour-long ones).
RENEW_MAX_MARGIN = 900.0
#: A failed AssumeRole is answered from memory this long: thirty objects of a namespace whose role
#: cannot be assumed cost one STS call, not thirty.
FAILURE_TTL = 60.0
#: A throttled AssumeRole is remembered this long (one STS call answers every waiting object)…
THROTTLE_TTL = 5.0
#: …and the objects of its namespace try again after this long.
THROTTLE_RETRY = 15.0
#: Current credentials are used while a renewal fails, until this close to their expiry.
EXPIRY_SAFETY = 5.0
#: A Namespace that could not be read is tried again after this long (its objects wait, refused).
UNREADABLE_RETRY = 30.0

log = logging.getLogger("q_operator.identity")


@dataclass(frozen=True)
class Role:
    """An IAM role to assume, and the ExternalId its trust policy asks for: the key credentials are
    kept under."""

    arn: str
    external_id: str | None = None

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


@dataclass(frozen=True)
class Binding:
    """What a Namespace's annotations say."""

    role: Role | None = None
    region: str | None = None
    adoption: bool = False
    #: what is wrong with the annotations, if anything: the namespace's objects get no AWS call.
    problem: str | None = None


def binding_of(annotations: Mapping[str, str]) -> Binding:
    """Read a Namespace's annotations (an empty value counts as absent)."""
    role_arn = annotations.get(ROLE_ARN_ANNOTATION, "").strip()
    external = annotations.get(EXTERNAL_ID_ANNOTATION, "").strip() or None
    region = annotations.get(REGION_ANNOTATION, "").strip() or None
    adoption = annotations.get(ADOPTION_ANNOTATION, "").strip() == ADOPTION_ALLOWED
    problems: list[str] = []
    if role_arn and ROLE_ARN.fullmatch(role_arn) is None:
        problems.append(
            f"{ROLE_ARN_ANNOTATION} {role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::<12 digits>:role/<name>)"
        )
    if external is not None and not role_arn:
        problems.append(f"{EXTERNAL_ID_ANNOTATION} is set without {ROLE_ARN_ANNOTATION}")
    elif external is not None and EXTERNAL_ID.fullmatch(external) is None:
        problems.append(
            f"{EXTERNAL_ID_ANNOTATION} must be 2 to 1224 letters, digits or characters of +=,.@:/-"
        )
    if region is not None and REGION.fullmatch(region) is None:
        problems.append(f"{REGION_ANNOTATION} {region!r} is not an AWS region (such as eu-west-1)")
    role = Role(role_arn, external) if role_arn else None
    return Binding(role, region, adoption, "; ".join(problems) or None)


def session_name(namespaces: Iterable[str]) -> str:
    """The RoleSessionName of a role's session: it names the namespace, so AWS's CloudTrail shows
    which tenant called (`q-operator-team-a`). Namespaces sharing one role share its credentials, so
    the name shows the first and counts the others (`q-operator-team-a+2`). Within STS's rules: the
    characters [\\w+=,.@-], 2 to 64 of them; a longer name keeps its start and ends in a digest of
    the whole, so two long names stay apart."""
    names = sorted({name for name in namespaces if name})
    if not names:
        return "q-operator"
    text = SESSION_PREFIX + names[0] + (f"+{len(names) - 1}" if len(names) > 1 else "")
    text = re.sub(r"[^\w+=,.@-]", "-", text)
    if len(text) > SESSION_NAME_MAX:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        text = f"{text[: SESSION_NAME_MAX - len(digest) - 1]}-{digest}"
    return text


@dataclass(frozen=True)
class Policy:
    """The operator's own rules (`q-operator run` flags, Helm values)."""

    #: --require-namespace-role: a namespace without a role gets no AWS call at all.
    require_role: bool = False
    #: --allow-adoption-everywhere: q-operator.dev/adopt-id works in every namespace.
    adoption_everywhere: bool = False


@dataclass(frozen=True)
class Identity:
    """How the objects of one namespace reach AWS: verbs.py acts on it for every call."""

    namespace: str
    #: the role to assume; None: the operator's own identity.
    role: Role | None = None
    #: the namespace's default region (spec.region wins over it, and it over the operator's).
    region: str | None = None
    #: whether the q-operator.dev/adopt-id annotation may take over existing resources here.
    adoption: bool = False
    #: why no AWS call may be made for this namespace's objects (NoAWSIdentity), if so.
    refusal: str | None = None
    #: when to look again after a refusal.
    retry: float = SLOW_RETRY

    def refused(self, step: str) -> RetryableError | None:
        if self.refusal is None:
            return None
        return RetryableError(c.NO_AWS_IDENTITY, f"{step} refused: {self.refusal}", self.retry)

    def adoption_refused(
        self, adopt_id: str, account: str | None, step: str = "adopt"
    ) -> RetryableError | None:
        """Adoption only where allowed, and never of a resource named in another account. Observing
        a resource named by ID (managementPolicy Observe) follows the same rules: `step` "observe"."""
        if not self.adoption:
            return RetryableError(
                c.ADOPTION_NOT_ALLOWED,
                f"{step} refused: adoption is not allowed in namespace {self.namespace}"
                + ("" if step == "adopt" else " (observing a resource named by ID needs the same permission)")
                + f"; a cluster admin may annotate the Namespace {ADOPTION_ANNOTATION}={ADOPTION_ALLOWED}",
                SLOW_RETRY,
            )
        named = arn_account(adopt_id)
        if named is not None and named != account:
            return across_accounts(adopt_id, named, account, self.namespace, step)
        return None


def across_accounts(
    what: str, other: str, account: str | None, namespace: str, step: str = "adopt"
) -> RetryableError:
    acting = f"account {account}" if account else "an account the operator could not learn"
    return RetryableError(
        c.ADOPTION_NOT_ALLOWED,
        f"{step} refused: {what} is in AWS account {other} and namespace {namespace} acts in {acting}: "
        f"{'adoption' if step == 'adopt' else 'observing'} never crosses accounts",
        SLOW_RETRY,
    )


def arn_account(text: str) -> str | None:
    """The account an ARN names (None: not an ARN, or none named)."""
    found = ARN.fullmatch(text.strip())
    return found.group(2) if found and found.group(2) else None


def foreign_arn(outputs: Mapping[str, Any], service: str, account: str | None) -> tuple[str, str] | None:
    """An ARN of `service` among AWS's outputs that names another account than `account`:
    (the ARN, its account). The resource it names is not the acting identity's to take."""
    for value in outputs.values():
        if not isinstance(value, str):
            continue
        found = ARN.fullmatch(value)
        if found and found.group(1) == service and found.group(2) and found.group(2) != account:
            return value, found.group(2)
    return None


#: How soon an object whose account check could not be made tries again; also how soon a failed
#: GetCallerIdentity is asked again (aws.WHOAMI_RETRY).
ACCOUNT_UNKNOWN_RETRY = 60.0


def account_mismatch(recorded: str, acting: str, namespace: str, step: str) -> RetryableError:
    """The object's resource lives in one account and its namespace now acts in another."""
    return RetryableError(
        c.ACCOUNT_MISMATCH,
        f"{step} refused: the AWS resource was recorded in account {recorded}, and namespace "
        f"{namespace} now acts in account {acting}; restore the Namespace's binding, or delete this "
        "object with deletionPolicy Retain and create it anew",
        SLOW_RETRY,
    )


def account_unknown(recorded: str | None, namespace: str, step: str) -> RetryableError:
    """The account check cannot be made: the operator's own account (STS GetCallerIdentity) is not
    known yet. Fails closed: nothing is done to a recorded resource that may live in another account.
    `recorded` None: the resource was made by the operator as itself."""
    where = f"account {recorded}" if recorded else "the operator's own account"
    return RetryableError(
        c.AWS_UNREACHABLE,
        f"{step} waits: the AWS resource was recorded in {where}, and whether namespace {namespace} "
        "acts in the same account cannot be told until the operator has learned its own account from "
        "STS GetCallerIdentity, which failed (see the operator's log)",
        ACCOUNT_UNKNOWN_RETRY,
    )


#: Reads a Namespace's annotations; None when it does not exist. Raises when it cannot be read.
NamespaceReader = Callable[[str], Awaitable[Mapping[str, str] | None]]


class Identities:
    """The bindings of namespaces as last seen, and the policy that turns them into identities."""

    def __init__(self, policy: Policy | None = None, read_namespace: NamespaceReader | None = None) -> None:
        self.policy = policy or Policy()
        self._read = read_namespace
        self._bindings: dict[str, Binding] = {}
        #: namespace → why it could not be read (its objects are refused until it can be).
        self._unreadable: dict[str, str] = {}
        self._reading: dict[str, asyncio.Lock] = {}
        #: session names are asked for from worker threads (engine/aws.py)
        self._lock = threading.Lock()

    def update(self, namespace: str, annotations: Mapping[str, str]) -> bool:
        """The Namespace as the watch saw it. True when a binding already known has changed (its
        objects should be reconciled again)."""
        binding = binding_of(annotations)
        with self._lock:
            before = self._bindings.get(namespace)
            self._bindings[namespace] = binding
            self._unreadable.pop(namespace, None)
        if before is not None and before != binding:
            log.info("namespace %s: AWS binding changed: %s", namespace, describe(binding))
            return True
        return False

    def forget(self, namespace: str) -> None:
        """The Namespace is gone (its objects went first: a namespace is deleted after its content)."""
        with self._lock:
            self._bindings.pop(namespace, None)
            self._unreadable.pop(namespace, None)
        self._reading.pop(namespace, None)

    async def ensure(self, namespace: str) -> None:
        """Read a namespace the watch has not shown yet (the operator just started, or the namespace
        is new): no object is reconciled on a guess. Never raises: an unreadable namespace is refused."""
        if self._read is None or namespace in self._bindings:
            return
        lock = self._reading.setdefault(namespace, asyncio.Lock())
        async with lock:
            if namespace in self._bindings:
                return
            try:
                annotations = await self._read(namespace)
            except Exception as error:
                log.warning("namespace %s could not be read for its AWS binding: %s", namespace, error)
                with self._lock:
                    self._unreadable[namespace] = (
                        f"the Namespace {namespace} could not be read to learn its AWS identity: {error}"
                    )
                return
            with self._lock:
                # The watch may have been quicker, with a newer view: it wins.
                self._bindings.setdefault(namespace, binding_of(annotations or {}))
                self._unreadable.pop(namespace, None)

    def of(self, namespace: str) -> Identity:
        """The identity the objects of `namespace` act with."""
        with self._lock:
            binding = self._bindings.get(namespace)
            unreadable = self._unreadable.get(namespace)
        if binding is None and unreadable is not None:
            return Identity(namespace, refusal=unreadable, retry=UNREADABLE_RETRY)
        binding = binding or Binding()
        adoption = binding.adoption or self.policy.adoption_everywhere
        refusal = None
        if binding.problem is not None:
            refusal = f"namespace {namespace} has a malformed AWS binding: {binding.problem}"
        elif binding.role is None and self.policy.require_role:
            refusal = (
                f"namespace {namespace} is bound to no AWS role and the operator requires one "
                f"(--require-namespace-role): a cluster admin sets {ROLE_ARN_ANNOTATION} on the Namespace"
            )
        return Identity(namespace, binding.role, binding.region, adoption, refusal)

    def session_name(self, role: Role) -> str:
        """The session name for `role`: the namespaces bound to it."""
        with self._lock:
            bound = [ns for ns, binding in self._bindings.items() if binding.role == role]
        return session_name(bound)


def describe(binding: Binding) -> str:
    parts = [f"role {binding.role.arn}" if binding.role else "the operator's own identity"]
    if binding.role is not None and binding.role.external_id:
        parts.append("with an external id")
    if binding.region:
        parts.append(f"region {binding.region}")
    if binding.adoption:
        parts.append("adoption allowed")
    if binding.problem:
        parts.append(f"malformed: {binding.problem}")
    return ", ".join(parts)


# ----- credentials of a role


class AssumeRoleFailed(RetryableError):
    """STS refused to let the operator assume a namespace's role: slow retries, no hot loop.

    A *throttled* AssumeRole is no refusal: reason Throttled, remembered for THROTTLE_TTL (every object
    of the role waits on one answer, no storm of STS calls) and retried after THROTTLE_RETRY."""

    def __init__(self, role: Role, said: str, *, throttled: bool = False) -> None:
        if throttled:
            reason, what, delay = c.THROTTLED, "assume role throttled", THROTTLE_RETRY
        else:
            reason, what, delay = c.ASSUME_ROLE_FAILED, "assume role failed", SLOW_RETRY
        super().__init__(reason, f"{what}: cannot assume {role.arn} now: {said}", delay)
        self.role = role
        #: how long the failure is remembered (None: RoleCredentials' own failure TTL).
        self.remembered: float | None = THROTTLE_TTL if throttled else None


@dataclass(frozen=True)
class Issued:
    """Credentials STS issued for a role."""

    access_key: str
    secret_key: str
    token: str
    #: epoch seconds: when this process received them, and when they expire.
    issued: float
    expires: float

    @property
    def renew_at(self) -> float:
        """A third of their lifetime before they expire, at most 15 minutes before: hour-long
        credentials are renewed after 45 minutes, 20-second ones after 13 seconds."""
        lifetime = max(0.0, self.expires - self.issued)
        return self.expires - min(RENEW_MAX_MARGIN, lifetime * RENEW_SHARE)


#: Calls STS AssumeRole for a role; raises AssumeRoleFailed when AWS refuses.
Assume = Callable[[Role], Issued]


class RoleCredentials:
    """A role's credentials as botocore's signer asks for them (`get_frozen_credentials`): assumed on
    first use, renewed before they expire, at once when AWS says they expired (`expire`), and a
    failure remembered for FAILURE_TTL so many callers cost one STS call. Thread-safe: one renewal at
    a time, every worker thread signing with this role waits for it."""

    method = "q-operator-assume-role"

    def __init__(
        self,
        role: Role,
        assume: Assume,
        clock: Callable[[], float] = time.time,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.role = role
        self.account_id = role.account
        self._assume = assume
        self._clock = clock
        self._failure_ttl = failure_ttl
        self._lock = threading.Lock()
        self._issued: Issued | None = None
        self._failure: tuple[float, ReconcileError] | None = None

    @property
    def expires(self) -> float | None:
        issued = self._issued
        return issued.expires if issued else None

    def get_frozen_credentials(self) -> Any:
        with self._lock:
            now = self._clock()
            current = self._issued
            if current is None or now >= current.renew_at:
                current = self._renew(now, current)
            return ReadOnlyCredentials(current.access_key, current.secret_key, current.token, self.account_id)

    def get_deferred_property(self, name: str) -> Callable[[], Any]:
        """botocore asks credentials for their account id this way when it builds a client."""
        return lambda: getattr(self, name, None)

    def expire(self) -> None:
        """AWS answered ExpiredToken: the next use assumes the role again."""
        with self._lock:
            self._issued = None

    def _renew(self, now: float, current: Issued | None) -> Issued:
        usable = current is not None and now < current.expires - EXPIRY_SAFETY
        if self._failure is not None and now < self._failure[0]:
            if current is not None and usable:
                return current
            raise self._failure[1]
        try:
            issued = self._assume(self.role)
        except AssumeRoleFailed as error:
            ttl = error.remembered if error.remembered is not None else self._failure_ttl
            self._failure = (now + ttl, error)
            if current is not None and usable:
                log.warning("renewing %s failed (%s); using the current credentials", self.role.arn, error)
                return current
            raise
        self._failure = None
        self._issued = issued
        return issued
