"""`Q_OPERATOR_WORKERS` (kopf's limit of objects processed at once) below the number of objects.

With kopf's own indexes, a limit below the number of objects of a kind deadlocked startup
(nolar/kopf#1243): the objects beyond the limit never got a worker, so a restarted operator never
resumed. The operator keeps its own indexes now (memory.Index); this proves a limit no longer stalls
anything: more objects than the limit reach Ready, and an operator restarted over them resumes them
(a change made while it was down is applied). Slowly: kopf keeps each object's worker, and so its
slot, for its idle timeout (5 s) after the object's last event (docs/engine.md says so).
"""

from __future__ import annotations

import json

from q_operator.sandbox import Sandbox
from tests.kinds import TEST_KINDS

from .helpers import apply, unique_name

WORKERS = 2
OBJECTS = 2 * WORKERS + 1


def test_a_worker_limit_below_the_number_of_objects_stalls_nothing(sandbox: Sandbox, namespace: str) -> None:
    facts = TEST_KINDS[0]
    sandbox.start_operator(env={"Q_OPERATOR_WORKERS": str(WORKERS)})
    try:
        names = [unique_name(facts, f"w{i}") for i in range(OBJECTS)]
        for name in names:
            apply(sandbox, facts.manifest(name, namespace))
        for name in names:
            sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=90)

        # Restarted over them, with a change made while it was down: every object is resumed.
        sandbox.stop_operator()
        changed = facts.manifest(names[-1], namespace)
        facts.change(changed["spec"], names[-1], 1)
        apply(sandbox, changed)
        sandbox.start_operator(env={"Q_OPERATOR_WORKERS": str(WORKERS)})
        generation = (sandbox.get(facts.plural_path, namespace, names[-1]) or {})["metadata"]["generation"]
        live = sandbox.wait_condition(facts.plural_path, namespace, names[-1], "Ready", timeout=90)
        assert live["status"]["observedGeneration"] == generation, json.dumps(live["status"])

    finally:
        sandbox.start_operator()
