"""The user's controls over how the operator treats one object, read from the object alone:

- **pause** — annotation `q-operator.dev/paused: "true"`: no AWS call and no change, a deletion
  included (the finalizer stays), until it is removed;
- **observe-only** — `spec.managementPolicy: Observe`: AWS is only read (never created, updated,
  tagged or deleted), deleting the object leaves AWS untouched;
- **drift interval** — annotation `q-operator.dev/drift-interval: 10m`: this object's drift check
  runs at that interval instead of the operator's default;
- **reconcile now** — annotation `q-operator.dev/reconcile-requested-at: <any value>`: a cycle runs
  at once, and `status.lastHandledReconcileAt` takes the value when it has.

Pure of kopf and of the cycle: these are the rules, and the values they give (`Guard`, `Interval`).
The cycle-level decisions that use them are in steps/controls.py; the kopf edge (handlers.py,
bridge.py) asks `wants_wake` and `drift_due`; verbs.py holds every AWS call to `guard_for`.

Every control fails closed: a pause annotation with any value but "false" pauses, a management
policy other than Manage only observes, and an object that only observed its resource never
deletes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from q_operator.engine import conditions as c
from q_operator.engine.contract import ObjectView

PAUSED_ANNOTATION = "q-operator.dev/paused"
DRIFT_INTERVAL_ANNOTATION = "q-operator.dev/drift-interval"
RECONCILE_REQUEST_ANNOTATION = "q-operator.dev/reconcile-requested-at"

#: The spec.managementPolicy value under which the operator writes (kinds/base.py CommonSpec); under
#: any other (Observe) it only reads.
MANAGE = "Manage"
OBSERVE = "Observe"

#: status keys this module owns.
OBSERVED_ONLY_KEY = "observeOnly"
HANDLED_REQUEST_KEY = "lastHandledReconcileAt"

#: Bounds of a per-object drift interval: the floor keeps one object from spending the account's
#: request rate on reads (1,000 objects at 30 s are 33 reads a second), the ceiling keeps every
#: object looked at once a day.
DRIFT_FLOOR = 30.0
DRIFT_CEILING = 24 * 3600.0
#: The drift timer wakes every object this often (at most) to see whether its check is due: an
#: interval is honoured to within half of it.
DRIFT_TICK = 30.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


# ----- pause


def pause_value(annotations: Mapping[str, str]) -> str | None:
    """The pause annotation's value when it pauses the object, else None. Fails closed: any value
    but "false" pauses ("true" is the documented one)."""
    value = annotations.get(PAUSED_ANNOTATION)
    if value is None or value == "false":
        return None
    return value


def is_paused(annotations: Mapping[str, str]) -> bool:
    return pause_value(annotations) is not None


# ----- observe-only


def observes_only(spec: Mapping[str, Any]) -> bool:
    """Whether this object may only read AWS: its policy is not Manage (read from the raw spec, so
    an invalid spec fails closed too)."""
    policy = spec.get("managementPolicy")
    return policy is not None and policy != MANAGE


def observed_only(status: Mapping[str, Any]) -> bool:
    """The recorded resource was only observed, never adopted: it is not this object's to change."""
    return bool(status.get(OBSERVED_ONLY_KEY))


# ----- what an object may do in AWS


@dataclass(frozen=True)
class Guard:
    """What the user's controls allow one object to do in AWS: None, or why a kind of call is refused."""

    reads: str | None = None
    writes: str | None = None


def guard_for(obj: ObjectView) -> Guard:
    """Paused: nothing. Observe-only, or a resource only observed so far: reads only."""
    paused = pause_value(obj.annotations)
    if paused is not None:
        why = f"the object is paused ({PAUSED_ANNOTATION}: {paused!r})"
        return Guard(reads=why, writes=why)
    if observes_only(obj.spec):
        return Guard(
            writes=f"spec.managementPolicy is {obj.spec.get('managementPolicy')}: the operator only reads"
        )
    if observed_only(obj.status):
        return Guard(writes="the AWS resource was only observed; it must be adopted first")
    return Guard()


# ----- reconcile now


def reconcile_request(annotations: Mapping[str, str]) -> str | None:
    value = annotations.get(RECONCILE_REQUEST_ANNOTATION)
    return value if value else None


def request_pending(annotations: Mapping[str, str], status: Mapping[str, Any]) -> bool:
    """A reconcile was asked for and no cycle has acted on it yet."""
    requested = reconcile_request(annotations)
    return requested is not None and status.get(HANDLED_REQUEST_KEY) != requested


# ----- waking kopf's waiting handlers


def wants_wake(annotations: Mapping[str, str], status: Mapping[str, Any]) -> bool:
    """Whether a control changed in a way a handler waiting out a requeue delay must see now: a pause
    not yet recorded, a pause lifted, a reconcile asked for. False once a cycle has acted on it, and
    always false while a recorded pause holds (no wake-up loop on a paused object's events)."""
    synced = c.find_condition(status.get("conditions") or [], c.SYNCED)
    recorded_pause = bool(synced and synced.get("status") == "False" and synced.get("reason") == c.PAUSED)
    if is_paused(annotations):
        return not recorded_pause
    return recorded_pause or request_pending(annotations, status)


# ----- per-object drift interval


@dataclass(frozen=True)
class Interval:
    """An object's drift interval, and what was wrong with its annotation (None: nothing)."""

    seconds: float
    problem: str | None = None


def parse_duration(text: str) -> float | None:
    """'90s', '10m', '1h', '1h30m', '1.5h' → seconds; None when it is not such a duration."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION.findall(text))


def drift_interval(annotations: Mapping[str, str], default: float) -> Interval:
    """The object's drift interval: its annotation, clamped to DRIFT_FLOOR..DRIFT_CEILING; the
    operator's default when there is none or it cannot be read (both with the problem named)."""
    raw = annotations.get(DRIFT_INTERVAL_ANNOTATION)
    if raw is None:
        return Interval(default)
    bounds = f"between {_text(DRIFT_FLOOR)} and {_text(DRIFT_CEILING)}"
    seconds = parse_duration(raw)
    if seconds is None:
        return Interval(
            default,
            f"{DRIFT_INTERVAL_ANNOTATION}: {raw!r} is not a duration such as 90s, 10m or 1h ({bounds}); "
            f"using the operator's default of {_text(default)}",
        )
    if seconds < DRIFT_FLOOR:
        return Interval(
            DRIFT_FLOOR,
            f"{DRIFT_INTERVAL_ANNOTATION}: {raw!r} is below the floor ({bounds}); using {_text(DRIFT_FLOOR)}",
        )
    if seconds > DRIFT_CEILING:
        return Interval(
            DRIFT_CEILING,
            f"{DRIFT_INTERVAL_ANNOTATION}: {raw!r} is above the ceiling ({bounds}); "
            f"using {_text(DRIFT_CEILING)}",
        )
    return Interval(seconds)


def drift_tick(default: float) -> float:
    """How often the drift timer wakes each object: often enough for the shortest interval allowed."""
    return min(default, DRIFT_TICK)


def drift_due(last_check: float | None, now: float, interval: float, tick: float) -> bool:
    """Whether an object's drift check is due at this tick of the timer: never checked by this
    process, or its interval has passed (to the nearest tick)."""
    return last_check is None or now - last_check >= interval - tick / 2


def _text(seconds: float) -> str:
    """A duration as the annotation would say it: 30s, 5m, 24h, 1h30m."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
