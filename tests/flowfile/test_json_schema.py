"""The flow files' JSON Schema: generated from ``FlowSpec`` and each type's
parameter model, published as ``flows/flow.schema.json`` (which must equal what
``smmf-flow schema`` makes), and true to the loader: every shipped flow passes
it, and what the loader refuses for a misspelt parameter the schema refuses too."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from smmf_flow.flowfile.json_schema import flow_schema
from smmf_flow.flowfile.loader import read_flow_file, read_flow_text
from smmf_flow.flowfile.node_params import params_model_of
from smmf_flow.flowfile.primitive_params import PRIMITIVE_PARAMS
from smmf_flow.flowfile.registry import BUILTINS, OperatorTypes
from smmf_flow.operators.params import parameter_names

ROOT = Path(__file__).resolve().parents[2]
FLOWS = sorted(p for p in (ROOT / "flows").glob("*.yaml") if not p.name.endswith(".input.yaml"))
PUBLISHED = ROOT / "flows" / "flow.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = flow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator: jsonschema.Draft202012Validator, text: str) -> list[str]:
    data = read_flow_text(textwrap.dedent(text), "f.yaml").data
    return [e.message for e in validator.iter_errors(data)]


def test_the_published_schema_is_the_generated_one() -> None:
    from smmf_flow.cli.schema import schema_text

    assert PUBLISHED.read_text(encoding="utf-8") == schema_text(flow_schema()), (
        "flows/flow.schema.json is stale: run `smmf-flow schema -o flows/flow.schema.json`"
    )


@pytest.mark.parametrize("path", FLOWS, ids=[p.stem for p in FLOWS])
def test_every_shipped_flow_follows_the_schema_and_names_it(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    assert list(validator.iter_errors(read_flow_file(path).data)) == []
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=flow.schema.json"


def test_the_readme_flow_follows_the_schema(validator: jsonschema.Draft202012Validator) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Flow files") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    assert problems(validator, example) == []


def test_each_built_in_type_is_a_node_with_exactly_its_parameters() -> None:
    schema = flow_schema()
    variants = {v["properties"]["type"].get("const"): v for v in schema["$defs"]["Node"]["oneOf"]}
    assert set(variants) == set(BUILTINS) | {None}  # and one for plugins' types
    types = OperatorTypes()
    for kind in BUILTINS:
        model = PRIMITIVE_PARAMS.get(kind) or params_model_of(types.resolve(kind))
        assert model is not None, kind
        listed = set(variants[kind]["properties"])
        assert listed == {
            "type",
            "after",
            "timeout",
            "retry",
            "description",
            *parameter_names(model),
        }, kind
        assert variants[kind]["additionalProperties"] is False
    assert "stream" in variants["llm"]["properties"]
    assert {"retry", "model_retry"} <= set(variants["fallback"]["properties"])
    assert "input_key" in variants["retriever"]["properties"]
    assert variants["fallback"]["required"] == ["type", "models"]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("nodes:\n  a: {type: llm, model: m, max_token: 5}\n", "is not valid under any"),
        ("nodes:\n  a: {type: map, expr: input, blockin: true}\n", "is not valid under any"),
        ("nodes:\n  a: {type: fallback, models: []}\n", "is not valid under any"),
        ("stream: maybe\nnodes:\n  a: {type: map, expr: input}\n", "is not of type 'boolean'"),
        ("inputs: {q: strng}\nnodes:\n  a: {type: map, expr: input}\n", "is not valid under any"),
        ("nodez:\n  a: {type: map, expr: input}\n", "'nodes' is a required property"),
    ],
)
def test_what_the_loader_refuses_the_schema_refuses(
    validator: jsonschema.Draft202012Validator, text: str, found: str
) -> None:
    assert any(found in p for p in problems(validator, text)), problems(validator, text)


def test_shorthands_json_type_names_and_plugin_types_are_allowed(
    validator: jsonschema.Draft202012Validator,
) -> None:
    assert (
        problems(
            validator,
            """
        inputs:
          n: integer
          tags: {type: array, default: []}
        nodes:
          a: {type: map, expr: input, retry: 3, after: b}
          b: {type: my_plugin_type, anything: [1, 2]}
          c: {type: branch, branches: [{when: "input > 1", to: a}, {when: {expr: x}, to: b}]}
          d: {type: retriever, store: .smmf/rag, input_key: question}
          e: {type: fallback, models: [m], model_retry: 2}
    """,
        )
        == []
    )
    assert "x-shorthand" not in json.dumps(flow_schema())


def test_the_command_prints_the_schema(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from smmf_flow.cli import cli

    done = CliRunner().invoke(cli, ["schema"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == flow_schema()
    done = CliRunner().invoke(cli, ["schema", "-o", str(tmp_path / "s.json")])
    assert done.exit_code == 0 and json.loads((tmp_path / "s.json").read_text()) == flow_schema()


def test_a_plugin_type_with_a_parameter_model_joins_the_schema(plugin_dir: Any) -> None:
    plugin_dir(
        "smmf_schema_plugin",
        """
        from smmf_flow import Operator
        from smmf_flow.operators import OperatorParams

        class ShoutParams(OperatorParams):
            '''``shout``: how many exclamation marks.'''
            times: int = 1

        class Shout(Operator):
            kind = "shout"
            params_model = ShoutParams

            def __init__(self, **params):
                self.times = params.pop("times", 1)
                super().__init__(**params)
    """,
    )
    types = OperatorTypes()
    types.add_plugin("smmf_schema_plugin")
    variants = flow_schema(types)["$defs"]["Node"]["oneOf"]
    shout = next(v for v in variants if v["properties"]["type"].get("const") == "shout")
    assert shout["properties"]["times"] == {"default": 1, "type": "integer"}
