"""Executing a built flow: ``DAG`` (a ``Graph`` that runs), concurrency, lazy
streams and their tee, per-node retries and timeouts, and ``RunHook``s.

A flow runs through its ``DAG``'s ``run``/``arun``/``astream``; ``runner.py``'s
functions behind them are not a second way in."""

from smmf_flow.runner.dag import DAG
from smmf_flow.runner.hooks import RunHook

__all__ = ["DAG", "RunHook"]
