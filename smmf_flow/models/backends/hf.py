"""Hugging Face transformers (torch): a local HF folder or a GGUF, with request batching.

Concurrent requests are batched into one ``generate`` call: a batcher thread takes
every request that arrived (waiting ``max_batch_wait_ms`` for company after the
first), groups those that sample alike (all greedy ones together; sampled ones by
temperature, top_p and seed), left-pads them and generates up to ``batch_size``
rows at once. A streamer hands each row's new token to its own request; a
stopping criterion ends a row at its own ``max_tokens``, stop string or
cancellation, so requests of different lengths share a batch. On a CPU this turns
~10 tok/s at batch 1 into several times that in aggregate.

The chat template comes from the tokenizer (or a family adapter,
``chat_templates.py``) and is rendered here, so ``assistant_prefix`` is appended to
the raw prompt: exact continuation. Structured (JSON-schema) output is not offered
by this backend.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from smmf_flow.errors import BackendError, ModelLoadError, SmmfError
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.engine_thread import Relay
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


@dataclass(eq=False)
class _Row:
    """One request inside the batcher: its prompt, its budget and its streaming state."""

    request: ChatRequest
    relay: Relay[ChatChunk]
    prompt: list[int] = field(default_factory=list)
    budget: int = 0
    decoder: IncrementalDecoder | None = None
    scanner: StopScanner | None = None
    generated: int = 0
    done: bool = False

    @property
    def key(self) -> tuple[Any, ...]:
        r = self.request
        return ("greedy",) if r.temperature == 0 else ("sample", r.temperature, r.top_p, r.seed)

    def close(self, finish: str) -> None:
        """End this row's stream with ``finish`` and its token counts."""
        if self.done:
            return
        self.done = True
        assert self.scanner is not None
        tail = self.scanner.flush()
        self.relay.put(
            ChatChunk(tail, finish_reason=finish, usage=Usage(len(self.prompt), self.generated))
        )
        self.relay.finish()


class _RowStreamer:
    """A transformers streamer that routes each new token to its row's request."""

    def __init__(self, rows: list[_Row], eos: set[int]) -> None:
        self.rows, self.eos, self._prompt_seen = rows, eos, False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first puts the prompt itself
            self._prompt_seen = True
            return
        for row, token in zip(self.rows, value.tolist(), strict=True):
            if row.done:
                continue
            if row.relay.stop.is_set():
                row.close("cancelled")
            elif token in self.eos:
                row.close("stop")
            else:
                assert row.decoder is not None and row.scanner is not None
                row.generated += 1
                text = row.scanner.feed(row.decoder.add(token))
                if text:
                    row.relay.put(ChatChunk(text))
                if row.scanner.stopped:
                    row.close("stop")
                elif row.generated >= row.budget:
                    row.close("length")

    def end(self) -> None:
        for row in self.rows:
            row.close("length")


class _RowsDone:
    """A stopping criterion: a row is finished once its request is done."""

    def __init__(self, rows: list[_Row], torch: Any) -> None:
        self.rows, self.torch = rows, torch

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return self.torch.tensor(
            [row.done or row.relay.stop.is_set() for row in self.rows],
            dtype=self.torch.bool,
            device=input_ids.device,
        )


