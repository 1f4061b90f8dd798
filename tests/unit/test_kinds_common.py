"""The helpers every kind shares (kinds/common.py): a not-found answer read once for all, and the
reserved tag prefix refused in the same words by the CRD and by the model of every kind that has tags."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from q_operator import crdgen
from q_operator.kinds import base
from q_operator.kinds.common import (
    RESERVED_TAG_KEY_MESSAGE,
    absent_if_not_found,
    not_found_as,
)
from tests.kinds import TEST_KINDS, KindFacts
from tests.unit.crdcheck import rejections


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "said by AWS"}}, "GetThing")


def _raising(code: str) -> Any:
    def call(**kwargs: Any) -> dict[str, Any]:
        raise _error(code)

    return call


def test_absent_if_not_found_passes_the_arguments_and_returns_the_answer() -> None:
    def get(*, thingId: str) -> dict[str, str]:
        return {"thingId": thingId}

    assert absent_if_not_found(get, thingId="t-1") == {"thingId": "t-1"}


def test_absent_if_not_found_is_none_for_a_resource_that_does_not_exist() -> None:
    assert absent_if_not_found(_raising("ResourceNotFoundException"), thingId="t-1") is None


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException", "ConflictException"])
def test_absent_if_not_found_raises_every_other_error_as_is(code: str) -> None:
    with pytest.raises(ClientError) as raised:
        absent_if_not_found(_raising(code), thingId="t-1")
    assert raised.value.response["Error"]["Code"] == code


def test_not_found_as_names_the_spec_field() -> None:
    with (
        pytest.raises(base.NotFoundError) as raised,
        not_found_as("applicationId", "application a does not exist"),
    ):
        _raising("ResourceNotFoundException")()
    assert raised.value.field == "applicationId"
    assert str(raised.value) == "application a does not exist"
    assert isinstance(raised.value.__cause__, ClientError), "the AWS answer stays readable as the cause"


def test_not_found_as_leaves_other_errors_alone() -> None:
    with pytest.raises(ClientError), not_found_as("applicationId", "application a does not exist"):
        _raising("ThrottlingException")()


@pytest.mark.parametrize("facts", [f for f in TEST_KINDS if f.tagged], ids=lambda f: f.kind)
def test_every_kind_refuses_the_reserved_prefix_in_the_same_words_in_its_crd_and_its_model(
    facts: KindFacts,
) -> None:
    crd = crdgen.crd_for(facts.info)
    model = facts.info.spec_model
    near = {"team": "a", "q-operator.devx": "b"}
    assert rejections(crd, facts.manifest("tagged", "default", tags=near)) == []
    model.model_validate(facts.manifest("tagged", "default", tags=near)["spec"])

    reserved = facts.manifest("tagged", "default", tags={"q-operator.dev/mine": "a"})
    said = rejections(crd, reserved)
    assert len(said) == 1 and RESERVED_TAG_KEY_MESSAGE in said[0], said
    with pytest.raises(ValidationError) as raised:
        model.model_validate(reserved["spec"])
    assert [error["loc"] for error in raised.value.errors()] == [("tags",)]
    assert RESERVED_TAG_KEY_MESSAGE in raised.value.errors()[0]["msg"]
