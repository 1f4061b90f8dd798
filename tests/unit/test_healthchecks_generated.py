"""The Argo CD health checks are generated from one template: the committed files must match, in both
layouts (argocd/<kind>.lua with the argocd-cm snippet, and Argo CD's resource_customizations/)."""

from __future__ import annotations

from pathlib import Path

import yaml

from q_operator.healthchecks import UPSTREAM_ROOT, health_lua, rendered_files, upstream_dir
from q_operator.registry import KINDS

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
FIXTURES = ROOT / "tests" / "fixtures" / "status"


def test_committed_health_checks_match_the_template() -> None:
    for name, text in rendered_files(FIXTURES).items():
        path = ARGOCD / name
        assert path.exists(), f"argocd/{name} is missing: run make crds"
        assert path.read_text() == text, f"argocd/{name} is stale: run make crds"


def test_every_kind_has_a_health_check_and_nothing_else_is_there() -> None:
    committed = sorted(str(p.relative_to(ARGOCD)) for p in ARGOCD.rglob("*") if p.is_file())
    assert committed == sorted(rendered_files(FIXTURES))


def test_upstream_layout_is_argo_cds_group_kind_tree_with_the_same_check() -> None:
    assert sorted(p.name for p in (ARGOCD / UPSTREAM_ROOT).iterdir()) == sorted(k.group for k in KINDS)
    for kind in KINDS:
        directory = ARGOCD / upstream_dir(kind)
        assert sorted(p.name for p in directory.iterdir()) == ["health.lua", "health_test.yaml", "testdata"]
        upstream, installed = health_lua(kind, upstream=True), health_lua(kind)
        # Only the header differs: the logic below it is the template, byte for byte.
        assert upstream.split("\n", 3)[3] == installed.split("\n", 3)[3]
        spec = yaml.safe_load((directory / "health_test.yaml").read_text())
        inputs = {t["inputPath"] for t in spec["tests"]}
        assert inputs == {f"testdata/{p.name}" for p in (directory / "testdata").iterdir()}
        for case in spec["tests"]:
            obj = yaml.safe_load((directory / case["inputPath"]).read_text())
            assert obj["kind"] == kind.kind and obj["apiVersion"] == kind.api_version, case["inputPath"]
            assert "status" in obj or case["healthStatus"]["status"] == "Progressing", case["inputPath"]