class HFBackend(Backend):
    """A causal LM served in-process by transformers, batching concurrent requests."""

    provider = "hf"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._incoming: queue.SimpleQueue[_Row | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._torch: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._template: ChatTemplate | None = None
        self._specials = NO_SPECIALS
        self._eos: set[int] = set()
        self._pad = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=True, embed=False, json_schema=False, prefix="exact")

    # --- lifecycle -------------------------------------------------------------------

    def _source(self) -> tuple[str, str | None]:
        path = model_path(self.config, want="Hugging Face folder or GGUF file")
        if path.is_file():
            return str(path.parent), path.name
        return str(path), self.config.gguf_file

    def _load(self) -> None:
        torch = require("torch", "hf", self.config.name)
        transformers = require("transformers", "hf", self.config.name)
        folder, gguf = self._source()
        name = self.config.dtype or "float32"
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise ModelLoadError(
                f"model '{self.config.name}': unknown dtype '{name}' "
                "(use float32, bfloat16 or float16)",
                model=self.config.name,
            )
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=gguf, dtype=dtype
            )
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise ModelLoadError(
                f"model '{self.config.name}': transformers could not load "
                f"{self.config.path}: {exc}",
                model=self.config.name,
            ) from exc
        model.to(self.config.device or "cpu").eval()
        self._template = pick_template(
            self.config,
            model_ref=str(self.config.path),
            shipped=tokenizer.chat_template,
            bos_token=tokenizer.bos_token,
            eos_token=tokenizer.eos_token,
        )
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self._eos = {int(t) for t in [*eos, tokenizer.eos_token_id] if t is not None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self._eos)
        self._pad = int(pad)
        self._torch, self._model, self._tokenizer = torch, model, tokenizer
        self._specials = hf_special_tokens(tokenizer)

    async def load(self) -> None:
        await anyio.to_thread.run_sync(self._load)
        self._thread = threading.Thread(
            target=self._serve, daemon=True, name=f"hf {self.config.name}/{self.instance_id}"
        )
        self._thread.start()

    async def aclose(self) -> None:
        if self._thread is not None:
            self._incoming.put(None)
            await anyio.to_thread.run_sync(self._thread.join, 30.0)
            self._thread = None
        self._model = self._tokenizer = None

    async def health(self) -> None:
        loaded(self, self._model)
        if self._thread is None or not self._thread.is_alive():
            raise BackendError(
                f"model '{self.config.name}' ({self.instance_id}): the batcher "
                "thread is not running; restart the instance",
                model=self.config.name,
                instance=self.instance_id,
            )

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return super().count_tokens(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    # --- batching (runs on the batcher thread) ---------------------------------------

    def _prepare(self, row: _Row) -> None:
        prompt = render_prompt(loaded(self, self._template), row.request, self._specials)
        row.prompt = self._tokenizer.encode(prompt, add_special_tokens=False)
        row.budget = check_context(
            self.config, len(row.prompt), row.request.max_tokens, self.config.context_length
        )
        tokenizer = self._tokenizer

        def decode(ids: list[int]) -> str:
            text: str = tokenizer.decode(ids, skip_special_tokens=True)
            return text

        row.decoder = IncrementalDecoder(decode, context=row.prompt[-4:])
        row.scanner = StopScanner(row.request.stop)

    def _take(self, first: _Row) -> list[_Row]:
        """``first`` plus every request that arrives within the batching window."""
        rows, deadline = [first], time.monotonic() + self.config.max_batch_wait_ms / 1000
        while True:
            try:
                row = self._incoming.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                return rows
            if row is None:
                self._incoming.put(None)  # keep the shutdown signal for the serve loop
                return rows
            rows.append(row)

    def _serve(self) -> None:
        waiting: list[_Row] = []
        while True:
            if not waiting:
                first = self._incoming.get()
                if first is None:
                    return
                waiting = self._take(first)
            ready: list[_Row] = []
            for row in waiting:
                if row.relay.stop.is_set():
                    row.relay.finish()
                    continue
                try:
                    self._prepare(row)
                except SmmfError as exc:
                    row.relay.finish(exc)
                    continue
                except Exception as exc:  # a bad request must not stop the batcher
                    row.relay.finish(
                        BackendError(
                            f"model '{self.config.name}': cannot prepare the prompt: "
                            f"{type(exc).__name__}: {exc}",
                            model=self.config.name,
                            instance=self.instance_id,
                        )
                    )
                    continue
                ready.append(row)
            if not ready:
                waiting = []
                continue
            key = ready[0].key
            batch = [r for r in ready if r.key == key][: self.config.batch_size]
            waiting = [r for r in ready if r not in batch]
            self._generate(batch)

    def _generate(self, rows: list[_Row]) -> None:
        torch, request = self._torch, rows[0].request
        width = max(len(r.prompt) for r in rows)
        ids = [[self._pad] * (width - len(r.prompt)) + r.prompt for r in rows]
        mask = [[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows]
        device = self._model.device
        sampling: dict[str, Any] = {"do_sample": False}
        if request.temperature > 0:
            sampling = {
                "do_sample": True,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "top_k": 0,
            }
            if request.seed is not None:
                torch.manual_seed(request.seed)
        streamer = _RowStreamer(rows, self._eos)
        try:
            with torch.inference_mode():
                self._model.generate(
                    input_ids=torch.tensor(ids, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    max_new_tokens=max(r.budget for r in rows),
                    pad_token_id=self._pad,
                    eos_token_id=sorted(self._eos),
                    streamer=streamer,
                    stopping_criteria=[_RowsDone(rows, torch)],
                    **sampling,
                )
        except Exception as exc:  # one failed batch fails its requests, not the thread
            error = BackendError(
                f"model '{self.config.name}': generation failed: {type(exc).__name__}: {exc}",
                model=self.config.name,
                instance=self.instance_id,
            )
            for row in rows:
                if not row.done:
                    row.done = True
                    row.relay.finish(error)
            return
        streamer.end()

    # --- chat ------------------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        await self.health()
        refuse_structured(self, request)
        relay: Relay[ChatChunk] = Relay()
        self._incoming.put(_Row(request, relay))
        name, instance = self.config.name, self.instance_id
        try:
            while (batch := await relay.next_batch()) is not None:
                yield merge_chunks(batch, name, instance)
        finally:
            relay.stop.set()


__all__ = ["HFBackend"]
