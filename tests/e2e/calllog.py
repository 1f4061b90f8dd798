"""The calls every end-to-end sandbox received, kept for the whole session.

The permission proofs (test_permissions.py) hold the chart's RBAC and docs/iam-policy.json against
what the operator really called across the whole suite, not against a guess.
"""

from __future__ import annotations

from typing import Any

#: Kubernetes stand-in request-log entries from every sandbox closed so far.
KUBE: list[dict[str, Any]] = []
#: AWS stand-in request-log entries from every sandbox closed so far.
AWS: list[dict[str, Any]] = []
