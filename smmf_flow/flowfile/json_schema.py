"""The JSON Schema of a flow file, for editors to complete and check flows.

It is generated, never written by hand: the top level from ``FlowSpec``, and each
node from its type's parameter model — the operator's ``params_model``, or for
the primitive types their YAML form (``primitive_params.py``) — beside the fields
every node has (``after``, ``timeout``, ``retry``, ``description``). Nodes are a
union on ``type``: a built-in type's node may hold only its own parameters, and
a type the schema does not know (a plugin's) anything. ``smmf-flow schema``
prints it; ``flows/flow.schema.json`` is the published copy, which the shipped
flows name on their first line (``# yaml-language-server: $schema=...``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from smmf_flow.flowfile.node_params import params_model_of
from smmf_flow.flowfile.primitive_params import PRIMITIVE_PARAMS
from smmf_flow.flowfile.registry import OperatorTypes
from smmf_flow.flowfile.schema import FlowSpec, NodeSpec
from smmf_flow.operators.params import SHORTHAND, OperatorParams

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REFS = "#/$defs/{model}"


def flow_schema(types: OperatorTypes | None = None) -> dict[str, Any]:
    """The JSON Schema of a flow file whose node types are ``types`` (default: the
    built-in ones)."""
    types = types or OperatorTypes()
    schema = FlowSpec.model_json_schema(ref_template=_REFS)
    defs: dict[str, Any] = schema.pop("$defs")
    node_fields = defs.pop(NodeSpec.__name__)["properties"]
    node_fields.pop("type")
    node_fields["after"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "the node(s) whose output this node takes",
    }
    variants = []
    for kind in types.names():
        model = _params_model(types, kind)
        if model is not None:
            variants.append(_node(kind, model, node_fields, defs))
    variants.append(_other_types([v["properties"]["type"]["const"] for v in variants]))
    defs["Node"] = {
        "oneOf": variants,
        "description": "a node: its `type` and that type's parameters",
    }
    schema["properties"]["nodes"]["additionalProperties"] = {"$ref": _REFS.format(model="Node")}
    shorthands = {name: d.pop(SHORTHAND) for name, d in defs.items() if SHORTHAND in d}
    schema = _with_shorthands(schema, shorthands)
    schema["$defs"] = dict(sorted(_with_shorthands(defs, shorthands).items()))
    return {"$schema": SCHEMA_DIALECT, **_untitled(schema), "title": "smmf-flow flow file"}


def _params_model(types: OperatorTypes, kind: str) -> type[OperatorParams] | None:
    if kind in PRIMITIVE_PARAMS:
        return PRIMITIVE_PARAMS[kind]
    return params_model_of(types.resolve(kind))


def _node(
    kind: str, model: type[BaseModel], node_fields: dict[str, Any], defs: dict[str, Any]
) -> dict[str, Any]:
    params = model.model_json_schema(ref_template=_REFS)
    defs.update(params.pop("$defs", {}))  # models by class name: one schema each
    return {
        "type": "object",
        "description": params.get("description", ""),
        "properties": {"type": {"const": kind}, **node_fields, **params["properties"]},
        "required": ["type", *params.get("required", [])],
        "additionalProperties": False,
    }


def _other_types(known: list[str]) -> dict[str, Any]:
    """A node of a type the schema does not describe (a plugin's): any parameters."""
    return {
        "type": "object",
        "properties": {"type": {"type": "string", "not": {"enum": known}}},
        "required": ["type"],
        "description": "a node of a plugin's operator type",
    }


def _with_shorthands(value: Any, shorthands: dict[str, Any]) -> Any:
    """``value`` with every reference to a model that has a short form (a retry
    policy's number of attempts, a store's path) offering that form too."""
    if isinstance(value, list):
        return [_with_shorthands(v, shorthands) for v in value]
    if not isinstance(value, dict):
        return value
    ref = value.get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    if name in shorthands:
        return {
            "anyOf": [shorthands[name], {"$ref": ref}],
            **{k: v for k, v in value.items() if k != "$ref"},
        }
    return {k: _with_shorthands(v, shorthands) for k, v in value.items()}


def _untitled(value: Any) -> Any:
    """``value`` without pydantic's ``title`` keys (the property names say it)."""
    if isinstance(value, dict):
        return {
            k: _untitled(v) for k, v in value.items() if not (k == "title" and isinstance(v, str))
        }
    if isinstance(value, list):
        return [_untitled(v) for v in value]
    return value


__all__ = ["SCHEMA_DIALECT", "flow_schema"]
