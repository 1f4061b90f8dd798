"""QLibraryItem's models hold the same constraints as botocore's qapps model
(tests/unit/botocorecheck.py)."""

from __future__ import annotations

import pytest

from q_operator.kinds.qlibraryitem import QLibraryItemSpec
from tests.unit.botocorecheck import Binding, check, members, service_model, unbound_fields

QA = "qapps"

BINDINGS: list[Binding] = [
    # QLibraryItem spec ↔ CreateLibraryItemInput. botocore requires categories but accepts []: the
    # spec defaults it to [] and the adapter always sends it. itemStatus and isVerified are members of
    # UpdateLibraryItem / UpdateLibraryItemMetadata (CreateLibraryItem has neither).
    Binding(
        QLibraryItemSpec,
        "",
        QA,
        "CreateLibraryItemInput",
        ignore_members=members("categories"),
        extra_members=members("categories", "region", "deletionPolicy", "itemStatus", "isVerified"),
    ),
    # instanceId is not bound: botocore's InstanceId has no constraints at all, while the model asks
    # for one character at least (an empty instance-id header names no instance).
    Binding(QLibraryItemSpec, "appId", QA, "CreateLibraryItemInput.appId"),
    Binding(QLibraryItemSpec, "appVersion", QA, "CreateLibraryItemInput.appVersion"),
    Binding(QLibraryItemSpec, "categories", QA, "CreateLibraryItemInput.categories", check_required=False),
    Binding(QLibraryItemSpec, "categories[]", QA, "UUID"),
    Binding(QLibraryItemSpec, "itemStatus", QA, "UpdateLibraryItemInput.status"),
    Binding(QLibraryItemSpec, "isVerified", QA, "UpdateLibraryItemMetadataInput.isVerified"),
]


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: b.id)
def test_model_field_matches_botocore(binding: Binding) -> None:
    assert check(binding, service_model(QA)) == []


def test_every_spec_field_is_bound_to_botocore() -> None:
    assert unbound_fields(QLibraryItemSpec, BINDINGS, {"instanceId"}) == []
