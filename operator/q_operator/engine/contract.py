"""What `reconcile()` takes and gives: the object as it sees it, its dependencies, and the Outcome.

Pure of kopf and Kubernetes clients: the bridge (bridge.py) builds an `ObjectView` from kopf's body
and maps the `Outcome` back onto kopf; the unit tests build both by hand around fake adapters.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from q_operator.engine.identity import Identities, Role
from q_operator.engine.memory import Memory, Watched
from q_operator.engine.polling import BuildClock
from q_operator.kinds.base import Adapter, KindInfo

T = TypeVar("T")

#: Annotation asking the operator to adopt an existing AWS resource by ID.
ADOPT_ANNOTATION = "q-operator.dev/adopt-id"


class Decision(enum.Enum):
    DONE = "done"  # converged: nothing to do until something changes (the drift timer looks again)
    REQUEUE = "requeue"  # run again after Outcome.delay seconds
    STOP = "stop"  # the input is wrong: wait until the spec (or an input) changes
    RELEASE = "release"  # deletion finished: let the finalizer go


class Trigger(enum.Enum):
    CHANGE = "change"  # create, update, resume: the object (or an input) changed
    DRIFT = "drift"  # the periodic timer: look for out-of-band changes


@dataclass(frozen=True)
class ObjectView:
    """What reconcile needs of the custom resource."""

    uid: str
    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False
    #: how many cycles of this object have failed in a row: drives back-off.
    retry: int = 0


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    #: seconds until the next cycle (REQUEUE only).
    delay: float = 0.0
    #: a JSON merge patch for `status` (None deletes a key); empty when nothing changed.
    status: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    #: one line for logs and for kopf's error, e.g. why we stop.
    message: str = ""


class AwsCaller(Protocol):
    """Runs one adapter verb in a worker thread behind the rate limiter (engine/aws.py), as a
    namespace's role or (role None) as the operator itself."""

    async def call(
        self,
        kind: KindInfo[Any, Any],
        region: str | None,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        logger: logging.LoggerAdapter[logging.Logger],
        role: Role | None = None,
    ) -> T: ...

    async def account(self, role: Role | None) -> str | None:
        """The AWS account an identity acts in, once it can act (a role is assumed if due: raises
        when it cannot be); None when the operator's own account could not be learned."""
        ...


class Watcher(Protocol):
    """How Ready objects are watched between drift checks (sweep.py: by List sweeps per parent). The
    bridge asks it before a drift check or a resume, and tells it how each cycle ended."""

    def covers(self, kind: KindInfo[Any, Any], obj: ObjectView) -> bool:
        """Whether a drift check of this object would learn nothing a sweep has not: skip it."""
        ...

    def takes_over(self, kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps) -> bool:
        """At a resume: whether the status shows a converged object a sweep can watch from now on
        (then no per-object observe is made; the first sweep of its parent looks at it)."""
        ...

    def note(self, kind: KindInfo[Any, Any], obj: ObjectView, outcome: Outcome, deps: Deps) -> None:
        """A cycle ended: watch the object if it is Ready, stop watching it otherwise."""
        ...

    def forget(self, uid: str, watched: Watched | None) -> None:
        """The object is forgotten (bridge.forget; `watched`: what its memory said of its watch)."""
        ...


class ObserveEach:
    """Per-object observation: every drift check and resume observes the object itself."""

    def covers(self, kind: KindInfo[Any, Any], obj: ObjectView) -> bool:
        return False

    def takes_over(self, kind: KindInfo[Any, Any], obj: ObjectView, deps: Deps) -> bool:
        return False

    def note(self, kind: KindInfo[Any, Any], obj: ObjectView, outcome: Outcome, deps: Deps) -> None:
        return None

    def forget(self, uid: str, watched: Watched | None) -> None:
        return None


#: Reads a ConfigMap's data: None when the ConfigMap does not exist.
ConfigMapReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]
#: Writes a status patch (JSON merge patch) to one object now — (kind, namespace, name, patch) — and
#: returns once the API server has stored it (it raises if it did not), with the object's new
#: resourceVersion (None if the answer did not say).
StatusWriter = Callable[[KindInfo[Any, Any], str, str, Mapping[str, Any]], Awaitable[str | None]]


@dataclass(frozen=True)
class Timing:
    """Requeue timing. Polls grow with the time a build has been running, up to poll_max."""

    poll_min: float = 1.0
    poll_max: float = 15.0
    #: each poll waits this fraction of the time waited so far: 0.5 gives 1, 1, 1.5, 2.25, 3.4 … s, so
    #: Ready lags AWS's READY by at most a third of the build time (and at most poll_max).
    poll_factor: float = 0.5
    #: the first builds of a kind in this process, before one has finished (its duration unknown),
    #: wait this fraction instead: 1 s until 4 s, then 1.25, 1.6 … s. Ready lags their READY by at
    #: most a fifth of the build, at the cost of a few more polls for those first builds only; every
    #: later one is timed by the duration learned from them (polling.py).
    first_build_factor: float = 0.25
    #: an unmarked resource created this long before our recorded intent is still ours (clock skew).
    create_grace: float = 60.0
    #: the consistency bound (Q_OPERATOR_CONSISTENCY_SECONDS): every write is assumed visible to every
    #: read this long after its answer (consistency.py; docs/engine.md says why 30 s).
    consistency: float = 30.0
    #: after this long, an idempotency token may have expired on the AWS side: look before re-creating.
    token_trust: float = 3600.0
    #: an update whose diff has not cleared after this long is reported (UpdateNotConverging).
    converge_timeout: float = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    """What a cycle depends on, injected: the AWS edge, the ConfigMap reader, a clock, the process's
    memory of each object."""

    aws: AwsCaller
    read_configmap: ConfigMapReader
    now: Callable[[], datetime] = _utcnow
    rng: random.Random = field(default_factory=random.Random)
    timing: Timing = field(default_factory=Timing)
    #: the operator's region (AWS_REGION), for objects without spec.region.
    default_region: str | None = None
    #: what this process remembers of each object (memory.py): one entry per object.
    memory: Memory = field(default_factory=Memory)
    #: which AWS identity and default region each namespace is bound to (identity.py).
    identities: Identities = field(default_factory=Identities)
    #: how Ready objects are watched between drift checks (sweep.py in list mode).
    watcher: Watcher = field(default_factory=ObserveEach)
    #: writes a status patch at once (process.py), so a cycle that only persists a step (the intent to
    #: create) goes on in the same handler call; None: every cycle's status goes through kopf.
    write_status: StatusWriter | None = None
    #: waits (a fake clock's in tests): a handler call waiting for a build's next look (bridge.py).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: when each build began (kept in `memory`) and how long builds take: paces the polls.
    builds: BuildClock = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "builds", BuildClock(self.memory))
