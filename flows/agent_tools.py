"""The tools of flows/agent.yaml.

A flow file may only load plugin modules that sit beside it, so this module
brings the ready-made tools of ``smmf_flow.operators.builtin_tools`` into the
flows folder; the flow names them as ``agent_tools:calculator`` and
``agent_tools:docs_lookup``. Tools of your own go here too: any module-level
function decorated with ``smmf_flow.operators.tool``.
"""

from smmf_flow.operators.builtin_tools import calculator, docs_lookup

__all__ = ["calculator", "docs_lookup"]
