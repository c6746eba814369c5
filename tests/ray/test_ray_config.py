"""The shipped cluster example loads, and places each model where it says (no Ray
needed: nothing connects until a pool is made)."""

from __future__ import annotations

from pathlib import Path

from smmf_flow.models import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_cluster_config_loads_and_places_a_model_on_each_machine() -> None:
    registry = ModelRegistry.from_toml(ROOT / "configs" / "ray-cluster.toml")
    a, b = registry.model("smollm2-a"), registry.model("smollm2-b")
    assert (a.placement, b.placement) == ("ray", "ray")
    assert a.resources == {"box_a": 1} and b.resources == {"box_b": 1}
    assert registry.group("chat").members == ["smollm2-a", "smollm2-b"]
    assert registry.model("minilm").placement == "ray"
