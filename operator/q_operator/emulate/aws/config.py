"""The stand-in's knobs: set from CLI flags at start and changed at runtime by POST /_emulator/config.

Every key of the admin JSON is a field with the same name: the generic ones (accounts, faults, read
lag, lost answers) here in `Settings`, and each service's own (its quotas, the resources it takes to
exist, its failures) in that service's `Knobs`, which `Settings.services` keeps by service name. A
service declares its knobs once, in its module: the fields, how a JSON value becomes each one, which
of them `quotas` sets, and its CLI flags; nothing here names a service. `apply()` checks types so a
typo in a test fails loudly instead of silently configuring nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

LOST_ANSWER_KINDS = ("reset", "timeout")
"""How a lost answer is lost: the connection is reset, or the answer is held past the read timeout."""


@dataclass(frozen=True)
class Flag:
    """A command-line flag of `q-operator emulate aws`: it sets the start value of one config key."""

    name: str
    """The flag, `--plugins-per-application`."""
    key: str
    """The config key it sets; `quotas.NAME` sets one quota."""
    help: str
    type: Callable[[str], Any] = str
    """Turns the flag's text into the key's JSON value (argparse reports a ValueError)."""
    metavar: str | None = None
    repeatable: bool = False
    """Given several times, the key gets the list of the values."""

    def change(self, value: Any) -> dict[str, Any]:
        """The admin-config change the flag's value stands for."""
        key, dot, quota = self.key.partition(".")
        return {key: {quota: value}} if dot else {key: value}


@dataclass
class Knobs:
    """One service's own settings, a dataclass whose fields are its config keys.

    A service subclasses it (a dataclass with defaults that make a well-behaved AWS) and names, as
    class variables: `PARSE`, each key's parser from a JSON value (raising TypeError or ValueError);
    `QUOTAS`, the fields `quotas` sets (by their names, as integers) rather than a key of their own;
    `FLAGS`, its command-line flags. The generic core reads only these.
    """

    PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    QUOTAS: ClassVar[tuple[str, ...]] = ()
    FLAGS: ClassVar[tuple[Flag, ...]] = ()

    def set(self, key: str, value: Any) -> None:
        setattr(self, key, self.PARSE[key](value))

    def set_quota(self, name: str, limit: Any) -> None:
        setattr(self, name, int(limit))

    def to_json(self) -> dict[str, Any]:
        """The keys (quotas apart, under `quotas`) as GET /_emulator/config shows them."""
        return {f.name: _shown(getattr(self, f.name)) for f in fields(self) if f.name not in self.QUOTAS}

    def quotas(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.QUOTAS}


