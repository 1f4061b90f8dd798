"""Which handler table serves which signing service."""

from __future__ import annotations

from q_operator.emulate.aws.call import Handler
from q_operator.emulate.aws.services import appflow, qapps, qbusiness

HANDLERS: dict[str, dict[str, Handler]] = {
    "qbusiness": qbusiness.HANDLERS,
    "qapps": qapps.HANDLERS,
    "appflow": appflow.HANDLERS,
}
