"""The differences between the stand-in and kube-apiserver we accept, each with why it does not matter.

`case` and `path` are shell patterns over a case name and a difference's `label/json/path`. Keep this
list short and honest: docs/testing.md ("Stand-in vs the real server") explains each group to users.
"""

from __future__ import annotations

from tests.differential.harness import Known

KNOWN: list[Known] = []
