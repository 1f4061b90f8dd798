"""The user's controls set while the operator is down, end to end with the real operator process.

After a restart, an object whose status says it converged is normally handed to its parent's List
sweep without a look of its own (list mode, the default). A pause or a reconcile request set while
the operator was stopped must not be lost that way: the paused object shows Synced=False Paused and
is not called for, the request is acted on and reported in status.lastHandledReconcileAt. One
restart serves every kind. Each paused object lives in an AWS region of its own, so the AWS
stand-in's request log tells whether anything was called for it.
"""

from __future__ import annotations

from typing import Any

from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import TEST_KINDS

from .helpers import apply, log_position, operator_calls, unique_name, wait_synced

PAUSED = "q-operator.dev/paused"
REQUEST = "q-operator.dev/reconcile-requested-at"


def test_a_pause_and_a_reconcile_request_set_while_the_operator_was_down_are_acted_on(
    sandbox: Sandbox, namespace: str
) -> None:
    paused: dict[str, str] = {}  # name → its own region
    asked: list[str] = []
    for number, facts in enumerate(TEST_KINDS):
        name = unique_name(facts, "offline-paused")
        paused[name] = f"zz-offline-{number}"
        apply(sandbox, facts.manifest(name, namespace, region=paused[name]))
        asked.append(unique_name(facts, "offline-asked"))
        apply(sandbox, facts.manifest(asked[-1], namespace))
    for facts, name, other in zip(TEST_KINDS, paused, asked, strict=True):
        for each in (name, other):
            sandbox.wait_condition(facts.plural_path, namespace, each, "Ready", timeout=90)

    sandbox.stop_operator()
    for facts, name, other in zip(TEST_KINDS, paused, asked, strict=True):
        sandbox.kubectl("annotate", facts.short, name, "-n", namespace, f"{PAUSED}=true")
        sandbox.kubectl("annotate", facts.short, other, "-n", namespace, f"{REQUEST}=while-down")
    mark = log_position(sandbox)
    sandbox.start_operator()

    for facts, name, other in zip(TEST_KINDS, paused, asked, strict=True):
        wait_synced(sandbox, facts, namespace, name, "Paused")

        def handled(facts: Any = facts, other: str = other) -> dict[str, Any] | None:
            obj = sandbox.get(facts.plural_path, namespace, other) or {}
            return obj if obj.get("status", {}).get("lastHandledReconcileAt") == "while-down" else None

        wait_for(f"{other}'s request to be handled", handled, timeout=30)
        assert operator_calls(sandbox, mark, paused[name]) == [], f"{name} is paused: no AWS call"
