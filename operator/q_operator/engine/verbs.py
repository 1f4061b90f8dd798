"""The adapter's verbs as a cycle calls them: one typed method per verb, so a step reads
`await cy.aws.create(spec, owner, token, resolved)`.

Each call runs in a worker thread behind the rate limiter (the `AwsCaller`, engine/aws.py), in the
region asked for, and whatever it raises is classified here (errors.py), with the step leading the
message ("create failed: ..."). Reads (observe, find, ref_for_id) and writes (create, update, delete)
are apart: a control that must keep a cycle from changing AWS belongs at the writes.

`verbs_for` is the one place that chooses how an object reaches AWS: as the identity its namespace
is bound to (identity.py: a role to assume, or the operator itself, or no AWS call at all), in the
object's region. Before a cycle's first call the identity is admitted here (`admit`): refused when
the namespace has none (NoAWSIdentity), or when the object's resource was recorded in another account
than the one the namespace acts in now (AccountMismatch). `admit` answers with that account: a step
that records it (cycle.py `record_account`) asks for it there, whatever was called before.

It also holds what the user's controls allow: a paused object reaches nothing, an observe-only one
only reads (controls.py's `Guard`, checked here whatever a step decided: fail closed).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from q_operator.engine import conditions as c
from q_operator.engine import looks
from q_operator.engine.contract import AwsCaller, Deps, ObjectView
from q_operator.engine.controls import Guard, guard_for
from q_operator.engine.errors import ReconcileError, TerminalError, classify
from q_operator.engine.identity import (
    Identity,
    account_mismatch,
    account_unknown,
    across_accounts,
    foreign_arn,
)
from q_operator.kinds.base import (
    Adapter,
    AlreadyExists,
    ClientToken,
    Created,
    ExternalRef,
    Found,
    KindInfo,
    Observation,
    Owner,
    Page,
    Resolved,
)

T = TypeVar("T")


class Verbs:
    """One object's way to its kind's adapter."""

    def __init__(
        self,
        kind: KindInfo[Any, Any],
        caller: AwsCaller,
        region: str | None,
        logger: logging.LoggerAdapter[logging.Logger],
        attempt: int,
        rng: random.Random,
        identity: Identity | None = None,
        recorded_account: str | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.kind = kind
        #: what the user's controls allow this object to do in AWS (None: everything).
        self.guard = guard or Guard()
        self.caller = caller
        #: where new resources go and where a call without a region of its own is made.
        self.region = region
        self.logger = logger
        #: failed cycles in a row: the back-off of a classified error.
        self.attempt = attempt
        self.rng = rng
        #: who acts in AWS for this object (its namespace's binding).
        self.identity = identity or Identity("")
        #: the account the object's resource lives in, as recorded (status.accountId; for objects
        #: from before accounts were recorded, the operator's own: it made them).
        self.recorded_account = recorded_account
        #: `admit`'s answer, kept so that only the cycle's first admission asks AWS (None: not yet).
        self._admitted: Admitted | None = None

    # ----- reads: never change AWS

    async def observe(
        self, spec: BaseModel, ref: ExternalRef, owner: Owner, resolved: Resolved, region: str | None
    ) -> Observation:
        return await self._call(
            "observe", lambda adapter: adapter.observe(spec, ref, owner, resolved), region
        )

    async def find(self, spec: BaseModel, owner: Owner) -> Found | None:
        if not self.kind.find_before_create:
            return await self._call("find", lambda adapter: adapter.find(spec, owner))

        async def shared() -> Found | None:
            # A look before every create lists a whole parent: the looks asked at once share listings.
            return await looks.find(
                self.caller, self.kind, self.region, self.identity.role, self.logger, spec, owner
            )

        return await self._call("find", lambda adapter: adapter.find(spec, owner), via=shared)

    async def ref_for_id(self, spec: BaseModel, external_id: str) -> ExternalRef:
        return await self._call("adopt", lambda adapter: adapter.ref_for_id(spec, external_id))

    async def list_page(self, parent: Mapping[str, str], token: str | None) -> Page:
        """One page of the List call that covers `parent` (the sweep, sweep.py)."""
        return await self._call("sweep", lambda adapter: adapter.list_page(parent, token))

    # ----- writes: change AWS

    async def create(self, spec: BaseModel, owner: Owner, token: ClientToken, resolved: Resolved) -> Created:
        """Create; `AlreadyExists` reaches the caller as is (it decides whose the resource is)."""
        return await self._call(
            "create",
            lambda adapter: adapter.create(spec, owner, token, resolved),
            passthrough=(AlreadyExists,),
            writes=True,
        )

    async def update(
        self, spec: BaseModel, ref: ExternalRef, observation: Observation, owner: Owner, resolved: Resolved
    ) -> None:
        await self._call(
            "update", lambda adapter: adapter.update(spec, ref, observation, owner, resolved), writes=True
        )

    async def delete(self, spec: BaseModel, ref: ExternalRef, region: str | None) -> None:
        await self._call("delete", lambda adapter: adapter.delete(spec, ref), region, writes=True)

    # ----- identity

    async def admit(self, step: str) -> str | None:
        """May this cycle call AWS, and in which account: returns the account this identity acts in
        (None: the operator's own, which could not be learned). Raises (no call made) when the
        namespace has no identity, its role cannot be assumed, or it now acts in another account
        than the resource was recorded in. Whatever else goes wrong is classified, as for a verb.
        Only the first admission of a cycle asks AWS; every call checks the controls and the identity."""
        try:
            return await self._admit(step)
        except ReconcileError:
            raise
        except Exception as error:
            raise classify(error, step, self.attempt, self.rng) from error

    async def _admit(self, step: str) -> str | None:
        if self.guard.reads is not None:  # paused: not even the identity's account is asked for
            raise TerminalError(c.INTERNAL_ERROR, f"{step} refused: {self.guard.reads}")
        refused = self.identity.refused(step)
        if refused is not None:
            raise refused
        if self._admitted is not None:
            return self._admitted.account
        account = await self.caller.account(self.identity.role)
        recorded = self.recorded_account
        # Made as the operator itself and acting as itself: the same account, known or not.
        if recorded is not None and not (recorded == OWN_ACCOUNT and self.identity.role is None):
            if recorded == OWN_ACCOUNT:
                recorded = await self.caller.account(None)
            if recorded is None or account is None:  # cannot be told apart: fail closed
                shown = None if self.recorded_account == OWN_ACCOUNT else self.recorded_account
                raise account_unknown(shown, self.identity.namespace, step)
            if recorded != account:
                raise account_mismatch(recorded, account, self.identity.namespace, step)
        self._admitted = Admitted(account)
        return account

    async def adoption_allowed(self, adopt_id: str, step: str = "adopt") -> None:
        """The adopt annotation counts only where the namespace allows adoption (no AWS call before
        that is known), and never for a resource named in another account. `step` "observe": an
        observe-only object naming a resource by ID, which follows the same rules (reading what
        another team made is reaching it too)."""
        refused = self.identity.refused(step)
        if refused is None and not self.identity.adoption:
            refused = self.identity.adoption_refused(adopt_id, None, step)  # not allowed here
        if refused is not None:
            raise refused
        account = await self.admit(step)
        refused = self.identity.adoption_refused(adopt_id, account, step)
        if refused is not None:
            raise refused

    async def same_account(self, adopt_id: str, outputs: Mapping[str, Any]) -> None:
        """What AWS showed of a resource to adopt is in the account this namespace acts in."""
        account = await self.admit("adopt")
        found = foreign_arn(outputs, self.kind.service, account)
        if found is not None:
            raise across_accounts(f"{adopt_id} ({found[0]})", found[1], account, self.identity.namespace)

    # ----- the one way out

    async def _call(
        self,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        region: str | None = None,
        passthrough: tuple[type[Exception], ...] = (),
        writes: bool = False,
        via: Callable[[], Awaitable[T]] | None = None,
    ) -> T:
        """Run one verb; whatever it raises is classified here, with the step leading the message.
        `via`: how the verb reaches the caller instead of one call of `fn` (a shared look, looks.py)."""
        refused = self.guard.writes if writes else self.guard.reads
        if refused is not None:
            # The steps never get here for a paused or observe-only object: if one does, that is a
            # bug, and it ends as a condition without the call reaching AWS.
            raise TerminalError(c.INTERNAL_ERROR, f"{step} refused: {refused}")
        try:
            await self.admit(step)
            if via is not None:
                return await via()
            return await self.caller.call(
                self.kind, region or self.region, step, fn, self.logger, role=self.identity.role
            )
        except ReconcileError:
            raise
        except passthrough:
            raise
        except Exception as error:
            raise classify(error, step, self.attempt, self.rng) from error


#: `recorded_account` of an object that records a resource but no account: the operator made it as
#: itself, before accounts were recorded.
OWN_ACCOUNT = "own"


@dataclass(frozen=True)
class Admitted:
    """A cycle's identity was admitted (`Verbs.admit`), acting in this account (None: unknown)."""

    account: str | None


def verbs_for(
    kind: KindInfo[Any, Any],
    obj: ObjectView,
    deps: Deps,
    region: str | None,
    logger: logging.LoggerAdapter[logging.Logger],
) -> Verbs:
    """How this object reaches AWS: as the identity its namespace is bound to, in the object's region,
    as far as the user's controls allow (pause, observe-only). Nothing on the object itself can choose
    the identity."""
    identity = deps.identities.of(obj.namespace)
    recorded = obj.status.get("accountId")
    if not (isinstance(recorded, str) and recorded):
        has_ref = all(obj.status.get(f) for f in kind.ref_fields)
        recorded = OWN_ACCOUNT if has_ref else None
    return Verbs(kind, deps.aws, region, logger, obj.retry, deps.rng, identity, recorded, guard_for(obj))
