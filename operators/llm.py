"""``LLMOperator``: generation by model name, whole or (``stream=True``) streamed.

The model name (or group name, or none for the registry's ``default_llm``) is
resolved by the scheduler before the flow runs; at run time the node sends its
request to the resolved worker: one model's pool, or a fallback/route group.
``ChatOperator`` is what every node that sends chat requests shares (the answer
and agent nodes too), ``GeneratingOperator`` what the llm node shares with the
router and fallback nodes: a request in, the model's answer out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pydantic import ValidationError

from smmf_flow.dag import RunContext
from smmf_flow.errors import InputError
from smmf_flow.models.types import ChatChunk, ChatMessage, ChatRequest, ChatResult
from smmf_flow.operators.base import ModelOperator, ModelParam
from smmf_flow.operators.params import Flag, GenerationParams, SamplingParams, configure
from smmf_flow.operators.params import problem as pydantic_problem
from smmf_flow.scheduler.workers import ChatWorker


def to_request(value: Any, fields: dict[str, Any]) -> ChatRequest:
    """An operator's input (a request, a prompt string or a mapping) as a request,
    with ``fields`` (``GenerationParams.request_fields()``) filling what the
    request did not set; an ``InputError`` for anything else."""
    if isinstance(value, ChatRequest):
        request = value
    elif isinstance(value, str):
        request = ChatRequest.of(value)
    elif isinstance(value, Mapping):
        try:
            request = ChatRequest.model_validate(dict(value))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise InputError(
                f"the input is not a valid chat request: "
                f"{field + ': ' if field else ''}{pydantic_problem(first)}"
            ) from None
    else:
        raise InputError(
            f"expected a chat request, a prompt string or a mapping, got {type(value).__name__}"
        )
    if not fields:
        return request
    update = {
        k: v
        for k, v in fields.items()
        if k not in request.model_fields_set and k not in ("system", "metadata")
    }
    if fields.get("metadata"):
        update["metadata"] = {**fields["metadata"], **request.metadata}
    if fields.get("system") and not any(m.role == "system" for m in request.messages):
        update["messages"] = [
            ChatMessage(role="system", content=fields["system"]),
            *request.messages,
        ]
    return request.model_copy(update=update) if update else request


class ChatOperator(ModelOperator):
    """What every node that sends chat requests shares: its sampling parameters
    (``generation``: the fields each request gets unless it sets them) and, unless a
    subclass names its models otherwise (router, fallback), one model or group by
    name, ``model`` (None: the registry's ``default_llm``)."""

    config: SamplingParams
    model: str | None

    def __init__(self, **options: Any) -> None:
        self.generation = self.config.request_fields()
        super().__init__(**options)

    def model_params(self) -> list[ModelParam]:
        return [("model", self.model, "llm")]

    def build_worker(self, scheduler: Any) -> ChatWorker:
        worker: ChatWorker = scheduler.chat_worker(self.model)
        return worker


class GeneratingOperator(ChatOperator):
    """What every generating operator shares (llm, router, fallback): a request,
    prompt string or mapping in; a ``ChatResult`` out, or with ``stream=True`` a
    lazy stream of ``ChatChunk`` (the flag sets the output port)."""

    #: note which model and instance served each whole answer (routers and
    #: fallbacks note their own decisions instead)
    note_served: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.stream: bool = bool(getattr(self.config, "stream", False))
        if "stream" in type(self.config).model_fields:  # the flag decides the output port
            options.setdefault(
                "output_type", AsyncIterator[ChatChunk] if self.stream else ChatResult
            )
        super().__init__(**options)

    async def execute(
        self,
        ctx: RunContext,
        request: ChatRequest | str | Mapping[str, Any],
    ) -> ChatResult | AsyncIterator[ChatChunk]:
        chat = to_request(request, self.generation)
        worker = self.worker(ctx)
        if self.stream:
            stream: AsyncIterator[ChatChunk] = worker.stream(chat, self.noter(ctx))
            return stream
        result: ChatResult = await worker.chat(chat, self.noter(ctx))
        if self.note_served:
            ctx.note(self, "served", model=result.model, instance=result.instance)
        return result


class LLMParams(GenerationParams):
    """``llm``: a model or group name (none: the registry's ``default_llm``)."""

    model: str | None = None
    stream: Flag = False


class LLMOperator(GeneratingOperator):
    """Generation with one model or group (``model=None``: ``default_llm``)."""

    kind = "llm"
    params_model = LLMParams
    note_served = True
    config: LLMParams

    def __init__(self, model: str | None = None, **params: Any) -> None:
        self.config, options = configure(self.params_model, self.kind, {"model": model, **params})
        self.model = self.config.model
        super().__init__(**options)


__all__ = ["ChatOperator", "GeneratingOperator", "LLMOperator", "LLMParams", "to_request"]
