"""``LLMOperator`` and ``StreamingLLMOperator``: generation by model name.

The model name (or group name, or none for the registry's ``default_llm``) is
resolved by the scheduler before the flow runs; at run time the node sends its
request to the resolved worker: one model's pool, or a fallback/route group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from smmf_flow.dag.ports import Signature
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult
from smmf_flow.operators.base import ModelOperator, node_label
from smmf_flow.operators.params import check_params, export_params, to_request
from smmf_flow.scheduler.resolve import Purpose

_OPTIONS = ("name", "timeout", "retry", "dag", "input_type", "output_type")


def split_options(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate operator options (name, timeout, ...) from generation params."""
    options = {k: v for k, v in params.items() if k in _OPTIONS}
    return options, {k: v for k, v in params.items() if k not in _OPTIONS}


class GeneratingOperator(ModelOperator):
    """What every generating operator shares (llm, stream_llm, router, fallback):
    a request, prompt string or mapping in; a ``ChatResult`` out, or with
    ``stream`` a lazy stream of ``ChatChunk``."""

    stream: bool = False
    #: note which model and instance served each whole answer (routers and
    #: fallbacks note their own decisions instead)
    note_served: bool = False
    generation: dict[str, Any]

    def ports(self) -> Signature:
        out = AsyncIterator[ChatChunk] if self.stream else ChatResult
        return Signature((ChatRequest | str | dict,), False, out)

    async def execute(self, ctx: Any, *inputs: Any) -> ChatResult | AsyncIterator[ChatChunk]:
        request = to_request(inputs[0], self.generation, f"node '{self.name}'")
        worker = self.worker(ctx)
        if self.stream:
            return worker.stream(request, self.noter(ctx))
        result = await worker.chat(request, self.noter(ctx))
        if self.note_served:
            ctx.note(self, "served", model=result.model, instance=result.instance)
        return result


class LLMOperator(GeneratingOperator):
    """Generation with one model or group (``model=None``: ``default_llm``)."""

    kind = "llm"
    note_served = True

    def __init__(self, model: str | None = None, **params: Any) -> None:
        options, generation = split_options(params)
        self.model = model
        self.generation = check_params(node_label(type(self), options.get("name")),
                                       generation)
        super().__init__(**options)

    def params(self) -> dict[str, Any]:
        out = {"model": self.model, **export_params(self.generation)}
        return {k: v for k, v in out.items() if v is not None}

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        return [(self.model, "llm")]

    def build_worker(self, scheduler: Any) -> Any:
        return scheduler.chat_worker(self.model)


class StreamingLLMOperator(LLMOperator):
    """Like ``LLMOperator``, but its output is a stream of ``ChatChunk``."""

    kind = "stream_llm"
    stream = True
