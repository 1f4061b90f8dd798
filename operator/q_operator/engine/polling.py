"""When to look at a build again: soon enough that Ready follows AWS's READY within about a second,
seldom enough that a thousand builds do not spend the GetPlugin quota on polls that find nothing.

`BuildClock` remembers, in this process, when each object's build began (its create or update
returned) and learns how long builds of each kind take. A build of a kind whose duration is not
known yet is polled on a growing interval from its start (Q_OPERATOR_FIRST_BUILD_POLL_FACTOR of the
time so far: 1 s until 4 s, then 1.25, 1.6 … s, capped): densely, because these first builds are the
ones the duration is learned from, and a thousand creates applied at once all start before the first
finishes. Once it is known, the first poll sleeps until the build should be done and later ones grow
again from that moment: a 5 s build costs one or two polls instead of five, and is seen about when it
finishes.

After a restart nothing is remembered: the caller falls back to its own estimate (cycle.py measures
from the Ready condition's lastTransitionTime), and the clock learns again from the next builds.
"""

from __future__ import annotations

import threading

from q_operator.engine.memory import Build, Memory

#: weight of the newest build in the running estimate of a kind's build time
_ALPHA = 0.3
#: how much earlier than the last READY to look next time, when the first poll already found it
#: READY (the build may have finished well before): the estimate probes downwards until a poll
#: sees the build still running.
_PROBE = 0.5
#: the soonest a first poll is made, for kinds whose resources are ready at once (no build)
_QUICK = 0.25


class BuildClock:
    """Per-kind build durations (seconds, on the caller's clock); each object's running build is kept
    in its `ObjectMemory.build`, so it goes when the object is forgotten."""

    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()
        self.typical: dict[str, float] = {}
        self._lock = threading.Lock()

    def _build(self, uid: str) -> Build | None:
        entry = self.memory.peek(uid)
        return entry.build if entry is not None else None

    def begin(self, uid: str, kind: str, now: float, by_timer: bool = False) -> None:
        """A create or update was accepted: its build starts now."""
        entry = self.memory.of(uid)
        with self._lock:
            entry.build = Build(now, kind, by_timer=by_timer)

    def next_poll(
        self, uid: str, now: float, poll_min: float, poll_max: float, factor: float = 1.0
    ) -> float | None:
        """Seconds until the next look at a build still in progress; None when its start is unknown.
        Until the kind's build time is known, each look waits `factor` of the time built so far."""
        with self._lock:
            build = self._build(uid)
            if build is None:
                return None
            build.seen_running = now if now > build.started else build.seen_running
            elapsed = now - build.started
            expected = self.typical.get(build.kind)
        if expected is not None and expected - elapsed > poll_min:
            delay = min(poll_max, expected - elapsed)
        elif expected is not None and expected < poll_min and build.seen_running is None:
            # This kind is ready sooner than poll_min (a library item, a connector: at once): look
            # when it should be, so its Ready follows in a fraction of a second. Same one call.
            delay = max(_QUICK, expected - elapsed)
        else:
            since = elapsed - expected if expected is not None else elapsed * factor
            delay = min(poll_max, max(poll_min, since))
        with self._lock:
            build.planned = now + delay
        return delay

    def done(self, uid: str, now: float) -> None:
        """The build was seen finished: learn from how long it took (bounded by the last two looks)."""
        with self._lock:
            build = self._build(uid)
            if build is None:
                return
            self.abandon(uid)
            upper = min(now, build.planned or now) - build.started
            if build.seen_running is None:
                sample = max(0.0, upper - _PROBE)
            else:
                sample = (build.seen_running - build.started + upper) / 2
            old = self.typical.get(build.kind)
            self.typical[build.kind] = sample if old is None else old + _ALPHA * (sample - old)

    def polling(self, uid: str, now: float, within: float = 600.0) -> bool:
        """Whether this object's build began in this process less than `within` seconds ago and is
        still being polled (a build left behind by an error stops counting after that)."""
        with self._lock:
            build = self._build(uid)
            return build is not None and not build.by_timer and now - build.started < within

    def abandon(self, uid: str) -> None:
        """Stop pacing this object's build (it failed, the object is deleted, or the drift timer
        takes over its polling): nothing is learned from it."""
        entry = self.memory.peek(uid)
        if entry is not None:
            entry.build = None