def _shown(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


@dataclass
class InjectRule:
    """Answer the next `count` calls of `operation` (None = every call) with a modelled error."""

    operation: str
    error: str
    count: int | None = 1
    message: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoseRule:
    """Lose the answer of the next `count` writes of `operation` that act (None = every one), by `kind`:
    a certain lost answer of a chosen kind, where `lost_answer_rate` leaves both to chance."""

    operation: str
    kind: str = "reset"
    count: int | None = 1


GENERIC = frozenset(
    {
        "account_id", "throttle", "fail_rate", "latency_ms", "throttle_percent", "throttle_for_seconds",
        "inject", "access_denied", "seed", "read_lag", "lost_answer_rate", "lost_answer_kinds",
        "lost_answer_hold", "lose_answers", "quotas",
    }
)  # fmt: skip
"""The config keys `Settings` handles itself; a service's knobs may not take them."""


@dataclass
class Settings:
    """Everything the admin API can change; defaults make a well-behaved, fast AWS."""

    account_id: str = "123456789012"
    throttle: dict[str, float] = field(default_factory=dict)
    """Token-bucket rates per operation key: `Op`, `service:Op` or `*` (a default for each op)."""
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    throttle_percent: float = 0.0
    """With `throttle_for_seconds`: throttle this share of calls (0-100) for a while."""
    throttle_until: float = 0.0
    inject: list[InjectRule] = field(default_factory=list)
    access_denied: list[str] = field(default_factory=list)
    """Operation keys (`Op`, `service:Op`, `*`) answered with AccessDeniedException."""
    seed: int | None = None
    """Seeds every random choice (faults, lag draws, lost answers): a run is repeatable."""
    read_lag: float = 0.0
    """Up to this many seconds before a write shows in Get/List/Describe (drawn per write)."""
    lost_answer_rate: float = 0.0
    """Share (0-1) of successful writes whose answer is lost after they acted."""
    lost_answer_kinds: list[str] = field(default_factory=lambda: list(LOST_ANSWER_KINDS))
    lost_answer_hold: float = 65.0
    """Seconds a `timeout` lost answer is held before the connection is reset (botocore reads for 60)."""
    lose_answers: list[LoseRule] = field(default_factory=list)
    """Writes whose answer is lost for certain, before `lost_answer_rate` is drawn (first match wins)."""
    services: dict[str, Knobs] = field(default_factory=dict)
    """Each served service's knobs, by service name (see `add`)."""

    def add(self, service: str, knobs: Knobs) -> None:
        """Keep a service's knobs; its keys and quotas must be its own."""
        taken = GENERIC | {key for other in self.services.values() for key in (*other.PARSE, *other.QUOTAS)}
        clash = taken & {*knobs.PARSE, *knobs.QUOTAS}
        if clash:
            raise ValueError(f"{service}: config keys {sorted(clash)} are taken")
        self.services[service] = knobs

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        quotas: dict[str, int] = {}
        for f in fields(self):
            if f.name != "services":
                out[f.name] = _shown(getattr(self, f.name))
        for knobs in self.services.values():
            out.update(knobs.to_json())
            quotas.update(knobs.quotas())
        out["quotas"] = quotas
        return out

    def apply(self, changes: dict[str, Any], now: float) -> None:
        """Apply a partial admin config; raises ValueError naming the bad key."""
        for key, value in changes.items():
            try:
                self._apply_one(key, value, now)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"config {key!r}: {exc}") from None

    def _owner(self, key: str) -> Knobs:
        found = next((k for k in self.services.values() if key in k.PARSE), None)
        if found is None:
            raise ValueError("unknown key")
        return found

    def _apply_one(self, key: str, value: Any, now: float) -> None:
        if key in ("fail_rate", "latency_ms", "throttle_percent"):
            setattr(self, key, number(value))
        elif key == "throttle_for_seconds":
            self.throttle_until = now + number(value)
        elif key == "throttle":
            self.throttle = {str(k): number(v) for k, v in mapping(value).items()}
        elif key == "inject":
            self.inject = [InjectRule(**mapping(rule)) for rule in sequence(value)]
        elif key == "access_denied":
            self.access_denied = [str(k) for k in sequence(value)]
        elif key == "quotas":
            for name, limit in mapping(value).items():
                owner = next((k for k in self.services.values() if name in k.QUOTAS), None)
                if owner is None:
                    raise ValueError(f"unknown quota {name!r}")
                owner.set_quota(name, limit)
        elif key == "account_id":
            self.account_id = str(value)
        elif key == "seed":
            if isinstance(value, bool) or not isinstance(value, int | None):
                raise TypeError("must be an integer")
            self.seed = value
        elif key == "lost_answer_hold":
            self.lost_answer_hold = positive(value)
        elif key == "read_lag":
            self.read_lag = at_least_zero(value)
        elif key == "lost_answer_rate":
            rate = number(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError("must be between 0 and 1")
            self.lost_answer_rate = rate
        elif key == "lost_answer_kinds":
            kinds = [str(k).lower() for k in sequence(value)]
            if not kinds or any(k not in LOST_ANSWER_KINDS for k in kinds):
                raise ValueError(f"kinds must be among {LOST_ANSWER_KINDS}")
            self.lost_answer_kinds = kinds
        elif key == "lose_answers":
            rules = [LoseRule(**mapping(rule)) for rule in sequence(value)]
            if any(rule.kind not in LOST_ANSWER_KINDS for rule in rules):
                raise ValueError(f"kinds must be among {LOST_ANSWER_KINDS}")
            if any(rule.count is not None and rule.count < 1 for rule in rules):
                raise ValueError("count must be at least 1 (or null: every write)")
            self.lose_answers = rules
        else:
            self._owner(key).set(key, value)


# Parsers from a JSON value, for `Settings` and for the services' `Knobs.PARSE`.


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("must be a number")
    return float(value)


def positive(value: Any) -> float:
    found = number(value)
    if found <= 0:
        raise ValueError("must be greater than 0")
    return found


def at_least_zero(value: Any) -> float:
    found = number(value)
    if found < 0:
        raise ValueError("must not be negative")
    return found


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("must be an object")
    return value


def sequence(value: Any) -> list[Any]:
    """A list, or a comma-separated string of its items."""
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if not isinstance(value, list):
        raise TypeError("must be a list")
    return value


def names(value: Any) -> set[str]:
    return {str(v) for v in sequence(value)}


def names_or_any(value: Any) -> set[str] | None:
    """A `known_*` list: these exist and nothing else; None: any well-formed one exists."""
    return None if value is None else names(value)


def optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def comma_list(text: str) -> list[str]:
    """A flag's `A,B` as the list of its non-empty items."""
    return [part.strip() for part in text.split(",") if part.strip()]


def known_flag(things: str) -> Flag:
    """The `--known-THINGS ID,ID` flag of the `known_THINGS` key (see `names_or_any`)."""
    return Flag(
        f"--known-{things}",
        f"known_{things}",
        f"comma list of existing {things}; when absent any well-formed one exists",
        type=comma_list,
        metavar="ID,ID",
    )


def op_keys(service: str, operation: str) -> tuple[str, str, str]:
    """The keys an operation answers to in config, most specific first."""
    return f"{service}:{operation}", operation, "*"
