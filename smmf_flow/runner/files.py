"""Old import path of ``FileAccess`` (now ``smmf_flow.dag.files``); removed by the gate pass."""

from smmf_flow.dag.files import SPECIAL_ROOTS, FileAccess

__all__ = ["SPECIAL_ROOTS", "FileAccess"]
