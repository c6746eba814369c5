"""YAML flow files: read with the line and column of every value, validated
(pydantic), built into a DAG from registered operator types, exported back,
and drawn.

``load_flow("flows/chat.yaml")`` gives a ``Flow``; ``flow.check(registry)``
checks its model names; ``await flow.arun({...}, registry=registry)`` runs it.
``dump_flow(dag)`` writes a Python DAG as a flow file.
"""

from smmf_flow.flowfile.drawing import render_png, render_svg
from smmf_flow.flowfile.export import dump_flow, export_dag
from smmf_flow.flowfile.flow import Flow, load_flow, loads_flow
from smmf_flow.flowfile.functions import Expression
from smmf_flow.flowfile.graph import to_dot, to_mermaid, view_of
from smmf_flow.flowfile.registry import OperatorTypes
from smmf_flow.flowfile.schema import FlowSpec

__all__ = [
    "Expression",
    "Flow",
    "FlowSpec",
    "OperatorTypes",
    "dump_flow",
    "export_dag",
    "load_flow",
    "loads_flow",
    "render_png",
    "render_svg",
    "to_dot",
    "to_mermaid",
    "view_of",
]
