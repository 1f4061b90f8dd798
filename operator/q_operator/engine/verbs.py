"""The adapter's verbs as a cycle calls them: one typed method per verb, so a step reads
`await cy.aws.create(spec, owner, token, resolved)`.

Each call runs in a worker thread behind the rate limiter (the `AwsCaller`, engine/aws.py), in the
region asked for, and whatever it raises is classified here (errors.py), with the step leading the
message ("create failed: ..."). Reads (observe, find, ref_for_id) and writes (create, update, delete)
are apart: a control that must keep a cycle from changing AWS belongs at the writes.

`verbs_for` is the one place that chooses how an object reaches AWS (today: the process's session
and the object's region).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from q_operator.engine.contract import AwsCaller, Deps, ObjectView
from q_operator.engine.errors import ReconcileError, classify
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
    ) -> None:
        self.kind = kind
        self.caller = caller
        #: where new resources go and where a call without a region of its own is made.
        self.region = region
        self.logger = logger
        #: failed cycles in a row: the back-off of a classified error.
        self.attempt = attempt
        self.rng = rng

    # ----- reads: never change AWS

    async def observe(
        self, spec: BaseModel, ref: ExternalRef, owner: Owner, resolved: Resolved, region: str | None
    ) -> Observation:
        return await self._call(
            "observe", lambda adapter: adapter.observe(spec, ref, owner, resolved), region
        )

    async def find(self, spec: BaseModel, owner: Owner) -> Found | None:
        return await self._call("find", lambda adapter: adapter.find(spec, owner))

    async def ref_for_id(self, spec: BaseModel, external_id: str) -> ExternalRef:
        return await self._call("adopt", lambda adapter: adapter.ref_for_id(spec, external_id))

    # ----- writes: change AWS

    async def create(self, spec: BaseModel, owner: Owner, token: ClientToken, resolved: Resolved) -> Created:
        """Create; `AlreadyExists` reaches the caller as is (it decides whose the resource is)."""
        return await self._call(
            "create",
            lambda adapter: adapter.create(spec, owner, token, resolved),
            passthrough=(AlreadyExists,),
        )

    async def update(
        self, spec: BaseModel, ref: ExternalRef, observation: Observation, owner: Owner, resolved: Resolved
    ) -> None:
        await self._call("update", lambda adapter: adapter.update(spec, ref, observation, owner, resolved))

    async def delete(self, spec: BaseModel, ref: ExternalRef, region: str | None) -> None:
        await self._call("delete", lambda adapter: adapter.delete(spec, ref), region)

    # ----- the one way out

    async def _call(
        self,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        region: str | None = None,
        passthrough: tuple[type[Exception], ...] = (),
    ) -> T:
        """Run one verb; whatever it raises is classified here, with the step leading the message."""
        try:
            return await self.caller.call(self.kind, region or self.region, step, fn, self.logger)
        except ReconcileError:
            raise
        except passthrough:
            raise
        except Exception as error:
            raise classify(error, step, self.attempt, self.rng) from error


def verbs_for(
    kind: KindInfo[Any, Any],
    obj: ObjectView,
    deps: Deps,
    region: str | None,
    logger: logging.LoggerAdapter[logging.Logger],
) -> Verbs:
    """How this object reaches AWS: the process's session, in the object's region."""
    return Verbs(kind, deps.aws, region, logger, obj.retry, deps.rng)
