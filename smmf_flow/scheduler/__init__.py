"""Resolving model references in a DAG into workers bound to pooled backends."""

from smmf_flow.scheduler.fallback import FallbackWorker
from smmf_flow.scheduler.fallback_policy import FallbackPolicy, decide, error_kind
from smmf_flow.scheduler.resolve import Binding, NodePlan, Scheduler, plan, scheduler_for
from smmf_flow.scheduler.routing import Classifier, Route, RouteWorker, When
from smmf_flow.scheduler.workers import ChatWorker, PoolChatWorker, PoolEmbeddingWorker

__all__ = [
    "Binding",
    "ChatWorker",
    "Classifier",
    "FallbackPolicy",
    "FallbackWorker",
    "NodePlan",
    "PoolChatWorker",
    "PoolEmbeddingWorker",
    "Route",
    "RouteWorker",
    "Scheduler",
    "When",
    "decide",
    "error_kind",
    "plan",
    "scheduler_for",
]
