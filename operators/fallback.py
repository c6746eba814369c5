"""``FallbackOperator``: try models in order until one answers.

The error's kind decides whether the next model is tried (``on``: unavailable,
timeout, rate_limited, context_window — which moves on to a model with a
larger window —, invalid_output, or any backend ``error``); each model may be
retried first (``model_retry``: attempts, backoff; the node's own ``retry``,
as on every node, retries the whole node); ``max_depth`` caps how many models
are tried; ``chunk_timeout`` bounds the wait for each chunk of a stream, so a
model that hangs mid-answer falls through like one that fails; models whose
pool is cooling down are skipped. With ``stream=True`` a failure in the middle
of the stream is survived: the next model continues the same answer (see
``smmf_flow.scheduler.fallback``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from smmf_flow.models.config import ErrorKind
from smmf_flow.operators.base import ModelParam
from smmf_flow.operators.llm import GeneratingOperator
from smmf_flow.operators.params import Flag, GenerationParams, RetryParams, configure
from smmf_flow.scheduler.fallback import FallbackWorker
from smmf_flow.scheduler.fallback_policy import DEFAULT_ON, FallbackPolicy


class FallbackParams(GenerationParams):
    """``fallback``: the ``models`` in order, which error kinds move ``on``, the
    per-model ``model_retry``, ``max_depth``, ``chunk_timeout`` and ``stream``."""

    models: list[str] = Field(min_length=1)
    on: list[ErrorKind] | None = None
    model_retry: RetryParams | None = None
    max_depth: int | None = Field(default=None, ge=1)
    chunk_timeout: float | None = Field(default=None, gt=0)
    stream: Flag = False


class FallbackOperator(GeneratingOperator):
    """Generate with the first of ``models`` that succeeds."""

    kind = "fallback"
    params_model = FallbackParams
    config: FallbackParams

    def __init__(self, models: list[str], **params: Any) -> None:
        self.config, options = configure(FallbackParams, self.kind, {"models": models, **params})
        self.models = list(self.config.models)
        retry = self.config.model_retry
        self.policy = FallbackPolicy(
            on=tuple(self.config.on) if self.config.on is not None else DEFAULT_ON,
            retry=retry.policy() if retry else RetryParams(attempts=1).policy(),
            max_depth=self.config.max_depth,
            chunk_timeout=self.config.chunk_timeout,
        )
        super().__init__(**options)

    def model_params(self) -> list[ModelParam]:
        return [(f"models.{i}", m, "llm") for i, m in enumerate(self.models)]

    def build_worker(self, scheduler: Any) -> FallbackWorker:
        return FallbackWorker(
            self.name, [scheduler.chat_worker(m) for m in self.models], self.policy
        )


__all__ = ["FallbackOperator", "FallbackParams"]
