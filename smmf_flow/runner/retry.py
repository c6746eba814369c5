"""Old import path of ``RetryPolicy`` (now ``smmf_flow.dag.retry``); removed by the gate pass."""

from smmf_flow.dag.retry import RetryPolicy

__all__ = ["RetryPolicy"]
