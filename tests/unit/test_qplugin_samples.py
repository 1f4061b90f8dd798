"""The QPlugin samples a new user starts from: the valid ones pass both the model and the CRD, the
invalid one is refused by the CRD naming the field (as `kubectl apply` would show)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator import crdgen
from q_operator.kinds import qplugin
from tests.unit.crdcheck import rejections

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
VALID_SAMPLES = ["qplugin-custom.yaml", "qplugin-custom-configmap.yaml", "qplugin-salesforce-oauth.yaml"]


def _qplugins(name: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((SAMPLES / name).read_text()) if isinstance(d, dict)]
    return [d for d in docs if d.get("kind") == "QPlugin"]


@pytest.mark.parametrize("name", VALID_SAMPLES)
def test_valid_sample_passes_the_model_and_the_crd(name: str) -> None:
    (obj,) = _qplugins(name)
    assert obj["metadata"]["namespace"] == "default"
    qplugin.QPluginSpec.model_validate(obj["spec"])
    assert rejections(crdgen.crd_for(qplugin.KIND), obj) == []


def test_configmap_sample_ships_the_configmap_it_refers_to() -> None:
    docs = list(yaml.safe_load_all((SAMPLES / "qplugin-custom-configmap.yaml").read_text()))
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (obj,) = _qplugins("qplugin-custom-configmap.yaml")
    ref = obj["spec"]["customPluginConfiguration"]["apiSchema"]["payloadFrom"]["configMapKeyRef"]
    assert configmap["metadata"]["name"] == ref["name"]
    assert ref["key"] in configmap["data"]


def test_invalid_sample_is_refused_naming_the_display_name() -> None:
    (obj,) = _qplugins("qplugin-invalid.yaml")
    errors = rejections(crdgen.crd_for(qplugin.KIND), obj)
    assert errors and errors[0].startswith("spec.displayName")
    with pytest.raises(ValueError, match="displayName"):
        qplugin.QPluginSpec.model_validate(obj["spec"])


def test_every_qplugin_example_in_the_docs_is_valid() -> None:
    text = (SAMPLES.parent / "docs" / "qplugin.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    examples = [
        d for b in blocks for d in yaml.safe_load_all(b) if isinstance(d, dict) and d.get("kind") == "QPlugin"
    ]
    assert len(examples) >= 2
    for obj in examples:
        qplugin.QPluginSpec.model_validate(obj["spec"])
        assert rejections(crdgen.crd_for(qplugin.KIND), obj) == []
