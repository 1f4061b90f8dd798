"""nextToken pagination shared by the three services: opaque tokens that encode an offset."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from q_operator.emulate.aws.errors import ApiError

T = TypeVar("T")


def page(items: Sequence[T], token: str | None, size: int) -> tuple[list[T], str | None]:
    """One page of `items` and the token for the next one (None on the last page)."""
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
        except ValueError:
            raise ApiError(
                "ValidationException",
                "Invalid nextToken",
                reason="FIELD_VALIDATION_FAILED",
                fields=[{"name": "nextToken", "message": "Invalid nextToken"}],
            ) from None
    end = start + size
    following = None
    if end < len(items):
        following = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode()
    return list(items[start:end]), following
