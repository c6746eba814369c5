"""A LangChain ``Runnable`` as a node of a flow file: a plugin module beside the
flow subclasses ``RunnableOperator`` with its own ``kind`` (the way every plugin
type is made), so the flow names a type, never an import path.

No ``from __future__ import annotations`` in the plugin: LangChain reads a
RunnableLambda's types from its function's annotations as they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smmf_flow import FlowError
from smmf_flow.flowfile import load_flow

PLUGIN = '''
from typing import Any

from langchain_core.runnables import RunnableLambda

from smmf_flow.integrations.langchain import RunnableOperator


def shout(text: str) -> str:
    return text.upper() + "!"


class Shout(RunnableOperator):
    """Shout a text (a LangChain runnable as a flow node)."""

    kind = "shout"

    def __init__(self, **options: Any) -> None:
        super().__init__(RunnableLambda(shout), **options)
'''

FLOW = """
name: loud
plugins: [loud_ops]
inputs: {text: str}
nodes:
  pick: {type: map, expr: input.text}
  shout: {type: shout, after: pick}
"""


def test_a_plugin_runnable_type_runs_in_a_flow_file(tmp_path: Path) -> None:
    (tmp_path / "loud_ops.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / "loud.yaml").write_text(FLOW, encoding="utf-8")
    flow = load_flow(tmp_path / "loud.yaml")
    assert flow.dag.node("shout").input_types == (str,)
    assert flow.dag.run({"text": "hey"}, output="shout") == "HEY!"


def test_a_flow_file_cannot_name_a_runnable_by_path(tmp_path: Path) -> None:
    (tmp_path / "quiet_ops.py").write_text(PLUGIN, encoding="utf-8")
    bad = FLOW.replace("loud_ops", "quiet_ops").replace(
        "{type: shout, after: pick}",
        "{type: runnable, runnable: 'langchain_core.runnables:RunnableLambda', after: pick}",
    )
    (tmp_path / "loud.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(
        FlowError, match=r"loud.yaml:\d+:\d+: node .shout.: unknown operator type .runnable."
    ):
        load_flow(tmp_path / "loud.yaml")
