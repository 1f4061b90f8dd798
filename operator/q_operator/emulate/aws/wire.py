"""The types every wire format shares: an operation's input/output as a dict, and an HTTP answer."""

from __future__ import annotations

from typing import Any

Params = dict[str, Any]
"""Operation input or output keyed by member name, values as the JSON/boto3 types."""

Wire = tuple[int, dict[str, str], bytes]
"""An HTTP answer: status, headers, body."""
