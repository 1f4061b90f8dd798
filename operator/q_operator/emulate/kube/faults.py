"""Injected API-server failures and latency, so tests can prove how an operator copes with them.

`POST /_emulator/config` with `{"latency_ms": 50, "inject": [{"verb": "patch", "resource": "qplugins",
"subresource": "status", "code": 409, "count": 1}]}`: the next matching call answers the error the
API server would (Conflict, TooManyRequests with Retry-After, InternalError, ServiceUnavailable...).
A rule matches on any of verb, group, resource, subresource, namespace and name it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from q_operator.emulate.kube.errors import ApiError, bad_request

JSON = dict[str, Any]

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_MATCH_KEYS = ("verb", "group", "resource", "subresource", "namespace", "name")


@dataclass
class Rule:
    """Answer `code` to the next `count` calls that match (count < 0: every one)."""

    match: dict[str, str]
    code: int
    count: int = 1
    message: str = ""
    retry_after: int = 1

    def matches(self, entry: JSON) -> bool:
        return all(str(entry.get(k, "")) == v for k, v in self.match.items())

    def error(self, entry: JSON) -> ApiError:
        reason = _REASONS.get(self.code, "InternalError")
        message = self.message or f"injected {reason} for {entry.get('verb')} {entry.get('resource')}"
        details: JSON | None = None
        if self.code == 429:
            details = {"retryAfterSeconds": self.retry_after}
        elif entry.get("name"):
            details = {
                "name": entry["name"],
                "group": entry.get("group", ""),
                "kind": entry.get("resource", ""),
            }
        return ApiError(self.code, reason, message, details)


@dataclass
class Faults:
    """The runtime fault configuration of one stand-in."""

    latency_ms: float = 0.0
    rules: list[Rule] = field(default_factory=list)

    def configure(self, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise bad_request("the configuration must be a JSON object")
        if "latency_ms" in body:
            self.latency_ms = float(body["latency_ms"] or 0)
        if "inject" in body:
            rules = []
            for item in body["inject"] or []:
                if not isinstance(item, dict) or "code" not in item:
                    raise bad_request("each inject rule needs a code")
                rules.append(
                    Rule(
                        match={k: str(item[k]) for k in _MATCH_KEYS if k in item},
                        code=int(item["code"]),
                        count=int(item.get("count", 1)),
                        message=str(item.get("message", "")),
                        retry_after=int(item.get("retryAfterSeconds", 1)),
                    )
                )
            self.rules = rules
        return self.describe()

    def describe(self) -> JSON:
        return {
            "latency_ms": self.latency_ms,
            "inject": [{**r.match, "code": r.code, "count": r.count} for r in self.rules],
        }

    def take(self, entry: JSON) -> ApiError | None:
        """The injected failure for this call, if a rule with calls left matches it."""
        for rule in self.rules:
            if rule.count != 0 and rule.matches(entry):
                if rule.count > 0:
                    rule.count -= 1
                return rule.error(entry)
        return None
