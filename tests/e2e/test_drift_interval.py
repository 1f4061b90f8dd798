"""The per-object drift interval (`q-operator.dev/drift-interval`), end to end with the real operator
process: an object annotated 30s is looked at every 30 s while the operator's default is 300 s, and an
unreadable value is named in a Warning. Its own module (it waits out four 30 s intervals) so that it
runs beside the other controls' tests (test_controls.py), not after them.
"""

from __future__ import annotations

import itertools

from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import TEST_KINDS, KindFacts

from .helpers import (
    apply,
    events_of,
    log_position,
    operator_calls,
    restart_and_wait_until_processing,
    unique_name,
)

DRIFT_INTERVAL = "q-operator.dev/drift-interval"
#: Regions of their own, so the stand-in's log tells each object's calls apart.
_regions = (f"zz-interval-{digit}" for digit in range(10))


def test_the_drift_interval_annotation_is_honoured_and_a_bad_value_is_named(
    sandbox: Sandbox, namespace: str
) -> None:
    """The operator's default is 300 s here: an object of each kind annotated 30s is looked at every
    30 s, an object without the annotation (or with an unreadable one) not at all in the same window.
    Each object lives in a region of its own, so the stand-in's log tells its calls apart."""
    objects: dict[str, tuple[KindFacts, str, str | None]] = {}
    for facts in TEST_KINDS:
        objects[unique_name(facts, "fast")] = (facts, next(_regions), "30s")
    objects[unique_name(TEST_KINDS[0], "plain")] = (TEST_KINDS[0], next(_regions), None)
    objects[unique_name(TEST_KINDS[0], "odd")] = (TEST_KINDS[0], next(_regions), "soon")
    for name, (facts, region, interval) in objects.items():
        manifest = facts.manifest(name, namespace, region=region)
        if interval is not None:
            manifest["metadata"]["annotations"] = {DRIFT_INTERVAL: interval}
        apply(sandbox, manifest)
    for name, (facts, _, _) in objects.items():
        sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=90)
    odd = next(name for name, (_, _, interval) in objects.items() if interval == "soon")
    warned = wait_for(
        "the Warning about the unreadable value",
        lambda: [e for e in events_of(sandbox, namespace, odd) if e.get("reason") == "InvalidAnnotation"],
        timeout=30,
    )
    assert DRIFT_INTERVAL in warned[0]["message"] and "between 30s and 24h" in warned[0]["message"]
    assert warned[0]["type"] == "Warning"

    # A fresh process: its drift timers start now (the first check of each is spread over the second
    # half of its interval), so the window below is free of checks of the 300 s ones. It starts once
    # the new process has looked at every object on resuming it.
    mark = log_position(sandbox)
    restart_and_wait_until_processing(sandbox, namespace)

    def looks(name: str, after: float = 0.0) -> list[float]:
        """When each look at the object began (the calls of one look are a second apart at most)."""
        times = [float(r["time"]) for r in operator_calls(sandbox, mark, objects[name][1])]
        starts = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 5]
        return [t for t in starts if t > after]

    resumed = [
        wait_for(f"{name} looked at on resume", lambda n=name: looks(n), timeout=60)[0] for name in objects
    ]
    started = max(resumed)
    fast = [name for name, (_, _, interval) in objects.items() if interval == "30s"]
    checks = {
        name: wait_for(
            f"four drift checks of {name}",
            lambda n=name: len(looks(n, started)) >= 4 and looks(n, started),
            timeout=200,
        )[:4]
        for name in fast
    }
    gaps = {name: [b - a for a, b in itertools.pairwise(times)] for name, times in checks.items()}
    print(
        "drift-interval 30s, seconds between checks: "
        + "; ".join(f"{n}: {', '.join(f'{g:.1f}' for g in v)}" for n, v in gaps.items())
    )
    # 30 s, on a 30 s tick (honoured to within half a tick), plus the machine's load.
    assert all(20 <= gap <= 50 for values in gaps.values() for gap in values), gaps
    end = max(times[-1] for times in checks.values())
    assert end - started < 150, "the window ends before the first check of a 300 s object can be due"
    for name, (_, _, interval) in objects.items():
        if interval != "30s":
            assert [t for t in looks(name, started) if t <= end] == [], (
                f"{name} ({interval}) keeps the default"
            )
