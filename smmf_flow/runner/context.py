"""Old import path of ``RunContext`` (now ``smmf_flow.dag.context``); removed by the gate pass."""

from smmf_flow.dag.context import RunContext

__all__ = ["RunContext"]
