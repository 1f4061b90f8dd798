"""The one exception the stand-in's service code raises: an AWS error named by its modelled shape.

The wire layer turns it into a rest-json error using the service model (status code, header-bound
members such as a `Retry-After` header), so service code never builds HTTP responses itself.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An AWS error: `code` is the error shape's name, `fields` its modelled members besides message."""

    def __init__(
        self, code: str, message: str, *, http_status: int | None = None, common: bool = False, **fields: Any
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        """Only for codes the model does not have (e.g. an unknown operation); else the model's."""
        self.common = common
        """An error of AWS's front door (credentials), not of the service's model, even where the
        model has a shape of that name (STS's ExpiredTokenException): each protocol words it."""
        self.fields: dict[str, Any] = fields


def not_found(resource_id: str, resource_type: str, message: str | None = None) -> ApiError:
    """ResourceNotFoundException with resourceId and resourceType, which some models require (the
    serializer drops members a model does not have)."""
    text = message or f"{resource_type} {resource_id} was not found"
    return ApiError("ResourceNotFoundException", text, resourceId=resource_id, resourceType=resource_type)


def conflict(resource_id: str, resource_type: str, message: str) -> ApiError:
    """ConflictException with resourceId and resourceType, which some models require (the serializer
    drops members a model does not have)."""
    return ApiError("ConflictException", message, resourceId=resource_id, resourceType=resource_type)


def quota_exceeded(resource_id: str, resource_type: str, message: str) -> ApiError:
    """ServiceQuotaExceededException; the serializer fills serviceCode/quotaCode where a model wants them."""
    return ApiError(
        "ServiceQuotaExceededException", message, resourceId=resource_id, resourceType=resource_type
    )
