"""What the stand-in remembers, per account and region: resources, idempotency tokens, the call log.

Plain dataclasses in dicts, mutated only on the server's event loop, so no locks. Plugin builds are
not timers: a plugin stores when its build ends and how, and `settle` applies that lazily whenever
anything reads the state, which keeps the server cheap and deterministic.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_LOGGED_REQUESTS = 200_000
"""The call log keeps the newest this many calls, so long runs do not grow without bound."""

TOKEN_TTL_SECONDS = 8 * 3600.0
"""How long a clientToken is remembered (AppFlow documents 8 hours; used for qbusiness too)."""


@dataclass
class Build:
    """A plugin build in flight: CREATE, UPDATE or DELETE, when it ends and whether it fails."""

    kind: str
    done_at: float
    fails: bool


@dataclass
class Plugin:
    application_id: str
    plugin_id: str
    arn: str
    params: dict[str, Any]
    """The plugin's current configuration as API members (displayName, type, serverUrl, ...)."""
    build_status: str
    state: str
    created_at: float
    updated_at: float
    tags: dict[str, str] = field(default_factory=dict)
    build: Build | None = None


@dataclass
class Category:
    id: str
    title: str
    color: str | None = None


@dataclass
class LibraryItem:
    instance_id: str
    library_item_id: str
    app_id: str
    app_version: int
    categories: list[str]
    status: str
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str
    is_verified: bool = False
    raters: list[str] = field(default_factory=list)
    """Callers (access key ids) who rated the item: ratingCount and isRatedByUser come from it."""


@dataclass
class Connector:
    label: str
    arn: str
    description: str | None
    lambda_arn: str | None
    provisioning_type: str
    version: int
    registered_at: float
    registered_by: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Remembered:
    """An idempotent call's first answer: the input's fingerprint and the output it got."""

    fingerprint: str
    output: dict[str, Any]
    expires: float


@dataclass
class Scope:
    """Everything of one account in one region."""

    plugins: dict[str, Plugin] = field(default_factory=dict)
    """By pluginId (unique across applications)."""
    items: dict[str, LibraryItem] = field(default_factory=dict)
    """By libraryItemId."""
    categories: dict[str, dict[str, Category]] = field(default_factory=dict)
    """instanceId -> id -> category."""
    connectors: dict[str, Connector] = field(default_factory=dict)
    """By connectorLabel."""
    tokens: dict[tuple[str, str, str], Remembered] = field(default_factory=dict)
    """(service, operation, clientToken) -> first answer."""


def fingerprint(params: dict[str, Any], token_member: str) -> str:
    """A stable digest of an input without its token: equal inputs, equal digests."""
    rest = {k: v for k, v in params.items() if k != token_member}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    """All scopes plus the request log."""

    def __init__(self) -> None:
        self.scopes: dict[tuple[str, str], Scope] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)

    def scope(self, account: str, region: str) -> Scope:
        key = (account, region)
        found = self.scopes.get(key)
        if found is None:
            found = self.scopes[key] = Scope()
        return found

    def clear(self) -> None:
        self.scopes.clear()
        self.requests.clear()
