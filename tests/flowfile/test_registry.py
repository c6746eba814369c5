"""Operator types: lazy built-ins, entry points, plugins, and nothing else."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest

from smmf_flow import MapOperator
from smmf_flow.errors import FlowError
from smmf_flow.flowfile.registry import BUILTINS, OperatorTypes


def test_built_in_names() -> None:
    for name in (
        "input",
        "map",
        "branch",
        "join",
        "prompt",
        "llm",
        "embedding",
        "router",
        "fallback",
    ):
        assert name in OperatorTypes()
    assert "stream_llm" not in OperatorTypes()  # streaming is `llm` with `stream: true`


def test_every_built_in_that_exists_has_the_kind_it_is_registered_under() -> None:
    types = OperatorTypes()
    for name in BUILTINS:
        assert types.resolve(name).kind == name


def test_unknown_type_lists_known_ones() -> None:
    with pytest.raises(
        FlowError,
        match=r"unknown operator type 'jion'; did you mean 'join'\? "
        r"\(known types: .*branch.*map.*\)",
    ):
        OperatorTypes().resolve("jion")


def test_a_built_in_whose_module_is_missing_says_so() -> None:
    types = OperatorTypes({"ghost": "smmf_flow.no_such_module:Ghost"})
    with pytest.raises(
        FlowError,
        match=r"operator type 'ghost' is not available: cannot "
        r"import smmf_flow.no_such_module",
    ):
        types.resolve("ghost")


def test_entry_points_add_types(monkeypatch: pytest.MonkeyPatch) -> None:
    point = importlib.metadata.EntryPoint(
        "mapish", "smmf_flow.dag.map:MapOperator", "smmf_flow.operators"
    )
    shadow = importlib.metadata.EntryPoint("map", "os:system", "smmf_flow.operators")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point, shadow])
    types = OperatorTypes.default()
    assert types.resolve("mapish") is MapOperator
    assert types.resolve("map") is MapOperator  # an entry point cannot take a built-in name


def test_kind_of_needs_the_registered_class() -> None:
    types = OperatorTypes()
    assert types.kind_of(MapOperator(len, name="m")) == "map"

    class Custom(MapOperator):
        pass

    with pytest.raises(
        FlowError,
        match=r"^node 'm': it is a .*Custom, which is not a registered "
        r"operator type",
    ):
        types.kind_of(Custom(len, name="m"))


def test_functions_only_from_plugins() -> None:
    types = OperatorTypes()
    with pytest.raises(FlowError, match="module 'json' is not a plugin"):
        types.function("json:dumps")
    types.add_plugin("json")
    assert types.function("json:dumps") is sys.modules["json"].dumps
    with pytest.raises(FlowError, match="plugin 'json' has no 'nothing'"):
        types.function("json:nothing")
    with pytest.raises(FlowError, match="must be written 'module:name'"):
        types.function("json.dumps")


def test_copies_do_not_share_plugins() -> None:
    types = OperatorTypes()
    other = types.copy()
    other.add_plugin("json")
    assert "json" not in types.plugins
