"""Small helpers every kind's adapter needs alike: reading a botocore error, writing AWS's times as
RFC 3339, and the owner's tag changes. A kind may import this module (and base.py), never another
kind; nothing here knows a particular AWS service."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from q_operator.kinds.base import OWNER_TAG, RESERVED_TAG_PREFIX, Owner

#: The longest tag value the services here accept (Q Business and AppFlow alike).
MAX_TAG_VALUE = 256

#: The error code every AWS service here answers for a resource that does not exist.
NOT_FOUND = "ResourceNotFoundException"


def error_code(error: ClientError) -> str:
    """botocore's error code: what errors are told apart by (never the HTTP status)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def is_not_found(error: ClientError) -> bool:
    """AWS says the resource (or something the call names) does not exist."""
    return error_code(error) == NOT_FOUND


def rfc3339(moment: datetime, timespec: Literal["auto", "seconds"] = "auto") -> str:
    """A time as RFC 3339 in UTC with a Z; naive times are taken as UTC. `auto` keeps the fraction
    of a second AWS gave; Kubernetes' own times (conditions) are to the second."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def aws_time(value: Any) -> str | None:
    """A time member of an AWS answer (boto3 gives a datetime) for status; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return rfc3339(value)
    return str(value)


def tag_changes(current: Mapping[str, str], desired: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(tags to set, keys to remove) to turn `current` into `desired`. The owner tag is never
    removed: losing it would make the resource look like nobody's."""
    to_set = {key: value for key, value in desired.items() if current.get(key) != value}
    to_remove = sorted(key for key in current if key not in desired and key != OWNER_TAG)
    return to_set, to_remove


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags a user set, without the operator's own (the reserved prefix): what an observe-only
    object compares, since the operator never tags a resource it only observes."""
    return {key: value for key, value in tags.items() if not key.startswith(RESERVED_TAG_PREFIX)}


def owner_tag_value(owner: Owner) -> str:
    """The owner tag's value: the owner mark, shortened (still unique: it keeps the uid) when it is
    longer than a tag value may be (a 63-character namespace and a 253-character name, say)."""
    mark = owner.mark
    if len(mark) <= MAX_TAG_VALUE:
        return mark
    digest = hashlib.sha256(mark.encode()).hexdigest()[:16]
    return f"{owner.namespace}.{digest}.{owner.uid}"


def seen_owner_mark(tag_value: str | None, owner: Owner) -> str | None:
    """The owner mark an owner tag stands for, as the engine compares it with `Owner.mark`."""
    return owner.mark if tag_value is not None and tag_value == owner_tag_value(owner) else tag_value
