"""The Argo CD health checks are generated from one template: the committed files must match."""

from __future__ import annotations

from pathlib import Path

from q_operator.healthchecks import rendered_files

ARGOCD = Path(__file__).resolve().parents[2] / "argocd"


def test_committed_health_checks_match_the_template() -> None:
    for name, text in rendered_files().items():
        assert (ARGOCD / name).read_text() == text, f"argocd/{name} is stale: run make crds"


def test_every_kind_has_a_health_check_and_nothing_else_is_there() -> None:
    assert sorted(p.name for p in ARGOCD.iterdir()) == sorted(rendered_files())
