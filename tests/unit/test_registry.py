"""Every registered kind states the facts the generators, the demo and the tests read from it, and
they agree with its models and samples: a new kind cannot forget one, nor get one wrong unnoticed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator.kinds.base import KindInfo
from q_operator.registry import KINDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
DOCS = ROOT / "docs"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_id_and_arn_fields_are_status_fields(kind: KindInfo[Any, Any]) -> None:
    fields = kind.status_model.model_fields
    assert kind.id_field in fields and kind.id_field in kind.ref_fields
    assert not kind.arn_field or kind.arn_field in fields
    assert all(ref in fields for ref in kind.ref_fields)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_a_listed_kind_names_its_parent_among_its_ref_fields_and_may_list(kind: KindInfo[Any, Any]) -> None:
    """List mode sweeps each parent with the kind's List call: the parent is part of the ref, and the
    IAM policy generated from iam_actions allows the call (a List action of the kind's service)."""
    if kind.list_parent is None:
        return  # no List call: its Ready objects are observed one by one
    assert set(kind.list_parent) < set(kind.ref_fields)
    assert any(
        action.split(":", 1)[1].startswith("List") and "Tags" not in action for action in kind.iam_actions
    )


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_iam_actions_are_of_one_service_and_pass_role_names_some_of_them(kind: KindInfo[Any, Any]) -> None:
    assert kind.iam_actions, "a kind that calls AWS needs IAM actions"
    prefixes = {action.split(":", 1)[0] for action in kind.iam_actions}
    assert len(prefixes) == 1 and all(":" in a for a in kind.iam_actions)
    assert len(set(kind.iam_actions)) == len(kind.iam_actions)
    if kind.pass_role is not None:
        assert set(kind.pass_role.actions) <= set(kind.iam_actions)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_the_sample_shows_the_kind(kind: KindInfo[Any, Any]) -> None:
    assert kind.sample.startswith(f"{kind.singular}-")
    docs = [d for d in yaml.safe_load_all((SAMPLES / kind.sample).read_text()) if isinstance(d, dict)]
    assert [d["apiVersion"] for d in docs if d.get("kind") == kind.kind] == [kind.api_version]


def test_every_sample_file_is_named_after_a_registered_kind() -> None:
    singulars = {kind.singular for kind in KINDS}
    for path in SAMPLES.glob("*.yaml"):
        assert path.name.split("-", 1)[0] in singulars, path.name


def test_kinds_are_named_once() -> None:
    for attribute in ("kind", "plural", "singular"):
        values = [getattr(kind, attribute) for kind in KINDS]
        assert len(values) == len(set(values)), attribute
    shorts = [s for kind in KINDS for s in kind.short_names]
    assert len(shorts) == len(set(shorts))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_the_kinds_page_explains_each_of_its_iam_actions(kind: KindInfo[Any, Any]) -> None:
    page = (DOCS / f"{kind.singular}.md").read_text()
    permissions = page[page.index("## Permissions") :]
    for action in kind.iam_actions:
        assert f"`{action}`" in permissions or f"`{action.split(':', 1)[1]}`" in permissions, action
    assert f"`{kind.kind}`" in permissions, "the page names its statement in docs/iam-policy.json"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_kind_holds_its_models_to_botocore(kind: KindInfo[Any, Any]) -> None:
    assert (ROOT / "tests" / "unit" / f"test_{kind.singular}_botocore.py").exists()


def test_every_registered_kind_has_its_test_facts() -> None:
    """The end-to-end, reliability and bench suites run every kind through tests/kinds.py: a kind
    registered without its KindFacts would silently be left out of them."""
    from tests.kinds import TEST_KINDS, WRITTEN

    assert [kind.kind for kind in KINDS if kind.kind not in WRITTEN] == []
    assert [facts.info for facts in TEST_KINDS] == list(KINDS)
