"""Server-side printing: the JSONPath subset of printer columns, ages, and the Table kubectl reads."""

from __future__ import annotations

import pytest

from q_operator.emulate.kube.resources import PrinterColumn, ResourceType
from q_operator.emulate.kube.tables import human_duration, jsonpath, table

OBJ = {
    "metadata": {"name": "w", "labels": {"app.kubernetes.io/name": "x"}},
    "spec": {"size": 3, "items": [{"n": "a"}, {"n": "b"}]},
    "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.size", [3]),
        ("{.spec.size}", [3]),
        (".spec.items[1].n", ["b"]),
        (".spec.items[*].n", ["a", "b"]),
        (".spec.items[-1].n", ["b"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type!='Ready')].type", ["Synced"]),
        (".metadata.labels['app.kubernetes.io/name']", ["x"]),
        (".spec.missing", []),
    ],
)
def test_printer_column_jsonpath(path: str, expected: list[object]) -> None:
    assert jsonpath(OBJ, path) == expected


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_table_has_name_then_the_crd_columns_and_partial_metadata_rows() -> None:
    rt = ResourceType(
        group="g.example.com",
        version="v1",
        plural="ws",
        singular="w",
        kind="W",
        namespaced=True,
        builtin=False,
        printer_columns=(
            PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Size", "integer", ".spec.size", priority=1),
        ),
    )
    result = table(rt, [OBJ], "7", "Metadata")
    assert [c["name"] for c in result["columnDefinitions"]] == ["Name", "Ready", "Size"]
    assert result["columnDefinitions"][2]["priority"] == 1
    assert result["rows"][0]["cells"] == ["w", "True", 3]
    assert result["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert result["metadata"]["resourceVersion"] == "7"
