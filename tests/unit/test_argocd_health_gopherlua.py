"""The Argo CD health checks give the same answers on Argo CD's own Lua VM as on lupa.

Argo CD runs health checks on github.com/yuin/gopher-lua, not on the C Lua inside lupa. The program
testenv/cmd/argocd-health runs a check on gopher-lua at the version Argo CD pins, with the libraries
Argo CD opens: for a check from argocd-cm only package, base and table (no string, math, os or io);
for a built-in check under Argo CD's resource_customizations/, every library. Both are tried.
"""

from __future__ import annotations

import json
import subprocess
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator.engine import conditions
from q_operator.healthchecks import UPSTREAM_ROOT, recorded_statuses, run_health_check, upstream_dir
from q_operator.registry import KINDS
from tests.argocd import argocd_health_tool, gopher_lua_health

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
FIXTURES = ROOT / "tests" / "fixtures" / "status"
LIBS = {"argocd-cm": False, "open-libs": True}
KIND_NAMES = [kind.kind.lower() for kind in KINDS]


def lupa_answer(script: str, obj: dict[str, Any]) -> dict[str, str]:
    status, message = run_health_check(script, obj)
    return {"status": status, "message": message}


def recorded(kind: str) -> list[tuple[str, Path, dict[str, Any]]]:
    """(verdict from the file name, path, object) of every recorded status of one kind."""
    return [
        (verdict, path, json.loads(path.read_text()))
        for info, verdict, _, path in recorded_statuses(FIXTURES)
        if info.kind.lower() == kind
    ]


@pytest.mark.parametrize("libs", sorted(LIBS))
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_gopher_lua_gives_every_recorded_status_its_verdict(kind: str, libs: str) -> None:
    cases = recorded(kind)
    assert cases, f"no recorded status for {kind}"
    answers = gopher_lua_health(ARGOCD / f"{kind}.lua", [obj for _, _, obj in cases], LIBS[libs])
    for (verdict, path, _), answer in zip(cases, answers, strict=True):
        assert "error" not in answer, f"{path.name}: {answer['error']}"
        assert answer["status"] == verdict, f"{path.name}: {answer}"
        assert answer["message"], f"{path.name}: Argo CD shows the message beside the verdict"


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_lupa_and_gopher_lua_agree_on_every_recorded_status(kind: str) -> None:
    script = ARGOCD / f"{kind}.lua"
    cases = recorded(kind)
    answers = gopher_lua_health(script, [obj for _, _, obj in cases])
    for (_, path, obj), answer in zip(cases, answers, strict=True):
        assert answer == lupa_answer(script.read_text(), obj), path.name


def condition_space(kind: str) -> list[dict[str, Any]]:
    """Objects for every pair of Ready and Synced condition the engine can write, for the current
    and an older generation, alive and being deleted, with and without status detail, and paused
    (q-operator.dev/paused) with the documented value, a value that also pauses, and "false"."""
    readies: list[tuple[str, str] | None] = [None, ("True", conditions.AVAILABLE)]
    readies += [("False", reason) for reason in conditions.READY_REASONS if reason != conditions.AVAILABLE]
    synceds: list[tuple[str, str] | None] = [None, ("True", conditions.RECONCILE_SUCCESS)]
    synceds += [
        ("False", reason) for reason in conditions.SYNCED_REASONS if reason != conditions.RECONCILE_SUCCESS
    ]
    detail = next(info.health_detail for info in KINDS if info.kind.lower() == kind)
    objects = []
    for ready, synced, observed, deleting, with_detail, paused in product(
        readies, synceds, (2, 1), (False, True), (False, True), (None, "true", "yes", "false")
    ):
        conds = [
            {"type": name, "status": pair[0], "reason": pair[1], "message": f"{pair[1]} happened"}
            | {"observedGeneration": observed}
            for name, pair in (("Ready", ready), ("Synced", synced))
            if pair is not None
        ]
        status: dict[str, Any] = {"observedGeneration": observed, "conditions": conds}
        if with_detail and detail:
            status[detail] = "SOME_STATE"
        metadata: dict[str, Any] = {"name": "n", "generation": 2}
        if deleting:
            metadata["deletionTimestamp"] = "2026-11-23T10:00:00Z"
        if paused is not None:
            metadata["annotations"] = {"q-operator.dev/paused": paused}
        objects.append({"kind": kind, "metadata": metadata, "status": status})
    return objects


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_lupa_and_gopher_lua_agree_on_every_condition_the_engine_writes(kind: str) -> None:
    script = ARGOCD / f"{kind}.lua"
    objects = condition_space(kind)
    answers = gopher_lua_health(script, objects)
    text = script.read_text()
    differ = [
        (obj["status"]["conditions"], answer)
        for obj, answer in zip(objects, answers, strict=True)
        if answer != lupa_answer(text, obj)
    ]
    assert not differ, f"{len(differ)} of {len(objects)} differ, first: {differ[0]}"


