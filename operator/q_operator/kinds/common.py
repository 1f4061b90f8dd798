"""Small helpers every kind needs alike: reading a botocore error (and a resource that is not there),
writing AWS's times as RFC 3339, the rules on a spec's tag keys, and the owner's tag changes. A kind
may import this module (and base.py), never another kind; nothing here knows a particular AWS
service."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

from botocore.exceptions import ClientError

from q_operator.kinds.base import OWNER_TAG, RESERVED_TAG_PREFIX, NotFoundError, Owner

P = ParamSpec("P")
T = TypeVar("T")
TagsT = TypeVar("TagsT", bound=Mapping[str, str])

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


def absent_if_not_found(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
    """`call(*args, **kwargs)`, or None when AWS answers that what it names does not exist: a read of
    a resource that is gone, or a delete of one already deleted. Any other error is raised as is."""
    try:
        return call(*args, **kwargs)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


@contextmanager
def not_found_as(field: str, message: str) -> Iterator[None]:
    """Raise a NotFoundError naming the spec `field` when a call inside answers that something does
    not exist (the application or instance a listing is for: the user's to fix, not a retry)."""
    try:
        yield
    except ClientError as error:
        if is_not_found(error):
            raise NotFoundError(field=field, message=message) from error
        raise


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


def cel_string(value: str) -> str:
    """A CEL single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


#: What the CRD (CEL) and the model both say of a tag key under the operator's prefix: one message,
#: so a user reads the same words whether the API server or the operator refused the object.
RESERVED_TAG_KEY_MESSAGE = (
    f"spec.tags keys must not start with {RESERVED_TAG_PREFIX} (reserved for the operator)"
)


def tag_key_length_rule(max_length: int) -> dict[str, str]:
    """The CEL rule on a spec's tags map for its keys' length (map keys cannot carry a schema's
    minLength/maxLength). O(1) per key, so its cost fits the API server's budget."""
    return {
        "rule": f"self.all(k, k.size() >= 1 && k.size() <= {max_length})",
        "message": f"spec.tags keys must be 1 to {max_length} characters long",
    }


def reserved_tag_key_rule() -> dict[str, str]:
    """The CEL rule on a spec's tags map refusing the operator's prefix; the model says the same
    through `refuse_reserved_tag_keys`."""
    return {
        "rule": f"self.all(k, !k.startsWith({cel_string(RESERVED_TAG_PREFIX)}))",
        "message": RESERVED_TAG_KEY_MESSAGE,
    }


def refuse_reserved_tag_keys(tags: TagsT) -> TagsT:
    """The model's half of `reserved_tag_key_rule` (a field validator's body): the operator's own tags
    (the owner, a payload hash) would be overwritten or removed by a user's."""
    if any(key.startswith(RESERVED_TAG_PREFIX) for key in tags):
        raise ValueError(RESERVED_TAG_KEY_MESSAGE)
    return tags


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
