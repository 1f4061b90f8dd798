"""The served services: one line each. A new service is its module plus a line here."""

from __future__ import annotations

from typing import Any

from q_operator.emulate.aws.call import Service
from q_operator.emulate.aws.services import appflow, qapps, qbusiness, sts

SERVICES: tuple[Service[Any, Any], ...] = (
    qbusiness.SERVICE,
    qapps.SERVICE,
    appflow.SERVICE,
    sts.SERVICE,
)
BY_NAME: dict[str, Service[Any, Any]] = {service.name: service for service in SERVICES}
