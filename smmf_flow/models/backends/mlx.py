"""MLX through mlx-lm: Metal on Apple silicon, ``mlx[cpu]`` on Linux, same code.

The model (a Hugging Face folder) is loaded and run on the instance's engine
thread, so MLX's per-thread streams always see one thread, and the event loop
never blocks. Text is decoded here from ``stream_generate``'s tokens, not taken
from its segments: mlx-lm trims the leading space of the first segment, which
would break a continuation. Stop strings are applied here (mlx-lm has none). The chat template
is rendered here and ``assistant_prefix`` appended to the raw prompt: exact
continuation. Structured output is not offered by this backend.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from smmf_flow.errors import ModelLoadError
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.engine_thread import EngineThread
from smmf_flow.models.backends.special_tokens import NO_SPECIALS, hf_special_tokens
from smmf_flow.models.backends.support import (
    check_context,
    loaded,
    merge_chunks,
    model_path,
    pick_template,
    refuse_structured,
    render_prompt,
    require,
)
from smmf_flow.models.backends.textstream import IncrementalDecoder, StopScanner
from smmf_flow.models.chat_templates import ChatTemplate
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, Usage


class MLXBackend(Backend):
    """A causal LM served in-process by mlx-lm."""

    provider = "mlx"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._engine = EngineThread(f"mlx {config.name}/{instance_id}")
        self._mx: Any = None
        self._lm: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._template: ChatTemplate | None = None
        self._specials = NO_SPECIALS

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=True, embed=False, json_schema=False, prefix="exact")

    def _load(self) -> None:
        self._mx = require("mlx.core", "mlx", self.config.name)
        self._lm = require("mlx_lm", "mlx", self.config.name)
        path = model_path(self.config, want="Hugging Face folder")
        try:
            model, tokenizer = self._lm.load(str(path))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(
                f"model '{self.config.name}': mlx-lm could not load {path}: "
                f"{type(exc).__name__}: {exc}",
                model=self.config.name,
            ) from exc
        self._template = pick_template(
            self.config,
            model_ref=str(path),
            shipped=getattr(tokenizer, "chat_template", None),
            bos_token=tokenizer.bos_token,
            eos_token=tokenizer.eos_token,
        )
        self._model, self._tokenizer = model, tokenizer
        self._specials = hf_special_tokens(tokenizer)

    async def load(self) -> None:
        await self._engine.call(lambda stop: self._load())

    async def aclose(self) -> None:
        self._model = self._tokenizer = None
        self._engine.close()

    async def health(self) -> None:
        self._ready()

    def _ready(self) -> Any:
        return loaded(self, self._model)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return super().count_tokens(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _generate(self, request: ChatRequest, stop: threading.Event) -> Iterator[ChatChunk]:
        """The token loop; runs on the engine thread."""
        model, lm = self._ready(), self._lm
        prompt = render_prompt(loaded(self, self._template), request, self._specials)
        ids = self._tokenizer.encode(prompt, add_special_tokens=False)
        budget = check_context(
            self.config, len(ids), request.max_tokens, self.config.context_length
        )
        if request.seed is not None:
            self._mx.random.seed(request.seed)
        from mlx_lm.sample_utils import make_sampler

        sampler = make_sampler(
            temp=request.temperature, top_p=request.top_p if request.top_p < 1.0 else 0.0
        )
        tokenizer = self._tokenizer
        decoder = IncrementalDecoder(
            lambda t: tokenizer.decode(t, skip_special_tokens=True), context=ids[-4:]
        )
        scanner = StopScanner(request.stop)
        generated, finish = 0, "length"
        steps = lm.stream_generate(model, tokenizer, ids, max_tokens=budget, sampler=sampler)
        try:
            for step in steps:
                if stop.is_set():
                    finish = "cancelled"
                    break
                if step.finish_reason == "stop":  # step.token is the end-of-turn token
                    finish = "stop"
                    break
                generated += 1
                text = scanner.feed(decoder.add(step.token))
                if text:
                    yield ChatChunk(text)
                if scanner.stopped:
                    finish = "stop"
                    break
        finally:
            steps.close()
        yield ChatChunk(scanner.flush(), finish_reason=finish, usage=Usage(len(ids), generated))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self._ready()
        refuse_structured(self, request)
        name, instance = self.config.name, self.instance_id
        async for batch in self._engine.stream(lambda stop: self._generate(request, stop)):
            yield merge_chunks(batch, name, instance)


__all__ = ["MLXBackend"]
