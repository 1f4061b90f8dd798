"""The kinds this operator manages: one line per kind. The engine and the CRD generator reach kinds
only through this tuple."""

from __future__ import annotations

from typing import Any

from q_operator.kinds import appflowconnector, qlibraryitem, qplugin
from q_operator.kinds.base import KindInfo

KINDS: tuple[KindInfo[Any, Any], ...] = (qplugin.KIND, qlibraryitem.KIND, appflowconnector.KIND)
