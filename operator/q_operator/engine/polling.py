"""When to look at a build again: soon enough that Ready follows AWS's READY within about a second,
seldom enough that a thousand builds do not spend the GetPlugin quota on polls that find nothing.

`BuildClock` remembers, in this process, when each object's build began (its create or update
returned) and learns how long builds of each kind take. A build of a kind whose duration is not
known yet is polled on a growing interval from its start (1, 1, 2, 4, 8 … s, capped). Once it is
known, the first poll sleeps until the build should be done and later ones grow again from that
moment: a 5 s build costs one or two polls instead of five, and is seen about when it finishes.

After a restart nothing is remembered: the caller falls back to its own estimate (reconcile measures
from the Ready condition's lastTransitionTime), and the clock learns again from the next builds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: weight of the newest build in the running estimate of a kind's build time
_ALPHA = 0.3
#: how much earlier than the last READY to look next time, when the first poll already found it
#: READY (the build may have finished well before): the estimate probes downwards until a poll
#: sees the build still running.
_PROBE = 0.5
#: the soonest a first poll is made, for kinds whose resources are ready at once (no build)
_QUICK = 0.25


@dataclass
class _Build:
    started: float
    kind: str
    #: the last time a poll saw this build still in progress (None: no poll has yet)
    seen_running: float | None = None
    #: when the next poll was meant to happen: the learning uses it rather than when the poll did
    #: happen, which a busy operator makes later — learning from that would feed on itself.
    planned: float | None = None
    #: begun by a drift-timer cycle: the timer polls it itself (no change handler is waiting on it).
    by_timer: bool = False


@dataclass
class BuildClock:
    """Per-object build start times and per-kind build durations (seconds, on the caller's clock)."""

    builds: dict[str, _Build] = field(default_factory=dict)
    typical: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, uid: str, kind: str, now: float, by_timer: bool = False) -> None:
        """A create or update was accepted: its build starts now."""
        with self._lock:
            self.builds[uid] = _Build(now, kind, by_timer=by_timer)

    def next_poll(self, uid: str, now: float, poll_min: float, poll_max: float) -> float | None:
        """Seconds until the next look at a build still in progress; None when its start is unknown."""
        with self._lock:
            build = self.builds.get(uid)
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
            since = elapsed - expected if expected is not None else elapsed
            delay = min(poll_max, max(poll_min, since))
        with self._lock:
            build.planned = now + delay
        return delay

    def done(self, uid: str, now: float) -> None:
        """The build was seen finished: learn from how long it took (bounded by the last two looks)."""
        with self._lock:
            build = self.builds.pop(uid, None)
            if build is None:
                return
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
            build = self.builds.get(uid)
            return build is not None and not build.by_timer and now - build.started < within

    def forget(self, uid: str) -> None:
        with self._lock:
            self.builds.pop(uid, None)