def test_argo_cds_own_health_tests_pass_on_gopher_lua() -> None:
    """What Argo CD's TestLuaHealthScript does with resource_customizations/, case by case."""
    root = ARGOCD / UPSTREAM_ROOT
    done = subprocess.run(
        [str(argocd_health_tool()), "-test", str(root)], capture_output=True, text=True, timeout=300
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    failed = [r for r in results if not r["ok"]]
    assert not failed, f"{len(failed)} failed, first: {failed[0]}"
    assert done.returncode == 0, done.stderr
    assert len(results) == len(recorded_statuses(FIXTURES)), "every recorded status is one case"
    for info in KINDS:
        spec = yaml.safe_load((ARGOCD / upstream_dir(info) / "health_test.yaml").read_text())
        assert {t["healthStatus"]["status"] for t in spec["tests"]} >= {
            "Healthy",
            "Progressing",
            "Degraded",
            "Suspended",
        }


def write(tmp_path: Path, lua: str) -> Path:
    path = tmp_path / "health.lua"
    path.write_text(lua)
    return path


def test_an_argocd_cm_check_gets_no_string_math_or_global_os_but_require_os_reads_the_clock(
    tmp_path: Path,
) -> None:
    probe = write(
        tmp_path,
        'local os2 = require("os")\n'
        'return {status = "Healthy", message = type(string) .. " " .. type(math) .. " " .. type(os)'
        ' .. " " .. type(io) .. " " .. type(os2.time) .. " " .. type(os2.exit)}',
    )
    closed, opened = (gopher_lua_health(probe, [{}], open_libs)[0] for open_libs in (False, True))
    assert closed == {"status": "Healthy", "message": "nil nil nil nil function nil"}
    assert opened == {"status": "Healthy", "message": "table table table table function nil"}


def test_the_verdict_is_read_as_argo_cd_reads_it(tmp_path: Path) -> None:
    returns = {
        'return {status = "Bogus", message = "x"}': {
            "status": "Unknown",
            "message": "Lua returned an invalid health status",
        },
        "return {}": {"status": "", "message": ""},
        "return nil": {"status": "", "message": ""},
        'return "Healthy"': {"error": "expect table output from Lua script, not string"},
    }
    for lua, want in returns.items():
        assert gopher_lua_health(write(tmp_path, lua), [{}])[0] == want, lua


def test_objects_arrive_as_argo_cd_passes_them(tmp_path: Path) -> None:
    """Nulls vanish, lists are 1-based, integers print without a decimal point."""
    probe = write(
        tmp_path,
        'return {status = "Healthy", message = tostring(obj.n) .. " " .. tostring(obj.gone)'
        ' .. " " .. #obj.list .. " " .. obj.list[1]}',
    )
    answer = gopher_lua_health(probe, [{"n": 3, "gone": None, "list": ["a", None, "b"]}])[0]
    assert answer == {"status": "Healthy", "message": "3 nil 2 a"}


def test_a_runaway_check_is_stopped_by_argo_cds_deadline(tmp_path: Path) -> None:
    answer = gopher_lua_health(write(tmp_path, "while true do end"), [{}])[0]
    assert "deadline exceeded" in answer["error"]
