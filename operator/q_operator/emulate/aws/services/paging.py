"""nextToken pagination shared by the services: opaque tokens that name the last item returned.

A token is a cursor (the position of the last item of the page in creation order), not an offset,
so resources created or deleted while a client pages neither repeat nor push others out of the
listing; a throttled page is retried with the same token and resumes where it stopped.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Sequence
from typing import TypeVar

from q_operator.emulate.aws.errors import ApiError

T = TypeVar("T")


def _invalid() -> ApiError:
    return ApiError(
        "ValidationException",
        "Invalid nextToken",
        reason="FIELD_VALIDATION_FAILED",
        fields=[{"name": "nextToken", "message": "Invalid nextToken"}],
    )


def page(entries: Sequence[tuple[int, T]], token: str | None, size: int) -> tuple[list[T], str | None]:
    """One page of `(position, item)` entries (ascending positions) after the token's position,
    and the token for the next page (None on the last page)."""
    after = 0
    if token:
        try:
            kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
            after = int(number)
        except ValueError:
            raise _invalid() from None
        if kind != "after":
            raise _invalid()
    start = bisect.bisect_right(entries, after, key=lambda entry: entry[0])
    chosen = entries[start : start + size]
    following = None
    if start + size < len(entries):
        following = base64.urlsafe_b64encode(f"after:{chosen[-1][0]}".encode()).decode()
    return [item for _, item in chosen], following
