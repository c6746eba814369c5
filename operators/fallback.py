"""``FallbackOperator``: try models in order until one answers.

Each model may be retried first (``retry``); the error's kind decides whether
the next model is tried (``on``: unavailable, timeout, rate_limited,
context_window — which moves on to a model with a larger window —,
invalid_output, or any backend ``error``); ``max_depth`` caps how many models
are tried; ``chunk_timeout`` bounds the wait for each chunk of a stream, so a
model that hangs mid-answer falls through like one that fails (``retry`` here
is that per-model policy, not a node-level retry); models whose pool is
cooling down are skipped. With ``stream=True``
a failure in the middle of the stream is survived: the next model continues
the same answer (see ``smmf_flow.scheduler.fallback``).
"""

from __future__ import annotations

from typing import Any

from smmf_flow.errors import FlowError
from smmf_flow.operators.base import node_label
from smmf_flow.operators.llm import GeneratingOperator, split_options
from smmf_flow.operators.params import check_params, export_params
from smmf_flow.runner.retry import RetryPolicy
from smmf_flow.scheduler.fallback import FallbackWorker
from smmf_flow.scheduler.fallback_policy import DEFAULT_ON, FallbackPolicy
from smmf_flow.scheduler.resolve import Purpose


def _retry_policy(value: RetryPolicy | dict[str, Any] | int | None, owner: str) -> RetryPolicy:
    if value is None:
        return RetryPolicy(attempts=1)
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, int):
        return RetryPolicy(attempts=value)
    if isinstance(value, dict):
        unknown = set(value) - {"attempts", "backoff", "max_backoff", "jitter"}
        if unknown:
            raise FlowError(f"{owner}: unknown retry field '{sorted(unknown)[0]}' (valid: "
                            "attempts, backoff, max_backoff, jitter)")
        return RetryPolicy(**value)
    raise FlowError(f"{owner}: retry must be a number of attempts or a mapping, "
                    f"got {type(value).__name__}")


class FallbackOperator(GeneratingOperator):
    """Generate with the first of ``models`` that succeeds."""

    kind = "fallback"

    def __init__(self, models: list[str], *, on: list[str] | None = None,
                 retry: RetryPolicy | dict[str, Any] | int | None = None,
                 max_depth: int | None = None, chunk_timeout: float | None = None,
                 stream: bool = False, **params: Any) -> None:
        options, generation = split_options(params)
        owner = node_label(type(self), options.get("name"))
        if not isinstance(models, (list, tuple)) or not models or \
                not all(isinstance(m, str) for m in models):
            raise FlowError(f"{owner}: `models` must be a non-empty list of model names")
        self.models = list(models)
        self.policy = FallbackPolicy(on=tuple(on) if on is not None else DEFAULT_ON,
                                     retry=_retry_policy(retry, owner), max_depth=max_depth,
                                     chunk_timeout=chunk_timeout)
        self.stream = stream
        self.generation = check_params(owner, generation)
        super().__init__(**options)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"models": self.models}
        if self.policy.on != DEFAULT_ON:
            out["on"] = list(self.policy.on)
        if self.policy.max_depth:
            out["max_depth"] = self.policy.max_depth
        if self.policy.chunk_timeout is not None:
            out["chunk_timeout"] = self.policy.chunk_timeout
        if self.policy.retry.attempts > 1:
            out["retry"] = {"attempts": self.policy.retry.attempts,
                                  "backoff": self.policy.retry.backoff}
        if self.stream:
            out["stream"] = True
        out.update(export_params(self.generation))
        return out

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        return [(m, "llm") for m in self.models]

    def build_worker(self, scheduler: Any) -> FallbackWorker:
        return FallbackWorker(self.name, [scheduler.chat_worker(m) for m in self.models],
                              self.policy)
